"""Where the heavy steps run: device, compute dtype and data-parallel processes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a device is used, not where the definitions load
    import torch

DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu"
    dtype: str = "float32"  # training compute dtype
    num_processes: int = 1  # data-parallel training processes, one per GPU

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
        import torch

        gpu = torch.cuda.get_device_name(0) if self.kind == "cuda" and torch.cuda.is_available() else ""
        return {**asdict(self), "gpu": gpu, "torch": torch.__version__}


def resolve_device(requested: str = "auto", dtype: str = "auto", num_processes: int = 0) -> Device:
    """`auto` means CUDA when torch sees it, bf16 where the GPU has it, and one process per GPU."""
    import torch

    cuda = torch.cuda.is_available()
    kind = ("cuda" if cuda else "cpu") if requested == "auto" else requested
    if kind not in ("cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, not {requested!r}")
    if kind == "cuda" and not cuda:
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device")
    if dtype == "auto":
        dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if kind == "cuda" else "float32"
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be auto or one of {DTYPES}, not {dtype!r}")
    if kind == "cpu" and dtype == "float16":
        raise ValueError("float16 training needs CUDA; use float32 or bfloat16 on the CPU")
    if num_processes <= 0:
        num_processes = torch.cuda.device_count() if kind == "cuda" else 1
    if kind == "cuda" and num_processes > torch.cuda.device_count():
        raise ValueError(f"{num_processes} processes asked for, but torch sees {torch.cuda.device_count()} GPUs")
    return Device(kind, dtype, num_processes)
