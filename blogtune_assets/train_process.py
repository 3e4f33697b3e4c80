"""The training process lora_adapter launches through Dagster Pipes.

Run by torchrun, once per data-parallel process (one process on a CPU or a
single GPU: the same code either way). Every process trains; only rank 0 talks
to Dagster, so each log line and metric is reported once. The request is a JSON
file rather than Pipes extras because ranks other than 0 never open Pipes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from blogtune_assets.core.device import Device
from blogtune_assets.core.profiles import TrainSettings


@dataclasses.dataclass(frozen=True)
class TrainRequest:
    base_dir: str
    dataset_dir: str
    checkpoint_dir: str
    out_dir: str
    settings: dict
    device: dict
    parent_adapter: str = ""  # a warm start continues this adapter; "" trains a fresh LoRA

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, path: Path) -> TrainRequest:
        return cls(**json.loads(path.read_text()))


def launch_command(request_path: Path, num_processes: int) -> list[str]:
    """torchrun on this machine; N > 1 processes train data-parallel (NCCL on GPUs, gloo on CPUs)."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", f"--nproc-per-node={num_processes}",
        "-m", "blogtune_assets.train_process", str(request_path),
    ]  # fmt: skip


def run(request: TrainRequest, emit) -> dict:
    # Here, not at the top: lora_adapter's step imports this module for TrainRequest, and trl, peft and
    # datasets are this process's cost, not the step's.
    from blogtune_assets.core.train import train_lora

    settings = TrainSettings(**{**request.settings, "target_modules": tuple(request.settings["target_modules"])})
    out_dir = Path(request.out_dir)
    result = train_lora(
        Path(request.base_dir), Path(request.dataset_dir), Path(request.checkpoint_dir), out_dir, settings,
        Device(**request.device), emit=emit, parent_adapter=Path(request.parent_adapter) if request.parent_adapter else None,
    )  # fmt: skip
    if int(os.environ.get("RANK", 0)) == 0:
        (out_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
        (out_dir / "log_history.json").write_text(json.dumps(result.log_history, indent=2))
    return result.metrics


def main(request_path: str) -> None:
    request = TrainRequest.read(Path(request_path))
    if int(os.environ.get("RANK", 0)) != 0:
        run(request, emit=lambda line: None)
        return
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        metrics = run(request, emit=pipes.log.info)
        pipes.report_asset_materialization(metadata=metrics)


if __name__ == "__main__":
    main(sys.argv[1])
