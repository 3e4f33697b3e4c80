"""The production configuration in deploy/: Kubernetes tags and instance, and PostgreSQL storage for real."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest
from dagster._config import process_config
from dagster._core.instance.ref import InstanceRef
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import get_user_defined_k8s_config

from blogtune_assets.compute import gpu_pod_config
from blogtune_assets.definitions import all_assets
from blogtune_assets_tests.conftest import materialize_data

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
HEAVY_ASSETS = {"base_model", "lora_adapter", "merged_model", "gguf_q4km"}


def test_every_heavy_asset_asks_kubernetes_for_one_gpu():
    for asset in all_assets:
        name = asset.key.to_user_string()
        tags = {k: v if isinstance(v, str) else json.dumps(v) for k, v in asset.op.tags.items()}
        k8s = get_user_defined_k8s_config(tags)  # dagster-k8s's own parser and schema
        if name in HEAVY_ASSETS:
            assert k8s.container_config["resources"]["limits"] == {"nvidia.com/gpu": "1"}, name
            assert k8s.pod_spec_config["tolerations"][0]["key"] == "nvidia.com/gpu", name
            assert asset.op.pool == "gpu" and asset.specs_by_key[asset.key].kinds, name
        else:
            assert not k8s.container_config and asset.op.pool is None, name


def test_node_selector_is_the_users_to_set():
    config = gpu_pod_config("cloud.google.com/gke-accelerator=nvidia-l4,pool=gpu", toleration="")
    parsed = get_user_defined_k8s_config({"dagster-k8s/config": json.dumps(config)})
    assert parsed.pod_spec_config == {"node_selector": {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "gpu"}}
    with pytest.raises(ValueError, match="BLOGTUNE_GPU_NODE_SELECTOR"):
        gpu_pod_config("just-a-word")


def test_kubernetes_instance_config_loads(tmp_path, monkeypatch):
    for var in ("DAGSTER_K8S_NAMESPACE", "DAGSTER_PG_HOST", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(var, "x")
    shutil.copy(DEPLOY / "k8s" / "dagster.yaml", tmp_path / "dagster.yaml")
    ref = InstanceRef.from_dir(str(tmp_path))  # Dagster's own schema check of the whole file
    assert (ref.run_launcher_data.class_name, ref.storage_data.class_name) == ("K8sRunLauncher", "DagsterPostgresStorage")
    launcher = process_config(K8sRunLauncher.config_type(), ref.run_launcher_data.config_dict)
    assert launcher.success, launcher.errors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(monkeypatch):
    """A throwaway PostgreSQL server (Debian's postgresql package) on 127.0.0.1, stopped afterwards."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server not installed: `make system-deps` installs Debian's postgresql")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="blogtune-pg-"))
    # initdb refuses to run as root: the server runs as the package's postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    port = _free_port()
    data = root / "data"
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "blogtune", "--auth=trust")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start")  # fmt: skip
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "blogtune", "dagster")
        env = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USERNAME": "blogtune",
               "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": "dagster"}  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_data_assets_materialize_against_postgresql_storage(postgres, sample_blog_copy, home, tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(DEPLOY / "postgres" / "dagster.yaml", dagster_home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        meta = materialize_data(sample_blog_copy, home, monkeypatch, instance)
    # A new instance (another process, the daemon after a restart) reads the same history back.
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("sft_dataset"))
        assert event.asset_materialization.metadata["train_examples"].value == meta["sft_dataset"]["train_examples"]
        assert len(instance.get_runs()) == 1
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
