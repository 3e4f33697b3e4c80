"""Where the heavy steps run: device, compute dtype and data-parallel processes."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # torch is imported where a device is used, not where the definitions load
    import torch

DTYPES = ("bfloat16", "float16", "float32")
# What BLOGTUNE_DEVICE and BLOGTUNE_DTYPE may say, as types the resources validate when the definitions load.
DeviceName = Literal["auto", "cuda", "cpu"]
DtypeName = Literal["auto", "bfloat16", "float16", "float32"]

# What torch sees, asked in a child process: CUDA initialised in the Dagster step (is_bf16_supported and
# get_device_name do it) would hold a context on GPU 0, hundreds of MB, while the training processes run.
PROBE = """
import json, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "cuda_devices": torch.cuda.device_count() if cuda else 0,
    "bf16": cuda and torch.cuda.is_bf16_supported(),
    "gpu": torch.cuda.get_device_name(0) if cuda else "",
    "torch": torch.__version__,
}))
"""


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu"
    dtype: str = "float32"  # training compute dtype
    num_processes: int = 1  # data-parallel training processes, one per GPU
    # What the probe saw, for a run's metadata; not part of what a device is.
    gpu: str = field(default="", compare=False)
    torch_version: str = field(default="", compare=False)

    @property
    def qlora(self) -> bool:
        return self.kind == "cuda"

    @property
    def bf16(self) -> bool:
        return self.dtype == "bfloat16"

    @property
    def fp16(self) -> bool:
        return self.dtype == "float16"

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)

    def describe(self) -> dict:
        """The resolved values, for a run's metadata."""
        return asdict(self)


@functools.cache  # a process's devices do not change while it runs; the probe costs an import of torch
def what_torch_sees() -> dict:
    """CUDA devices, bf16 support, the first GPU's name and torch's version, from a short child process."""
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    if probe.returncode:
        raise RuntimeError(f"could not ask torch which devices it sees:\n{probe.stderr[-2000:]}")
    return json.loads(probe.stdout.strip().splitlines()[-1])


def resolve_device(requested: str = "auto", dtype: str = "auto", num_processes: int = 0, seen: dict | None = None) -> Device:
    """`auto` means CUDA when torch sees it, bf16 where the GPU has it, and one process per GPU.

    Imports no torch and starts no CUDA context in the calling process (`what_torch_sees`).
    """
    seen = seen or what_torch_sees()
    cuda = seen["cuda_devices"] > 0
    kind = ("cuda" if cuda else "cpu") if requested == "auto" else requested
    if kind not in ("cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, not {requested!r}")
    if kind == "cuda" and not cuda:
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device")
    if dtype == "auto":
        dtype = ("bfloat16" if seen["bf16"] else "float16") if kind == "cuda" else "float32"
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {DTYPES}, not {dtype!r}")
    if kind == "cpu" and dtype == "float16":
        raise ValueError("float16 training needs CUDA; use float32 or bfloat16 on the CPU")
    if num_processes <= 0:
        num_processes = seen["cuda_devices"] if kind == "cuda" else 1
    if kind == "cuda" and num_processes > seen["cuda_devices"]:
        raise ValueError(f"{num_processes} processes asked for, but torch sees {seen['cuda_devices']} GPUs")
    return Device(kind, dtype, num_processes, gpu=seen["gpu"] if kind == "cuda" else "", torch_version=seen["torch"])
