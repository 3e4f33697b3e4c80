"""Derive the synthetic blog's shape from the real posts in the shared corpus.

Only derived numbers are stored (calibration.json); the corpus itself never
enters the repository. Rerun: .venv/bin/python -m benchmarks.calibrate

The sample is two strata of the real blog: hand-written posts (`type: post`,
2011-2023) and AI notes (`type: note`, 2025-26). Each stratum gets its own
length distribution and feature shares. The sample skips some large posts, so
lengths set only the *shape* (log-normal sigma, relative means); the note/post
mix is then solved so the mean file size matches the reference run's
86 MB / 21,434 posts (see generator).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path

from blogtune_assets.core.jekyll import parse_frontmatter

DEFAULT_CORPUS = Path("/work/shared/corpora/jekyll-ai-blog")
OUT = Path(__file__).with_name("calibration.json")

# What a post may contain, as the cleaner sees it; each share is "posts with at least one".
FEATURES = {
    "raw_block": re.compile(r"\{%-?\s*raw\s*-?%\}"),
    "code_fence": re.compile(r"^[ \t]{0,3}```", re.MULTILINE),
    "image": re.compile(r"!\[[^\]\n]*\]\("),
    "ial": re.compile(r"\{:[^}\n]*\}"),
    "liquid": re.compile(r"\{\{|\{%-?\s*(?!raw|endraw)\w"),
    "heading": re.compile(r"^#{1,6} ", re.MULTILINE),
    "table": re.compile(r"^\|.*\|\s*$", re.MULTILINE),
    "inline_code": re.compile(r"`[^`\n]+`"),
    "bold": re.compile(r"\*\*[^*\n]+\*\*"),
}
CJK = re.compile(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")
LATIN = re.compile(r"[A-Za-z]")


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(corpus.glob("_posts/*/*.md")) + sorted(corpus.glob("_index_samples/*/*.md"))


def yaml_scalar(value) -> str:
    """A frontmatter value as it is written in YAML, so the generator can write it back."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def lognormal(values: list[float]) -> dict:
    logs = [math.log(v) for v in values]
    mu = sum(logs) / len(logs)
    sigma = math.sqrt(sum((x - mu) ** 2 for x in logs) / max(len(logs) - 1, 1))
    return {"mu": round(mu, 4), "sigma": round(sigma, 4), "n": len(values)}


def describe_stratum(docs: list[dict]) -> dict:
    by_lang: dict[str, list[dict]] = {}
    for doc in docs:
        by_lang.setdefault(doc["lang"], []).append(doc)
    keys = Counter(k for d in docs for k in d["meta"])
    values = {
        key: dict(Counter(yaml_scalar(d["meta"][key]) for d in docs if key in d["meta"]))
        for key in sorted(keys)
        if key not in ("title",)
    }
    return {
        "posts": len(docs),
        "file_bytes": {lang: lognormal([d["bytes"] for d in ds]) for lang, ds in sorted(by_lang.items())},
        "mean_file_bytes": round(sum(d["bytes"] for d in docs) / len(docs), 1),
        "frontmatter_key_share": {k: round(n / len(docs), 4) for k, n in sorted(keys.items())},
        "frontmatter_values": values,
        "feature_share": {
            name: round(sum(bool(d["features"][name]) for d in docs) / len(docs), 4) for name in FEATURES
        },
        # Of posts with a feature, how many occurrences per 1,000 body characters.
        "feature_density_per_kchar": {
            name: round(
                sum(d["features"][name] for d in docs) / max(sum(d["chars"] for d in docs if d["features"][name]), 1) * 1000, 3
            )
            for name in FEATURES
        },
        "wholly_raw_share": round(sum(d["wholly_raw"] for d in docs) / len(docs), 4),
    }


def measure(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    meta, body = parse_frontmatter(text)
    letters_cjk, letters_latin = len(CJK.findall(body)), len(LATIN.findall(body))
    return {
        "lang": path.parent.name,
        "stratum": str(meta.get("type", "post")),
        "meta": meta,
        "bytes": len(text.encode()),
        "chars": len(body),
        "title_chars": len(str(meta.get("title", ""))),
        "cjk_share": letters_cjk / max(letters_cjk + letters_latin, 1),
        "features": {name: len(rx.findall(body)) for name, rx in FEATURES.items()},
        "wholly_raw": body.lstrip().startswith("{% raw %}") and body.rstrip().endswith("{% endraw %}"),
        "bytes_per_char": len(body.encode()) / max(len(body), 1),
    }


def calibrate(corpus: Path) -> dict:
    docs = [measure(p) for p in corpus_files(corpus)]
    if not docs:
        raise FileNotFoundError(f"no posts under {corpus}")
    strata = sorted({d["stratum"] for d in docs})
    langs = sorted({d["lang"] for d in docs})
    return {
        "source": "real posts of the reference blog (shared corpus jekyll-ai-blog), derived numbers only",
        "files": len(docs),
        "strata": {s: describe_stratum([d for d in docs if d["stratum"] == s]) for s in strata},
        "language": {
            lang: {
                "cjk_letter_share": round(sum(d["cjk_share"] for d in ds) / len(ds), 4),
                "body_bytes_per_char": round(sum(d["bytes_per_char"] for d in ds) / len(ds), 4),
                "title_chars": lognormal([max(d["title_chars"], 1) for d in ds]),
            }
            for lang in langs
            for ds in [[d for d in docs if d["lang"] == lang]]
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    stats = calibrate(args.corpus)
    args.out.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(stats, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
