"""Metadata laid out for people reading the Dagster UI."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence

import dagster as dg

TABLE_ROWS = 50
# The Dagster UI folds markdown longer than this behind "[Show Markdown]"; what should be seen at a glance stays under it.
UNFOLDED_CHARS = 1000


def md_table(headers: Sequence[str], rows: Iterable[Sequence], limit: int = TABLE_ROWS) -> dg.MarkdownMetadataValue:
    rows = list(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows[:limit]:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if len(rows) > limit:
        lines.append(f"\n… and {len(rows) - limit} more rows (full list in the artifact folder)")
    if not rows:
        lines.append("| " + " | ".join("—" for _ in headers) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _cell(value) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display), imported only when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart_md(title: str, labels: Sequence[str], values: Sequence[float], xlabel: str, ylabel: str) -> dg.MarkdownMetadataValue:
    """A PNG bar chart embedded in markdown, the way the Dagster quickstart shows plots."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(range(len(values)), values, color="#4f43dd")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return dg.MetadataValue.md(_png_md(fig, title))


def _png_md(fig, alt: str) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def loss_curve_md(log_history: list[dict]) -> dg.MarkdownMetadataValue:
    """Train and eval loss against the optimizer step, from the trainer's log history."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for key, label in (("loss", "train"), ("eval_loss", "eval")):
        points = [(h["step"], h[key]) for h in log_history if key in h and "step" in h]
        if points:
            ax.plot(*zip(*points), marker="o" if label == "eval" else None, label=label)
    ax.set(title="Loss", xlabel="step", ylabel="loss")
    ax.legend()
    fig.tight_layout()
    return dg.MetadataValue.md(_png_md(fig, "loss curve"))


def loss_at_a_glance_md(log_history: list[dict], metrics: dict) -> dg.MarkdownMetadataValue:
    """Short enough to show unfolded: a sparkline of the logged train loss (per batch, so noisy) and the
    losses that are not: eval and a fixed train sample, before and after training."""
    train = [h["loss"] for h in log_history if "loss" in h]
    table = md_table(
        ["loss", "before", "after"],
        [
            ("eval split", metrics["base_eval_loss"], metrics["eval_loss"]),
            (f"train sample ({metrics['train_split_loss_examples']} examples)", metrics["base_train_split_loss"], metrics["train_split_loss"]),
        ],
    ).value
    return dg.MetadataValue.md(f"{_sparkline_md(train, 'train loss per logged step')}\n\n{table}" if len(train) > 1 else table)


def _sparkline_md(values: Sequence[float], alt: str) -> str:
    """A 144 x 40 two-colour PNG line, a few hundred characters of base64: a picture without a click."""
    from PIL import Image

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2.4, 0.66), dpi=60)
    ax.plot(range(len(values)), values, color="#4f43dd", lw=1.2, antialiased=False)
    ax.set_axis_off()
    fig.subplots_adjust(0, 0, 1, 1)
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png")
    plt.close(fig)
    small = io.BytesIO()
    Image.open(rendered).convert("RGB").quantize(colors=2).save(small, format="PNG", optimize=True, bits=1)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(small.getvalue()).decode()}) {alt}: {values[0]:.3f} → {values[-1]:.3f}"
