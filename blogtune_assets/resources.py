"""Where posts come from, where artifacts go, and which profile runs.

Each is a ConfigurableResource whose defaults come from the BLOGTUNE_*
environment variables, so a user points blogtune at their blog without code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import dagster as dg

from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.device import Device, DeviceName, DtypeName, resolve_device
from blogtune_assets.core.jekyll import MAX_POST_BYTES
from blogtune_assets.core.profiles import REPO_ROOT, SAMPLE_BLOG, Profile, ProfileName, get_profile

DEFAULT_HOME = REPO_ROOT / "data" / "blogtune_home"


class BlogSource(dg.ConfigurableResource):
    """The Jekyll site (the folder holding _posts/) and the languages to keep."""

    blog_dir: str = str(SAMPLE_BLOG)
    # Empty means every language found (folders under _posts/, else the `lang` key).
    languages: list[str] = []
    # BLOGTUNE_MAX_POST_BYTES: larger files are rejected unread.
    max_post_bytes: int = MAX_POST_BYTES

    @property
    def path(self) -> Path:
        return Path(self.blog_dir).expanduser().resolve()


class ArtifactHome(dg.ConfigurableResource):
    """BLOGTUNE_HOME: every artifact is published here, versioned and atomically.

    BLOGTUNE_KEEP_VERSIONS: how many versions of each asset stay on disk (the current one included).
    """

    home: str = str(DEFAULT_HOME)
    keep_versions: int = 3

    @property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.home, self.keep_versions)


class ModelProfile(dg.ConfigurableResource):
    """BLOGTUNE_PROFILE: `tiny` (embedded, offline, CPU) or `qwen3-4b` (the reference run).

    BLOGTUNE_BASE_MODEL / BLOGTUNE_MERGE_BASE_MODEL replace the profile's hub ids
    (a local folder works too).
    """

    profile: ProfileName = "tiny"
    base_model: str = ""
    merge_base_model: str = ""

    @property
    def settings(self) -> Profile:
        return get_profile(self.profile)


class Accelerator(dg.ConfigurableResource):
    """Where training, merging and export run, asked by every heavy asset.

    BLOGTUNE_DEVICE (auto / cuda / cpu), BLOGTUNE_DTYPE (auto / bfloat16 / float16 /
    float32) and BLOGTUNE_NUM_PROCESSES (0 = one per visible GPU, 1 on a CPU):
    more than one process trains data-parallel under torchrun.
    """

    device: DeviceName = "auto"
    dtype: DtypeName = "auto"
    num_processes: int = 0

    def resolve(self) -> Device:
        return resolve_device(self.device, self.dtype, self.num_processes)


class RetrainPolicy(dg.ConfigurableResource):
    """How eagerly new posts retrain: BLOGTUNE_MIN_NEW_POSTS, BLOGTUNE_QUIET_PERIOD_S, BLOGTUNE_FULL_CHECK_S.

    The quiet period waits until the posts have stopped changing for that long,
    so a writing session of many saves becomes one run. Between full checks the sensor
    hashes only files whose size, mtime, ctime or inode changed.
    """

    min_new_posts: int = 1
    quiet_period_s: int = 0
    # Every file hashed this often, whatever its stat says (1.7-2.8 s at 21,434 posts on 2 cores).
    full_check_s: int = 3600


class ArtifactPathIOManager(dg.ConfigurableIOManager):
    """Assets return the folder they published; downstream assets receive its path.

    Folders (models, datasets) are passed by path and never pickled.
    """

    home: str = str(DEFAULT_HOME)

    def handle_output(self, context: dg.OutputContext, obj: Path) -> None:
        published = ArtifactStore(self.home).current(context.asset_key.path[-1])
        if Path(obj).resolve() != published:
            raise ValueError(f"{context.asset_key.to_user_string()} returned {obj}, not its published version {published}")

    def load_input(self, context: dg.InputContext) -> Path:
        return ArtifactStore(self.home).current(context.asset_key.path[-1])


def _env_choice(name: str, default: str, choices) -> str:
    """A BLOGTUNE_* variable that must be one of a Literal's values; any other fails the definitions' load."""
    value, allowed = os.environ.get(name, default), get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(repr(a) for a in allowed)}: set it to one of them")
    return value


def from_env() -> dict:
    """The resources as configured by BLOGTUNE_BLOG_DIR, BLOGTUNE_HOME and BLOGTUNE_PROFILE."""
    home = os.environ.get("BLOGTUNE_HOME", str(DEFAULT_HOME))
    languages = os.environ.get("BLOGTUNE_LANGUAGES", "")
    return {
        "blog": BlogSource(
            blog_dir=os.environ.get("BLOGTUNE_BLOG_DIR", str(SAMPLE_BLOG)),
            languages=[lang.strip() for lang in languages.split(",") if lang.strip()],
            max_post_bytes=int(os.environ.get("BLOGTUNE_MAX_POST_BYTES", str(MAX_POST_BYTES))),
        ),
        "artifacts": ArtifactHome(home=home, keep_versions=int(os.environ.get("BLOGTUNE_KEEP_VERSIONS", "3"))),
        "model_profile": ModelProfile(
            profile=_env_choice("BLOGTUNE_PROFILE", "tiny", ProfileName),
            base_model=os.environ.get("BLOGTUNE_BASE_MODEL", ""),
            merge_base_model=os.environ.get("BLOGTUNE_MERGE_BASE_MODEL", ""),
        ),
        "accelerator": Accelerator(
            device=_env_choice("BLOGTUNE_DEVICE", "auto", DeviceName),
            dtype=_env_choice("BLOGTUNE_DTYPE", "auto", DtypeName),
            num_processes=int(os.environ.get("BLOGTUNE_NUM_PROCESSES", "0")),
        ),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "retrain": RetrainPolicy(
            min_new_posts=int(os.environ.get("BLOGTUNE_MIN_NEW_POSTS", "1")),
            quiet_period_s=int(os.environ.get("BLOGTUNE_QUIET_PERIOD_S", "0")),
            full_check_s=int(os.environ.get("BLOGTUNE_FULL_CHECK_S", "3600")),
        ),
        "io_manager": ArtifactPathIOManager(home=home),
    }
