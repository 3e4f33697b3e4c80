"""Where posts come from, where artifacts go, and which profile runs.

Each is a ConfigurableResource whose defaults come from the BLOGTUNE_*
environment variables, so a user points blogtune at their blog without code.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from blogtune_assets.core.artifacts import ArtifactStore
from blogtune_assets.core.device import Device, DeviceName, DtypeName, resolve_device
from blogtune_assets.core.environment import VARIABLES, read
from blogtune_assets.core.jekyll import MAX_POST_BYTES
from blogtune_assets.core.profiles import SAMPLE_BLOG, Profile, ProfileName, get_profile

DEFAULT_HOME = VARIABLES["BLOGTUNE_HOME"].default


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


# On a run the sensor launched from a full check: raw_posts reads every file too, not only those whose stat changed.
FULL_READ_TAG = "blogtune/full_read"


class RetrainPolicy(dg.ConfigurableResource):
    """How eagerly new posts retrain: BLOGTUNE_MIN_NEW_POSTS, BLOGTUNE_QUIET_PERIOD_S, BLOGTUNE_FULL_CHECK_S,
    BLOGTUNE_FULL_RETRAIN_ON_DELETE.

    The quiet period waits until the posts have stopped changing for that long,
    so a writing session of many saves becomes one run. Between full checks the sensor
    hashes only files whose size, mtime, ctime or inode changed.
    """

    min_new_posts: int = 1
    quiet_period_s: int = 0
    # Every file hashed this often, whatever its stat says (1.7-2.8 s at 21,434 posts on 2 cores), by the sensor and
    # by raw_posts, for file systems whose times do not move on an edit.
    full_check_s: int = 3600
    # New and edited posts warm-start the published adapter; a deleted post (and an edited post's old text) stays
    # learned until a full retrain (the weekly schedule's), unless this is set: the sensor then asks for a full
    # retrain when posts are deleted, and lora_adapter trains in full whenever its parent learned an example that is gone.
    full_retrain_on_delete: bool = False


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


def from_env() -> dict:
    """The resources as the BLOGTUNE_* variables configure them (core/environment.py lists each)."""
    home = str(read("BLOGTUNE_HOME"))
    max_post_bytes = read("BLOGTUNE_MAX_POST_BYTES")
    return {
        "blog": BlogSource(
            blog_dir=str(read("BLOGTUNE_BLOG_DIR")),
            languages=read("BLOGTUNE_LANGUAGES"),
            max_post_bytes=MAX_POST_BYTES if max_post_bytes is None else max_post_bytes,
        ),
        "artifacts": ArtifactHome(home=home, keep_versions=read("BLOGTUNE_KEEP_VERSIONS")),
        "model_profile": ModelProfile(
            profile=read("BLOGTUNE_PROFILE"),
            base_model=read("BLOGTUNE_BASE_MODEL"),
            merge_base_model=read("BLOGTUNE_MERGE_BASE_MODEL"),
        ),
        "accelerator": Accelerator(
            device=read("BLOGTUNE_DEVICE"),
            dtype=read("BLOGTUNE_DTYPE"),
            num_processes=read("BLOGTUNE_NUM_PROCESSES"),
        ),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "retrain": RetrainPolicy(
            min_new_posts=read("BLOGTUNE_MIN_NEW_POSTS"),
            quiet_period_s=read("BLOGTUNE_QUIET_PERIOD_S"),
            full_check_s=read("BLOGTUNE_FULL_CHECK_S"),
            full_retrain_on_delete=read("BLOGTUNE_FULL_RETRAIN_ON_DELETE"),
        ),
        "io_manager": ArtifactPathIOManager(home=home),
    }
