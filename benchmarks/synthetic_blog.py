"""A seeded synthetic Jekyll blog with the reference blog's shape, at any size.

Shape comes from calibration.json (derived from the real posts by
benchmarks/calibrate.py): per stratum (hand-written posts, AI notes) and
language, a log-normal file size, frontmatter keys and values, and the share of
posts holding raw blocks, code fences, images, kramdown attribute lists, Liquid,
headings, tables, inline code and bold text; per language, the share of Latin
letters inside Chinese text and the title length.

Scale comes from the reference run: 21,434 posts, 10,726 en / 10,708 zh,
~86 MB, 30 posts too short to keep. The real sample skips some large posts, so
its sizes fix only each stratum's shape; the note/post mix is solved so that
the expected file size is 86 MB / 21,434.

    .venv/bin/python -m benchmarks.synthetic_blog --posts 21434 --out /tmp/blog
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

CALIBRATION = Path(__file__).with_name("calibration.json")
REFERENCE = {"posts": 21_434, "en": 10_726, "zh": 10_708, "bytes": 86_000_000, "too_short": 30}

EN_WORDS = (
    "the model data training blog post code we it is a to of and in that for on with as this you by be are "
    "from at or an not can have was but all more one about will so if when which what their there how time "
    "people work life first make new use learn write read system first language python rust swift server "
    "client request function value memory token batch layer weight loss gradient step file build test run "
    "git commit branch merge deploy cloud network latency cache index query table database user app mobile "
    "design product market startup company team money book travel city friend family school teacher china "
    "beijing shanghai english chinese question answer idea simple hard easy fast slow better best think know"
).split()
ZH_CHARS = (
    "的一是不了在人有我他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多"
    "天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身"
    "些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门"
    "相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报"
    "立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边"
    "共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花"
).replace(" ", "")
ZH_PUNCT = "，，，、。"
LANGS = ("en", "zh")
SENTENCE_POOL = 3000  # distinct sentences per language; bodies are drawn from them for speed


@dataclass(frozen=True)
class BlogSummary:
    posts: int
    bytes: int
    by_language: dict[str, int]
    by_stratum: dict[str, int]
    with_feature: dict[str, int]
    too_short: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def load_calibration(path: Path = CALIBRATION) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def lognormal_mean(params: dict) -> float:
    return math.exp(params["mu"] + params["sigma"] ** 2 / 2)


def note_share(calibration: dict, target_bytes: float) -> float:
    """The share of AI notes that makes the expected file size the reference run's."""
    means = {
        stratum: sum(lognormal_mean(p) for p in s["file_bytes"].values()) / len(s["file_bytes"])
        for stratum, s in calibration["strata"].items()
    }
    note, post = means["note"], means["post"]
    return min(1.0, max(0.0, (post - target_bytes) / (post - note)))


