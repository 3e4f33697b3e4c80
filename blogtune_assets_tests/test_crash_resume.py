"""A training process killed mid-run: the retried run resumes from the newest whole checkpoint."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from blogtune_assets.assets.model import base_model, lora_adapter
from blogtune_assets.core.artifacts import ArtifactNotFound, ArtifactStore
from blogtune_assets.core.checkpoints import checkpoint_problem, newest_complete_checkpoint
from blogtune_assets.resources import from_env

STEPS = 8
RUN_CONFIG = {"ops": {"lora_adapter": {"config": {"max_steps": STEPS, "save_steps": 2, "logging_steps": 1, "max_length": 256}}}}


def _training_pids(home: Path) -> list[int]:
    """torchrun and its worker of this test: they run blogtune's training module with this BLOGTUNE_HOME.

    Other training runs on the machine (another test session, a user's demo) are left alone.
    """
    ours = f"BLOGTUNE_HOME={home}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and b"blogtune_assets.train_process" in (proc / "cmdline").read_bytes()
                and ours in (proc / "environ").read_bytes().split(b"\0")
            ):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _materialize(home, instance) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [dg.AssetSpec("sft_dataset"), base_model, lora_adapter],
        selection=[lora_adapter],
        resources=from_env(),
        run_config=RUN_CONFIG,
        instance=instance,
        raise_on_error=False,
    )


@pytest.mark.slow
def test_sigkill_mid_training_then_retry_resumes_and_finishes(home, sample_dataset, tiny_base_dir, monkeypatch):
    shutil.copytree(sample_dataset, home / "sft_dataset" / "v1")
    (home / "sft_dataset" / "current").symlink_to("v1")
    monkeypatch.setenv("BLOGTUNE_HOME", str(home))
    checkpoints = home / "lora_adapter" / ".checkpoints"

    with dg.instance_for_test() as instance:
        outcome = {}
        run = threading.Thread(target=lambda: outcome.setdefault("result", _materialize(home, instance)))
        run.start()
        deadline = time.monotonic() + 600
        while not list(checkpoints.glob("*/checkpoint-4/trainer_state.json")):
            assert time.monotonic() < deadline and run.is_alive(), "training never reached checkpoint-4"
            time.sleep(0.2)
        pids = _training_pids(home)
        assert pids, "no training process of this test found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        run.join(timeout=300)
        assert not outcome["result"].success
        with pytest.raises(ArtifactNotFound):
            ArtifactStore(home).current("lora_adapter")  # nothing half-trained was published
        assert not list((home / "lora_adapter").glob(".tmp-*"))

        # The kill may land mid-save; make sure a cut-short newest checkpoint is there to be skipped.
        run_dir = next(checkpoints.iterdir())
        newest = max(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        torn = run_dir / f"checkpoint-{int(newest.name.split('-')[1]) + 2}"
        shutil.copytree(newest, torn)
        (torn / "trainer_state.json").unlink()
        resumable = int(newest.name.split("-")[1])

        retry = _materialize(home, instance)
        assert retry.success
        meta = {k: v.value for k, v in retry.asset_materializations_for_node("lora_adapter")[0].metadata.items()}
        assert meta["resumed_from_step"] == resumable and meta["steps"] == STEPS  # as many steps as an unbroken run
        logs = [e.user_message for e in instance.all_logs(retry.run_id)]
        assert any(f"skipping half-written {torn.name}" in line for line in logs)

    adapter = ArtifactStore(home).current("lora_adapter")
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_dir), adapter).merge_and_unload()
    assert not any("lora" in name for name, _ in merged.named_parameters())


def _checkpoint(tmp_path: Path, trained_checkpoint: Path, name: str) -> Path:
    return Path(shutil.copytree(trained_checkpoint, tmp_path / name))


@pytest.fixture(scope="module")
def whole_checkpoint(tmp_path_factory, tiny_base_dir, sample_dataset) -> Path:
    from blogtune_assets.core.device import Device
    from blogtune_assets.core.train import train_lora
    from blogtune_assets_tests.conftest import QUICK

    out = tmp_path_factory.mktemp("ckpt")
    train_lora(tiny_base_dir, sample_dataset, out / "ckpt", out / "adapter", QUICK, Device("cpu"), emit=lambda line: None)
    return out / "ckpt" / "checkpoint-4"


@pytest.mark.parametrize(
    "tear, problem",
    [
        (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json missing"),
        (lambda c: (c / "trainer_state.json").write_text("{\"global_st"), "trainer_state.json missing or unreadable"),
        (lambda c: os.truncate(c / "adapter_model.safetensors", 100), "adapter_model.safetensors unreadable"),
        (lambda c: os.truncate(c / "optimizer.pt", (c / "optimizer.pt").stat().st_size // 2), "optimizer.pt missing or cut short"),
        (lambda c: (c / "scheduler.pt").unlink(), "scheduler.pt missing or cut short"),
    ],
)
def test_half_written_checkpoints_are_recognised(whole_checkpoint, tmp_path, tear, problem):
    assert checkpoint_problem(whole_checkpoint) is None
    older = _checkpoint(tmp_path, whole_checkpoint, "checkpoint-2")
    (older / "trainer_state.json").write_text((older / "trainer_state.json").read_text().replace('"global_step": 4', '"global_step": 2'))
    torn = _checkpoint(tmp_path, whole_checkpoint, "checkpoint-4")
    tear(torn)
    assert problem in checkpoint_problem(torn)
    lines = []
    assert newest_complete_checkpoint(tmp_path, lines.append) == older
    assert not torn.exists() and "skipping half-written checkpoint-4" in lines[0]
