"""Row selections that copy no more than they must: an incremental build keeps 21,434 posts and changes one, and each
copy of their 86 MB of text costs ~0.02 s (benchmarks/README.md, "one new post")."""

from __future__ import annotations

import polars as pl

MAX_RUNS = 64  # beyond this many runs of consecutive rows, one gather is cheaper than joining slices


def made_by(frame: pl.DataFrame, column: str, code: str) -> pl.DataFrame:
    """The rows of an earlier result that this code made (`column` holds code_version()s), to be reused; the frame
    itself when all are."""
    made = frame[column] == code
    return frame if made.all() else frame.filter(made)


def gather(frame: pl.DataFrame, rows: list[int]) -> pl.DataFrame:
    """frame[rows], as slices of the frame where the rows come in few runs of consecutive ones: slices share the
    frame's memory, where a gather copies every value."""
    runs: list[list[int]] = []  # [start, length]
    for row in rows:
        if runs and runs[-1][0] + runs[-1][1] == row:
            runs[-1][1] += 1
        else:
            runs.append([row, 1])
            if len(runs) > MAX_RUNS:
                return frame[rows]
    if len(runs) == 1 and runs[0] == [0, frame.height]:
        return frame
    return pl.concat([frame.slice(start, length) for start, length in runs]) if runs else frame.clear()
