"""What every benchmark shares: runs in a fresh child process, the machine, tables, JSON, plots."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

RESULTS = Path(__file__).with_name("results")
MB = 1_000_000


def _measured(fn: Callable, args: tuple) -> dict:
    # ru_maxrss is the high-water mark of this process only: a fresh (spawned) child per run
    # keeps one run's peak from hiding the next one's.
    rss_at_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {**result, "peak_rss_mb": round(peak * 1024 / MB, 1), "rss_after_imports_mb": round(rss_at_start * 1024 / MB, 1)}


def in_child(fn: Callable[..., dict], *args) -> dict:
    """fn(*args) in a newly spawned process, with its peak RSS added to the dict it returns."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_measured, fn, args).result()


def median_of(runs: list[dict]) -> dict:
    """Numbers become medians over the runs (with the spread kept for seconds); the rest is taken from the first."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs]
            out[key] = statistics.median(values)
            if key.endswith("_s") and len(runs) > 1:
                out[f"{key}_all"] = values
    return out


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(out: Path, name: str, payload: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    record = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, "-m", f"benchmarks.{name}", *sys.argv[1:]]),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def new_figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(5.5 * ncols, 3.8), squeeze=False)


def save_figure(fig, out: Path, name: str) -> Path:
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def tiny_tokenizer(folder: Path) -> Path:
    """The tiny profile's tokenizer, built as base_model builds it, saved where children load it."""
    from blogtune_assets.core.tiny_model import pretraining_texts
    from blogtune_assets.core.tiny_tokenizer import train_tokenizer
    from blogtune_assets.core.profiles import SAMPLE_BLOG

    train_tokenizer(pretraining_texts(SAMPLE_BLOG, seed=42)[0]).save_pretrained(folder)
    return folder