class Writer:
    """Text in one language, drawn from a seeded pool of sentences."""

    def __init__(self, rng: random.Random, lang: str, latin_share: float):
        self.rng = rng
        self.lang = lang
        self.pool = [self._sentence(latin_share) for _ in range(SENTENCE_POOL)]

    def words(self, n: int) -> str:
        return " ".join(self.rng.choice(EN_WORDS) for _ in range(n))

    def _sentence(self, latin_share: float) -> str:
        rng = self.rng
        if self.lang == "en":
            text = self.words(rng.randint(6, 24))
            return text[0].upper() + text[1:] + rng.choice("...?!")[0]
        parts = []
        for _ in range(rng.randint(2, 5)):
            # A Latin word is ~5 letters against one letter per hanzi.
            if rng.random() < latin_share / 5:
                parts.append(f" {self.words(rng.randint(1, 2))} ")
            else:
                parts.append("".join(rng.choices(ZH_CHARS, k=rng.randint(4, 14))) + rng.choice(ZH_PUNCT))
        return "".join(parts).rstrip("，、") + "。"

    def title(self, chars: int) -> str:
        if self.lang == "en":
            return self.words(max(1, chars // 6)).title()
        return "".join(self.rng.choices(ZH_CHARS, k=max(2, chars)))

    def paragraph(self, inline_code: bool, bold: bool) -> str:
        sentences = self.rng.choices(self.pool, k=self.rng.randint(2, 6))
        if inline_code:
            sentences[0] = f"`{self.rng.choice(EN_WORDS)}_{self.rng.choice(EN_WORDS)}()` " + sentences[0]
        if bold:
            sentences[-1] = f"**{sentences[-1]}**"
        return ("" if self.lang == "zh" else " ").join(sentences)


def code_fence(rng: random.Random, liquid: bool) -> str:
    lines = [f"{rng.choice(EN_WORDS)} = {rng.choice(EN_WORDS)}({rng.randint(0, 99)})" for _ in range(rng.randint(2, 12))]
    if liquid:
        lines.append("{{ page.title }} {% if user %}hi{% endif %}")
    return "```" + rng.choice(["python", "bash", "rust", "swift", ""]) + "\n" + "\n".join(lines) + "\n```"


def feature_block(rng: random.Random, writer: Writer, feature: str) -> str:
    if feature == "code_fence":
        return code_fence(rng, liquid=False)
    if feature == "raw_block":
        return "{% raw %}\n" + code_fence(rng, liquid=True) + "\n{% endraw %}"
    if feature == "image":
        return f"![{rng.choice(EN_WORDS)}](assets/images/{rng.choice(EN_WORDS)}/{rng.randint(1, 9)}.jpg){{: .responsive }}"
    if feature == "ial":
        return "{: .centered }"
    if feature == "liquid":
        return f"See [{writer.words(2)}]({{{{ site.baseurl }}}}/{rng.choice(EN_WORDS)}) and {{% include {rng.choice(EN_WORDS)}.html %}}"
    if feature == "heading":
        return "## " + writer.title(12)
    if feature == "table":
        rows = [f"| `{rng.choice(EN_WORDS)}` | {writer.words(3)} |" for _ in range(rng.randint(2, 6))]
        return "| name | use |\n|---|---|\n" + "\n".join(rows)
    raise ValueError(feature)


BLOCK_FEATURES = ("code_fence", "raw_block", "image", "ial", "liquid", "heading", "table")


def post_body(rng: random.Random, writer: Writer, stratum: dict, target_bytes: int) -> tuple[str, set[str]]:
    shares = stratum["feature_share"]
    present = {name for name, share in shares.items() if rng.random() < share}
    # Some notes are one {% raw %} block as a whole, the way the AI notes were published; raw cannot nest.
    wholly_raw = "raw_block" in present and rng.random() < stratum["wholly_raw_share"] / shares["raw_block"]
    inner = present - {"raw_block"} if wholly_raw else present
    blocks, size = [], 0
    while True:
        feature = rng.choice(BLOCK_FEATURES)
        if feature in inner and rng.random() < 0.35:
            block = feature_block(rng, writer, feature)
        else:
            block = writer.paragraph("inline_code" in present and rng.random() < 0.5, "bold" in present and rng.random() < 0.3)
        block_bytes = len(block.encode()) + 2
        # Stop at the block boundary nearest the target, so sizes are not biased upwards.
        if blocks and size + block_bytes / 2 > target_bytes:
            break
        blocks.append(block)
        size += block_bytes
    body = "\n\n".join(blocks)
    if wholly_raw:
        body = "{% raw %}\n" + body + "\n{% endraw %}"
    return body, present


def frontmatter_block(rng: random.Random, stratum: dict, lang: str, title: str) -> str:
    lines = ["---"]
    for key, share in stratum["frontmatter_key_share"].items():
        if rng.random() >= share:
            continue
        if key == "title":
            value = json.dumps(title, ensure_ascii=False)
        elif key == "lang":
            value = lang
        else:
            counts = stratum["frontmatter_values"][key]
            value = rng.choices(list(counts), weights=list(counts.values()))[0]
        lines.append(f"{key}: {value}")
    return "\n".join(lines + ["---", ""])


def write_blog(out_dir: Path, posts: int, seed: int = 42, calibration: dict | None = None) -> BlogSummary:
    """N posts under out_dir/_posts/{en,zh}/, the same bytes for the same (posts, seed)."""
    calibration = calibration or load_calibration()
    rng = random.Random(seed)
    writers = {
        lang: Writer(random.Random(f"{seed}:{lang}"), lang, 1 - calibration["language"][lang]["cjk_letter_share"])
        for lang in LANGS
    }
    p_note = note_share(calibration, REFERENCE["bytes"] / REFERENCE["posts"])
    p_en = REFERENCE["en"] / REFERENCE["posts"]
    p_short = REFERENCE["too_short"] / REFERENCE["posts"]
    first_day, days = date(2011, 1, 1), (date(2026, 6, 1) - date(2011, 1, 1)).days

    total, by_lang, by_stratum, with_feature, short = 0, dict.fromkeys(LANGS, 0), {}, {}, 0
    for i in range(posts):
        lang = "en" if rng.random() < p_en else "zh"
        kind = "note" if rng.random() < p_note else "post"
        stratum, writer = calibration["strata"][kind], writers[lang]
        size = calibration["strata"][kind]["file_bytes"][lang]
        title_chars = calibration["language"][lang]["title_chars"]
        title = writer.title(round(rng.lognormvariate(title_chars["mu"], title_chars["sigma"])))
        head = frontmatter_block(rng, stratum, lang, title) + "\n"
        if rng.random() < p_short:
            body, present = writer.words(rng.randint(3, 10)), set()
            short += 1
        else:
            file_bytes = rng.lognormvariate(size["mu"], size["sigma"])
            body, present = post_body(rng, writer, stratum, round(file_bytes) - len(head.encode()))
        posted = first_day + timedelta(days=rng.randrange(days))
        path = out_dir / "_posts" / lang / f"{posted.isoformat()}-{kind}-{i}-{lang}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (head + body + "\n").encode()
        path.write_bytes(data)
        total += len(data)
        by_lang[lang] += 1
        by_stratum[kind] = by_stratum.get(kind, 0) + 1
        for feature in present:
            with_feature[feature] = with_feature.get(feature, 0) + 1
    return BlogSummary(posts, total, by_lang, by_stratum, dict(sorted(with_feature.items())), short)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic Jekyll blog shaped like the reference one.")
    parser.add_argument("--posts", type=int, default=REFERENCE["posts"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    summary = write_blog(args.out, args.posts, args.seed)
    print(json.dumps(summary.as_dict(), indent=2))


if __name__ == "__main__":
    main()
