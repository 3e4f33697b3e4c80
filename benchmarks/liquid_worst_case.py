"""Cleaning one line of pathological Liquid and Markdown: time against size, where one regex took hours.

Each input is one line of an opener that never closes, or a run that never matches: the shapes on which the
one-regex scanner searched to the end of the line (or paragraph) again from every opener. Chars/s should stay
flat as the size grows; leftover_liquid, the asset check's reading of the result, is timed beside it.

    .venv/bin/python -m benchmarks.liquid_worst_case --sizes 20000 200000 5000000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from pathlib import Path

from benchmarks import measure
from blogtune_assets.core.liquid import clean_body, leftover_liquid


def repeated(unit: str, head: str = "") -> Callable[[int], str]:
    return lambda size: head + unit * ((size - len(head)) // len(unit))


def growing_backtick_runs(size: int) -> str:
    """`a ``a ```a ...: no run closes, so each is tried again at every length below its own."""
    runs, chars = [], 0
    while chars < size:
        runs.append("`" * len(runs) + "`a ")
        chars += len(runs[-1])
    return "".join(runs)[:size]


# The one-regex scanner was quadratic (cubic for Liquid image urls) on all but "`a ", "{% raw %}" and "```".
PATTERNS: dict[str, Callable[[int], str]] = {
    '"{% x " * n': repeated("{% x "),
    '"{{ x " * n': repeated("{{ x "),
    '"![a]({{ " * n': repeated("![a]({{ "),
    '"[t]({% " * n': repeated("[t]({% "),
    '"`a " * n': repeated("`a "),
    '"{% raw %}" * n': repeated("{% raw %}"),
    '"<img " * n': repeated("<img "),
    '"{: " * n': repeated("{: "),
    '"```" * n': repeated("```"),
    '"x" + "`" * n': repeated("`", head="x"),
    "`a ``a ```a ...": growing_backtick_runs,
    '"[a " * n': repeated("[a "),
    '"![a " * n': repeated("![a "),
    '"![a](x" * n': repeated("![a](x"),
    '"{% highlight x" + " " * n': repeated(" ", head="{% highlight x"),
    '" " * n + "x"': lambda size: " " * (size - 1) + "x",
    '"<!--" * n': repeated("<!--"),
    '"<script " * n': repeated("<script "),
    '"{::comment}" * n': repeated("{::comment}"),
}


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(timeit.repeat(fn, number=1, repeat=repeats))


def measure_pattern(make: Callable[[int], str], size: int, repeats: int) -> dict:
    body = make(size)
    cleaned = clean_body(body)
    clean_s = median_seconds(lambda: clean_body(body), repeats)
    return {
        "chars": len(body),
        "clean_s": round(clean_s, 4),
        "chars_per_s": round(len(body) / clean_s),
        "leftover_liquid_s": round(median_seconds(lambda: leftover_liquid(cleaned), repeats), 4),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 5_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    patterns = {name: [measure_pattern(make, size, args.repeats) for size in args.sizes] for name, make in PATTERNS.items()}
    measure.print_table(
        ["line", "chars", "clean_body s (median)", "chars/s", "leftover_liquid s"],
        [[name, r["chars"], r["clean_s"], r["chars_per_s"], r["leftover_liquid_s"]] for name, runs in patterns.items() for r in runs],
    )
    payload = {"sizes": args.sizes, "repeats": args.repeats, "patterns": patterns}
    print("wrote", measure.write_results(args.out, "liquid_worst_case", payload))
    return payload


if __name__ == "__main__":
    main()
