"""The `dagster` CLI as a user runs it (`make demo`), and what it recorded, for the tests that use it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

from blogtune_assets.core.profiles import REPO_ROOT
from blogtune_assets.summary import check_verdicts, latest_metadata

BIN = Path(sys.executable).parent


def materialize(tmp_path: Path, profile: str, selection: str, blog_dir: Path | None = None) -> dg.DagsterInstance:
    """Materialize selection with a fresh BLOGTUNE_HOME and DAGSTER_HOME (with the instance config `make demo`
    installs), offline with an empty hub cache: nothing may be downloaded. What it printed is kept in
    tmp_path / "dagster_cli.log"."""
    env = {
        **os.environ,
        "BLOGTUNE_PROFILE": profile,
        "BLOGTUNE_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        **({"BLOGTUNE_BLOG_DIR": str(blog_dir)} if blog_dir else {}),
    }
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    done = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "blogtune_assets.definitions", "--select", selection],
        env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    (tmp_path / "dagster_cli.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    return dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))


def summary(tmp_path: Path, profile: str) -> str:
    """What `make demo` prints last, for the home materialize() filled."""
    env = {**os.environ, "BLOGTUNE_PROFILE": profile, "BLOGTUNE_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    done = subprocess.run([str(BIN / "python"), "-m", "blogtune_assets.summary"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def metadata(instance: dg.DagsterInstance, asset: str) -> dict:
    meta = latest_metadata(instance, asset)
    assert meta is not None, f"{asset} was not materialized"
    return meta


def checks(instance: dg.DagsterInstance) -> dict[str, bool]:
    """Each check's latest verdict, as the demo's summary reads them (only the checks that ran)."""
    return {name: passed for name, passed in check_verdicts(instance).items() if passed is not None}
