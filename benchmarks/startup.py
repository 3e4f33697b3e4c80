"""What a Dagster step pays before its first line: importing the definitions, and what each step adds.

Every step of a run is a fresh process that imports `blogtune_assets.definitions`; the libraries a
step needs on top of that come in its own body. Each figure is the median wall time of fresh
interpreters (`python -c "import ..."`), so nothing is cached in-process between repeats.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import measure

# What a process imports, by who pays it.
IMPORTS = {
    "definitions (every step)": "import blogtune_assets.definitions",
    # Up to its first token counted: the definitions, then Qwen3's tokenizer (151,669 tokens) found and loaded.
    "sft_dataset's step, to its first count": (
        "import blogtune_assets.definitions\n"
        "from blogtune_assets.core.profiles import get_profile\n"
        "from blogtune_assets.core.tokenizer_source import counting_tokenizer\n"
        "counting_tokenizer(get_profile('qwen3-shape')).load()"
    ),
    "training process (torchrun)": "import blogtune_assets.train_process, blogtune_assets.core.train",
    "python itself": "pass",
}


def seconds_to_import(statement: str, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(runs), 3), "min_s": round(min(runs), 3), "max_s": round(max(runs), 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=measure.RESULTS)
    args = parser.parse_args(argv)
    results = {who: {"statement": statement, **seconds_to_import(statement, args.repeats)} for who, statement in IMPORTS.items()}
    measure.print_table(["process", "median s", "min s", "max s"], [[w, r["median_s"], r["min_s"], r["max_s"]] for w, r in results.items()])
    payload = {"repeats": args.repeats, "imports": results}
    print("wrote", measure.write_results(args.out, "startup", payload))
    return payload


if __name__ == "__main__":
    main()
