from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.base_model import resolve_base
from blogtune_assets.profiles import SAMPLE_BLOG, get_profile

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "jekyll-ai-blog"


def write_post(site: Path, rel: str, content: str | bytes) -> Path:
    path = site / "_posts" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def post_text(title: str | None, body: str, **meta) -> str:
    lines = ["---", "layout: post"]
    if title is not None:
        lines.append(f'title: "{title}"')
    lines += [f"{k}: {v}" for k, v in meta.items()]
    return "\n".join(lines + ["---", "", body, ""])


LONG_BODY = (
    "This paragraph is long enough to survive cleaning. It talks about compilers, coffee and "
    "the way a quiet morning helps a programmer think about hard problems without hurry."
)


@pytest.fixture(autouse=True)
def _no_dagster_instance_leaks_between_tests():
    """Each test starts with no Dagster defs-state storage in context.

    Dagster keeps the storage of the latest instance in a ContextVar; a test instance that is
    disposed out of order (or deleted with its temp folder) can stay there, and the next test's
    `materialize` then fails on a deleted sqlite file or a collected instance, depending on order.
    """
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "_posts").mkdir(parents=True)
    return root


@pytest.fixture
def sample_blog_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "sample_blog"
    shutil.copytree(SAMPLE_BLOG, dest)
    return dest


@pytest.fixture
def shared_corpus_site(tmp_path: Path) -> Path:
    """The real posts of the blog blogtune was designed for, as a Jekyll site.

    _index_samples/ holds real notes (some wholly wrapped in {% raw %}) named by
    index id; they are given dated post names so Jekyll rules apply to them.
    """
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    dest = tmp_path / "jekyll-ai-blog"
    shutil.copytree(SHARED_CORPUS / "_posts", dest / "_posts")
    for sample in sorted((SHARED_CORPUS / "_index_samples").glob("*/*.md")):
        lang = sample.parent.name
        shutil.copy(sample, dest / "_posts" / lang / f"2026-06-01-{sample.stem}-{lang}.md")
    return dest


@pytest.fixture(scope="session")
def tiny_base_home(tmp_path_factory) -> Path:
    """A BLOGTUNE_HOME holding the embedded tiny base, built once per session (about a minute)."""
    home = tmp_path_factory.mktemp("tiny_base_home")
    store = ArtifactStore(home)
    with store.new_version("base_model") as folder:
        resolve_base(get_profile("tiny"), folder, log=lambda line: None)
    return home


@pytest.fixture
def home(tmp_path: Path, tiny_base_home: Path) -> Path:
    """A fresh BLOGTUNE_HOME that already has the tiny base (reused, not rebuilt, by base_model)."""
    dest = tmp_path / "home"
    shutil.copytree(tiny_base_home / "base_model", dest / "base_model", symlinks=True)
    return dest


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """train.jsonl / eval.jsonl of the sample blog, built by the same functions sft_dataset calls."""
    from blogtune_assets.core import sft
    from blogtune_assets.core.cleaning import clean_posts
    from blogtune_assets.core.jekyll import scan_site

    folder = tmp_path_factory.mktemp("sft_dataset")
    examples = sft.build_examples(clean_posts(scan_site(SAMPLE_BLOG).posts).kept)
    sft.write_jsonl(folder / "train.jsonl", examples.filter(~examples["is_eval"]))
    sft.write_jsonl(folder / "eval.jsonl", examples.filter(examples["is_eval"]))
    return folder


@pytest.fixture(scope="session")
def tiny_base_dir(tiny_base_home: Path) -> Path:
    from blogtune_assets.core.manifest import read_manifest

    return Path(read_manifest(ArtifactStore(tiny_base_home).current("base_model"))["train_base"]["path"])


@pytest.fixture(scope="session")
def qwen3_tokenizer_dir() -> Path:
    """Qwen3's real tokenizer, built offline from llama.cpp's copy of the vocabulary (cached per machine)."""
    from blogtune_assets.core.qwen3_tokenizer import qwen3_tokenizer_dir as build

    return build(log=lambda line: None)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """`make demo`'s run, once a session: the whole tiny graph through the dagster CLI, on a copy of the sample
    blog (root / "blog"), into root / "home" and root / "dagster_home". test_end_to_end checks what it made;
    the UI test serves the same instance, so CI materializes the whole tiny graph once."""
    from blogtune_assets_tests.dagster_cli import materialize

    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(SAMPLE_BLOG, root / "blog")
    materialize(root, "tiny", "*", blog_dir=root / "blog")
    return root
