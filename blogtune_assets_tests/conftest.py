from __future__ import annotations

import dataclasses
import os
import shutil
import traceback
from pathlib import Path

import pytest

from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.profiles import SAMPLE_BLOG, get_profile

# Four steps of the tiny recipe at 256 tokens, a checkpoint every two: enough to see training, resuming and merging.
QUICK = dataclasses.replace(get_profile("tiny").train, max_steps=4, save_steps=2, logging_steps=1, max_length=256)
# A test that uses one of these builds or trains a model, or runs the whole graph: it is `slow`, which
# `make test-fast` leaves out (pytest_collection_modifyitems below marks it; CI runs everything).
MODEL_FIXTURES = frozenset({"tiny_base_home", "initialised_base", "trained", "demo_run"})


def pytest_configure(config):
    # Under pytest-xdist each worker, and every process it starts (Dagster steps, torchrun ranks), computes on its
    # share of the cores. This runs before any test module imports torch: two workers each running torch's
    # threads on every core spin against each other (the demo's training took 2.5x the CPU time it takes alone).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks this adds
def pytest_collection_modifyitems(config, items):
    # Under pytest-xdist (--dist loadgroup) a group runs on one worker. A group is a test module, so its
    # module fixtures are built once, and the modules that use the demo's run (five minutes) are one group.
    demo_modules = {item.module.__name__ for item in items if "demo_run" in getattr(item, "fixturenames", ())}
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group("demo_run" if item.module.__name__ in demo_modules else item.module.__name__))

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
def _no_dagster_instance_leaks_between_tests(monkeypatch):
    """Each test starts with no Dagster defs-state storage in context, and leaves no instance open.

    Dagster keeps the storage of the latest instance entered in a ContextVar. A test instance that is
    disposed out of order (or deleted with its temp folder) can stay there, and the next test's
    `materialize` then fails on a deleted sqlite file or a collected instance, depending on order.
    An instance entered and never exited is worse: a schedule or asset context built outside a `with`
    enters one of its own, and the garbage collector exits it at some later moment, inside another
    test, putting back a storage whose instance is gone. That failed CI once, in a test that does
    nothing wrong, so each test is checked for instances it left open, by where they were entered.
    """
    import dagster as dg
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    left_open: dict[int, str] = {}
    enter, exit_ = dg.DagsterInstance.__enter__, dg.DagsterInstance.__exit__

    def entering(instance):
        stack = reversed(traceback.extract_stack()[:-1])
        here = (f"{Path(f.filename).name}:{f.lineno}" for f in stack if "_tests" in f.filename)
        left_open[id(instance)] = next(here, "outside the tests")
        return enter(instance)

    def exiting(instance, *exc_info):
        left_open.pop(id(instance), None)
        return exit_(instance, *exc_info)

    monkeypatch.setattr(dg.DagsterInstance, "__enter__", entering)
    monkeypatch.setattr(dg.DagsterInstance, "__exit__", exiting)
    with set_defs_state_storage(None):
        yield
    assert not left_open, (
        f"Dagster instances entered at {sorted(set(left_open.values()))} were left open: build schedule, "
        "sensor and asset contexts in a `with` block (`with dg.build_schedule_context(...) as context:`)"
    )


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
    from blogtune_assets.core.base_model import resolve_base

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
    sft.write_split(folder, sft.build_examples(clean_posts(scan_site(SAMPLE_BLOG).posts).kept))
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_base_dir, sample_dataset):
    """The QUICK recipe trained once a session on the sample dataset: (adapter folder, TrainResult)."""
    from blogtune_assets.core.device import Device
    from blogtune_assets.core.train import train_lora

    out = tmp_path_factory.mktemp("adapter")
    result = train_lora(tiny_base_dir, sample_dataset, out / "ckpt", out / "adapter", QUICK, Device("cpu"), emit=lambda *_: None)
    return out / "adapter", result


def materialize_data(site, home, monkeypatch, instance=None) -> dict[str, dict]:
    """raw_posts, cleaned_posts and sft_dataset with their checks, in process; each asset's metadata by name."""
    import dagster as dg

    from blogtune_assets.assets.sft_dataset import sft_dataset, split_has_no_shared_titles
    from blogtune_assets.assets.model import base_model
    from blogtune_assets.assets.posts import cleaned_posts, no_liquid_left, raw_posts
    from blogtune_assets.resources import from_env

    monkeypatch.setenv("BLOGTUNE_BLOG_DIR", str(site))
    monkeypatch.setenv("BLOGTUNE_HOME", str(home))
    # base_model is in the home already (fixture `home`): it is loaded as an input, not run.
    result = dg.materialize(
        [raw_posts, cleaned_posts, sft_dataset, no_liquid_left, split_has_no_shared_titles, base_model],
        selection=dg.AssetSelection.assets(raw_posts, cleaned_posts, sft_dataset),
        resources=from_env(),
        instance=instance,
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]
    return {
        m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }
