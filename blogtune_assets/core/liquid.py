"""Turn a Jekyll post body into the text a reader sees, minus markup.

A single left-to-right scan over the body: at each position the earliest construct wins, so ``{% raw %}`` inside
a code fence stays code and a fence inside ``{% raw %}`` stays raw, as in Jekyll. Code and raw content are the
author's text and are kept verbatim; Liquid, kramdown attribute lists and images are removed, and so is what a
reader never sees: HTML comments (a note to self, `<!--more-->`), `<script>` and `<style>` elements and kramdown's
`{::comment}` blocks.

The scan takes linear time (O(n log n) at worst) whatever the body holds. A construct's closer is looked up where
the last lookup for it ended, not searched for again from each opener: one regex with lazy `.*?` closers did that,
and took hours on a 5 MB line of unclosed `{%` (benchmarks/liquid_worst_case.py).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import cached_property

_TAG_OPEN = r"\{%-?\s*"
_TAG_CLOSE = r"\s*-?%\}"

# Where a construct may start: a run of backticks (inline code, or a fence with its indent), a run of tildes (a
# fence), `![`, `[`, `<img`, `<!--`, `<script`, `<style` or a Liquid or IAL opener. Each alternative starts with a
# literal, so the regex engine skips the text in between at its own speed instead of trying each construct at every position.
_CANDIDATE = re.compile(r"`(?<!``)|~~~(?<!~~~~)|!\[|\[|<(?:img\b|!--|(?i:script|style)\b)|\{[%{:]")
_FENCE = re.compile(r"^[ \t]{0,3}(?P<fence_mark>`{3,}|~{3,})[^\n]*$", re.MULTILINE)
# The Liquid blocks, named by the group that closes last. Whatever follows highlight's language up to the first `%`
# must be `%}`: written as `[^%]*?\s*-?%\}`, a long run of spaces there was read again from each of its positions.
_BLOCK_OPEN = re.compile(
    rf"{_TAG_OPEN}(?:(?P<raw>raw{_TAG_CLOSE})|(?P<comment>comment{_TAG_CLOSE})"
    rf"|(?P<highlight>highlight\s+(?P<lang>[\w+#.-]+)[^%]*%\}}))"
)
_END = {
    "raw": re.compile(rf"{_TAG_OPEN}endraw{_TAG_CLOSE}"),
    "comment": re.compile(rf"{_TAG_OPEN}endcomment{_TAG_CLOSE}"),
    "highlight": re.compile(rf"{_TAG_OPEN}endhighlight{_TAG_CLOSE}"),
}
# Inside code Jekyll still consumes raw markers; they are not the author's text.
_RAW_MARKER = re.compile(rf"{_TAG_OPEN}(?:end)?raw{_TAG_CLOSE}")
_TICK, _TICKS = re.compile("`"), re.compile("`+")
_BLANK_LINE = re.compile("\n\n")  # inline code may wrap lines but not cross a paragraph break
_TEXT_STOP = re.compile(r"[\]\n]")  # ends the text of ![text](url) and [text](url)
_URL_STOP = re.compile(r"[)\n]")
_IAL_STOP = re.compile(r"[}\n]")
_SPACES = re.compile(r"\s*")
_IMG = re.compile(r"<img\b")
# What a reader never sees, by opener; each is dropped up to its closer, and left as text if it never closes.
_HIDDEN = re.compile(r"<!--|<(?P<element>(?i:script|style))\b|\{::comment\}")
_HIDDEN_END = {
    "<!--": re.compile("-->"),
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
    "{::comment}": re.compile(r"\{:/(?:comment)?\}"),
}
_GT = re.compile(">")
_TAG_CLOSER = re.compile("%}")
_OUTPUT_CLOSER = re.compile("}}")
_LIQUID_OPEN = re.compile(r"\{[{%]")
# The Liquid a url may hold: opener -> closer. A closer can lie past a newline or a `)`.
_LIQUID_PAIRS = {"{{": "}}", "{%": "%}"}
_BLANK_RUNS = re.compile(r"\n{3,}")
_LIQUID = re.compile(r"\{%|\{\{")

MIN_CHARS = 100


@dataclass
class Cleaned:
    text: str
    # Verbatim pieces (raw content, code) that may legitimately contain Liquid syntax.
    protected: list[str] = field(default_factory=list)


# A construct: its start and stop in the body, what stands for it in the text, and whether that is verbatim text.
_Found = tuple[int, int, str, bool]


def _markup(start: int, stop: int) -> _Found:
    return start, stop, "", False


def clean_body(body: str) -> Cleaned:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    scan = _Scan(body)
    out: list[str] = []
    protected: list[str] = []
    pos = look = 0
    while (candidate := _CANDIDATE.search(body, look)) is not None:
        found = scan.construct(candidate.start())
        if found is None:
            look = candidate.start() + 1
            continue
        start, stop, piece, verbatim = found
        out += (body[pos:start], piece)
        if verbatim:
            protected.append(piece)
        pos = look = stop
    out.append(body[pos:])
    return Cleaned(text=collapse_whitespace("".join(out)), protected=protected)


class _Next:
    """Where `pattern` next occurs at or after a position (len(body) if nowhere), asked at growing positions.

    An answer found searching from s holds for every position from s up to it, and "nowhere" from s holds for every
    later position: asked at ever later positions, no stretch of the body is searched twice.
    """

    def __init__(self, body: str, pattern: re.Pattern):
        self.body, self._pattern = body, pattern
        self._from = self._found = -1

    def at(self, pos: int) -> int:
        if not self._from <= pos <= self._found:
            self._from, self._found = pos, self._find(pos)
        return self._found

    def _find(self, pos: int) -> int:
        m = self._pattern.search(self.body, pos)
        return m.start() if m else len(self.body)


class _LinkClose(_Next):
    """The next `closer` after which its line reaches a `)`, which ends a link's Liquid url."""

    def __init__(self, body: str, closer: str):
        super().__init__(body, re.compile(re.escape(closer)))
        self._closers, self._stops = _Next(body, self._pattern), _Next(body, _URL_STOP)

    def _find(self, pos: int) -> int:
        while (close := self._closers.at(pos)) < len(self.body):
            stop = self._stops.at(close + 2)
            if self.body.startswith(")", stop):
                return close
            pos = stop  # every closer before this newline ends on it too
        return len(self.body)

    def url_end(self, pos: int) -> int | None:
        """Just past the `)` ending a url whose Liquid, from pos on, this closer closes; None if none does."""
        close = self.at(pos)
        return None if close == len(self.body) else self._stops.at(close + 2) + 1


