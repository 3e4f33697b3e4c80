"""Every BLOGTUNE_* environment variable: its type, its default and what it sets, read here and nowhere else.

A value of the wrong type, or outside a variable's choices, raises when it is read, naming the variable and
what it accepts. The resources, the sensor's interval, the schedule's cron and the executor are read when the
definitions load, so `dagster definitions validate` catches `BLOGTUNE_PROFILE=qwen3_4b` before any run does.
Values are read when asked, never cached at import, so a process or test that sets one sees it.

Not Dagster's `EnvVar`: an `EnvVar` is resolved when a run launches, which would move these errors from
loading the definitions to a run's first step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, get_args

from blogtune_assets.core.device import DeviceName, DtypeName
from blogtune_assets.core.profiles import REPO_ROOT, SAMPLE_BLOG, ProfileName


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    parse: Callable[[str], object]
    accepts: str
    # Empty is unset for all but a variable whose empty value means something (no GPU toleration).
    empty_is_default: bool = True


def _whole_number(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def _choice(literal) -> tuple[Callable[[str], str], str]:
    allowed = get_args(literal)

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(value)
        return value

    return parse, "one of " + ", ".join(repr(a) for a in allowed)


def _yes_no(value: str) -> bool:
    if value.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
        raise ValueError(value)
    return value.lower() in ("1", "true", "yes")


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


TEXT = (str, "any text")
WHOLE = (_whole_number, "a whole number (0 or more)")
PATH = (_path, "a path (~ is expanded)")

VARIABLES = {
    variable.name: variable
    for variable in (
        Variable("BLOGTUNE_BLOG_DIR", str(SAMPLE_BLOG), *PATH),
        Variable("BLOGTUNE_HOME", str(REPO_ROOT / "data" / "blogtune_home"), *PATH),
        Variable("BLOGTUNE_PROFILE", "tiny", *_choice(ProfileName)),
        Variable("BLOGTUNE_BASE_MODEL", "", *TEXT),
        Variable("BLOGTUNE_MERGE_BASE_MODEL", "", *TEXT),
        Variable("BLOGTUNE_DEVICE", "auto", *_choice(DeviceName)),
        Variable("BLOGTUNE_DTYPE", "auto", *_choice(DtypeName)),
        Variable("BLOGTUNE_NUM_PROCESSES", "0", *WHOLE),
        Variable("BLOGTUNE_LANGUAGES", "", _comma_list, "comma-separated language codes, e.g. en,zh"),
        # Empty: the reader's own limit (jekyll.MAX_POST_BYTES).
        Variable("BLOGTUNE_MAX_POST_BYTES", "", lambda v: _whole_number(v) if v else None, "a whole number of bytes"),
        Variable("BLOGTUNE_KEEP_VERSIONS", "3", *WHOLE),
        Variable("BLOGTUNE_CACHE", "~/.cache/blogtune", *PATH),
        # Empty: the one `make` keeps, under BLOGTUNE_CACHE's default folder (qwen3_tokenizer.llama_cpp_sdist).
        Variable("BLOGTUNE_LLAMA_CPP_SDIST", "", *PATH),
        Variable("BLOGTUNE_MIN_NEW_POSTS", "1", *WHOLE),
        Variable("BLOGTUNE_QUIET_PERIOD_S", "0", *WHOLE),
        Variable("BLOGTUNE_FULL_CHECK_S", "3600", *WHOLE),
        Variable("BLOGTUNE_SENSOR_INTERVAL_S", "30", *WHOLE),
        Variable("BLOGTUNE_FULL_RETRAIN_ON_DELETE", "false", _yes_no, "true or false (1/0, yes/no)"),
        Variable("BLOGTUNE_RETRAIN_CRON", "0 3 * * 0", *TEXT),  # Sundays 03:00
        # Unset: Dagster's default executor, one process per step.
        Variable("BLOGTUNE_EXECUTOR", "", _choice(Literal["", "k8s"])[0], "'k8s' or unset"),
        Variable("BLOGTUNE_GPU_NODE_SELECTOR", "", *TEXT),
        Variable("BLOGTUNE_GPU_TOLERATION", "nvidia.com/gpu", *TEXT, empty_is_default=False),  # empty: tolerate no taint
    )
}


def read(name: str):
    """The variable's value, parsed; its default when unset, or empty (see `Variable.empty_is_default`)."""
    variable = VARIABLES[name]
    # Empty is unset: `BLOGTUNE_HOME= make demo` must not make a home named "None" or "" in the working folder.
    value = os.environ.get(name, "")
    if not value and (variable.empty_is_default or name not in os.environ):
        value = variable.default
    try:
        return variable.parse(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not {variable.accepts}: set it to that, or unset it") from None