class _Scan:
    """The constructs of one body, asked for at growing positions; each lookup ahead goes through a `_Next` (through
    `_LiquidUrls` for an image's Liquid url)."""

    def __init__(self, body: str):
        self.body = body
        self._ahead: dict[re.Pattern, _Next] = {}
        self._link_ends: dict[int, int | None] = {}

    def _next(self, pattern: re.Pattern, pos: int) -> int:
        """Where `pattern` next occurs at or after pos: one `_Next` a pattern, each asked by one kind of construct."""
        ahead = self._ahead.get(pattern)
        if ahead is None:
            ahead = self._ahead[pattern] = _Next(self.body, pattern)
        return ahead.at(pos)

    @cached_property
    def _link_close(self) -> dict[str, _LinkClose]:
        return {closer: _LinkClose(self.body, closer) for closer in _LIQUID_PAIRS.values()}

    def construct(self, p: int) -> _Found | None:
        """The construct at p; a run of backticks also stands for the inline code starting later in it."""
        char = self.body[p]
        if char == "{":
            return self._liquid(p)
        if char == "!":
            return self._image(p)
        if char == "[":
            return self._link(p)
        if char == "<":
            return self._hidden(p) or self._html_image(p)
        if char == "`":
            return self._fence(p) or self._inline_code(p)
        if char == "~":
            return self._fence(p)
        return None

    def _fence(self, mark: int) -> _Found | None:
        """A fence whose mark is at `mark`, first on its line after at most three spaces or tabs (the fence's too)."""
        line = self.body.rfind("\n", max(0, mark - 4), mark) + 1
        m = _FENCE.match(self.body, line) if mark - line <= 3 else None
        if m is None or m.start("fence_mark") != mark:
            return None
        fence = m.group("fence_mark")
        closing = re.compile(rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = closing.search(self.body, m.end())
        stop = end.end() if end else len(self.body)
        return line, stop, _RAW_MARKER.sub("", self.body[line:stop]), True

    def _inline_code(self, p: int) -> _Found | None:
        """A run of n backticks opens inline code closed by the next run of exactly n before a blank line; if there is
        none, the run less its first backtick tries (n-1), and so on: the longest length that closes wins."""
        run_end = _TICKS.match(self.body, p).end()
        blank = self._next(_BLANK_LINE, run_end)
        # Most often the next run closes it; all runs are indexed only when one does not.
        after = self._next(_TICK, run_end)
        if after < blank and _TICKS.match(self.body, after).end() - after == run_end - p:
            return p, after + run_end - p, self.body[p : after + run_end - p], True
        lengths = self._run_lengths
        for i in range(bisect_right(lengths, run_end - p) - 1, -1, -1):
            starts = self._runs[lengths[i]]
            closing = bisect_left(starts, run_end)
            if closing < len(starts) and starts[closing] < blank:
                start, stop = run_end - lengths[i], starts[closing] + lengths[i]
                return start, stop, self.body[start:stop], True
        return None

    @cached_property
    def _runs(self) -> dict[int, array]:
        """Where each run of backticks starts, by its length."""
        runs: dict[int, array] = {}
        for m in _TICKS.finditer(self.body):
            runs.setdefault(m.end() - m.start(), array("q")).append(m.start())
        return runs

    @cached_property
    def _run_lengths(self) -> list[int]:
        return sorted(self._runs)

    def _liquid(self, p: int) -> _Found | None:
        body, opener = self.body, self.body[p : p + 2]
        if opener == "{%":
            if m := _BLOCK_OPEN.match(body, p):
                return _block(m.lastgroup, body, m)
            return self._drop_to(p, self._next(_TAG_CLOSER, p + 2))
        if opener == "{{":
            return self._drop_to(p, self._next(_OUTPUT_CLOSER, p + 2))
        if opener == "{:":
            return self._hidden(p) or self._ial(p)
        return None

    def _drop_to(self, p: int, close: int) -> _Found:
        # An opener never closed: Jekyll would fail the build; drop the delimiter only.
        return _markup(p, close + 2 if close < len(self.body) else p + 2)

    def _ial(self, p: int) -> _Found | None:
        close = self._next(_IAL_STOP, p + 2)
        return _markup(p, close + 1) if self.body.startswith("}", close) else None

    def _image(self, p: int) -> _Found | None:
        """![alt](url){: ial}: a plain or Liquid url, and an optional trailing IAL."""
        url = self._url_start(p + 2) if self.body.startswith("![", p) else None
        stop = None if url is None else self._image_url_end(url)
        if stop is None:
            return None
        ial = self._ial(stop) if self.body.startswith("{:", stop) else None
        return _markup(p, stop if ial is None else ial[1])

    def _url_start(self, text_start: int) -> int | None:
        """Where the url of [text](url) starts; None if the text does not close or no `)` lies ahead to end a url."""
        text_end = self._next(_TEXT_STOP, text_start)
        url = text_end + 2
        return url if self.body.startswith("](", text_end) and url <= self._last_paren else None

    @cached_property
    def _last_paren(self) -> int:
        return self.body.rfind(")")

    def _image_url_end(self, url: int) -> int | None:
        stop = self._next(_URL_STOP, url)
        if self._next(_LIQUID_OPEN, url) < stop:
            return self._liquid_urls.end(url)
        return stop + 1 if self.body.startswith(")", stop) else None

    @cached_property
    def _liquid_urls(self) -> _LiquidUrls:
        return _LiquidUrls(self.body)

    def _link(self, p: int) -> _Found | None:
        """[text]({% post_url x %}) or [text]({{ site.url }}/x): the text is kept, cleaned (it can hold Liquid too:
        [{{ site.url }}/archive]({{ site.baseurl }}/archive))."""
        url = self._url_start(p + 1)
        if url is None:
            return None
        if url not in self._link_ends:  # every `[` before the same `](` shares its url
            self._link_ends[url] = self._link_url_end(url)
        stop = self._link_ends[url]
        return None if stop is None else (p, stop, clean_body(self.body[p + 1 : url - 2]).text, False)

    def _link_url_end(self, url: int) -> int | None:
        opener = _SPACES.match(self.body, url).end()
        closer = _LIQUID_PAIRS.get(self.body[opener : opener + 2])
        if closer is None:
            return None
        return self._link_close[closer].url_end(opener + 2)

    def _hidden(self, p: int) -> _Found | None:
        m = _HIDDEN.match(self.body, p)
        if m is None:
            return None
        closer = _HIDDEN_END[(m["element"] or m[0]).lower()]
        close = self._next(closer, m.end())
        return _markup(p, closer.match(self.body, close).end()) if close < len(self.body) else None

    def _html_image(self, p: int) -> _Found | None:
        if not _IMG.match(self.body, p):
            return None
        close = self._next(_GT, p + 4)
        return _markup(p, close + 1) if close < len(self.body) else None


def _block(kind: str, body: str, m: re.Match) -> _Found:
    end = _END[kind].search(body, m.end())
    inner = body[m.end() : end.start() if end else len(body)]
    stop = end.end() if end else len(body)
    if kind == "comment":
        return _markup(m.start(), stop)
    if kind == "highlight":
        code = _RAW_MARKER.sub("", inner).strip("\n")
        return m.start(), stop, f"```{m.group('lang')}\n{code}\n```", True
    return m.start(), stop, inner, True


class _LiquidUrls:
    r"""Where an image's url ends when it holds Liquid: what `(?:\{\{.*?\}\}|\{%.*?%\}|[^)\n])*\)` matches.

    The url is read as characters up to a `)` (its end) or a newline (no url), except that an opener first tries each
    closer of its kind after it, in order, and goes on from just after it: the first closer from which the url can
    end wins, and with none the opener is two plain characters. A closer from which the url can end is "good".
    Whether the url can end from a position depends only on what lies to its right, so the last good closer of each
    kind is found once, from the right; an opener can then jump exactly when it lies before the last good closer of
    its kind. Each position is resolved once, by binary search over where the stops, openers and closers are.
    """

    def __init__(self, body: str):
        self.body = body
        self._stops = _occurrences(body, _URL_STOP)
        self._openers = {opener: _occurrences(body, _starts_of(opener)) for opener in _LIQUID_PAIRS}
        self._closers = {closer: _occurrences(body, _starts_of(closer)) for closer in _LIQUID_PAIRS.values()}
        self._last_good = dict.fromkeys(self._closers, -1)
        self._next_good: dict[str, dict[int, int]] = {closer: {} for closer in self._closers}
        self._ends: dict[int, int | None] = {}
        self._find_last_good()

    def end(self, url: int) -> int | None:
        """Just past the `)` that ends the url starting at `url`, or None."""
        path, pos = [], url
        while pos not in self._ends:
            path.append(pos)
            stop = self._stop(pos)
            jump = self._jump(pos, stop)
            if jump is None:
                end = stop + 1 if self.body.startswith(")", stop) else None
                break
            opener, closer = jump
            pos = self._first_good(closer, opener + 2) + 2
        else:
            end = self._ends[pos]
        self._ends.update(dict.fromkeys(path, end))
        return end

    def _stop(self, pos: int) -> int:
        i = bisect_left(self._stops, pos)
        return self._stops[i] if i < len(self._stops) else len(self.body)

    def _jump(self, pos: int, stop: int) -> tuple[int, str] | None:
        """The first opener in pos..stop-1 with a good closer after it, and that closer's kind."""
        jumps = []
        for opener, closer in _LIQUID_PAIRS.items():
            starts = self._openers[opener]
            i = bisect_left(starts, pos)
            if i < len(starts) and starts[i] < stop and starts[i] + 2 <= self._last_good[closer]:
                jumps.append((starts[i], closer))
        return min(jumps, default=None)

    def _can_end(self, pos: int) -> bool:
        stop = self._stop(pos)
        return self.body.startswith(")", stop) or self._jump(pos, stop) is not None

    def _find_last_good(self) -> None:
        # From the right, both kinds at once: whether a closer is good depends on the good closers to its right only.
        last_paren = self.body.rfind(")")
        index = {closer: bisect_right(starts, last_paren - 2) - 1 for closer, starts in self._closers.items()}
        while pending := [(self._closers[c][i], c) for c, i in index.items() if i >= 0 and self._last_good[c] < 0]:
            close, closer = max(pending)
            if self._can_end(close + 2):
                self._last_good[closer] = close
            index[closer] -= 1

    def _first_good(self, closer: str, pos: int) -> int:
        """The first good `closer` at or after pos (there is one: pos is before the last)."""
        starts, known = self._closers[closer], self._next_good[closer]
        i, passed = bisect_left(starts, pos), []
        while i not in known and not self._can_end(starts[i] + 2):
            passed.append(i)
            # Every closer before the newline that ends this one's line is no better.
            i = bisect_left(starts, self._stop(starts[i] + 2))
        i = known.get(i, i)
        known.update(dict.fromkeys(passed, i))
        return starts[i]


def _starts_of(text: str) -> re.Pattern:
    """Where `text` starts, overlapping occurrences included (`}}}` holds two `}}`)."""
    return re.compile(re.escape(text[0]) + f"(?={re.escape(text[1:])})")


def _occurrences(body: str, pattern: re.Pattern) -> array:
    return array("q", map(re.Match.start, pattern.finditer(body)))


def collapse_whitespace(text: str) -> str:
    # Line by line: the regex `[ \t]+$` tried again from each space of a run that does not end its line.
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def leftover_liquid(cleaned: Cleaned) -> list[str]:
    """Liquid openers left in the text outside its code and raw pieces (should be none)."""
    text, pos, outside = cleaned.text, 0, []
    # The pieces are in the text in order, whitespace collapsed: each is looked for from where the last one ended,
    # so the text is read once however many pieces there are.
    for piece in cleaned.protected:
        for form in (collapse_whitespace(piece), piece):
            at = text.find(form, pos)
            if at >= 0:
                outside.append(text[pos:at])
                pos = at + len(form)
                break
    outside.append(text[pos:])
    text = "".join(outside)
    return [text[max(0, m.start() - 20) : m.end() + 20] for m in _LIQUID.finditer(text)]
