"""Every BLOGTUNE_* variable is read in core/environment.py, typed, and listed in the README."""

import ast
import re
from pathlib import Path

import pytest

import blogtune_assets
from blogtune_assets.core.environment import VARIABLES, read
from blogtune_assets.core.profiles import REPO_ROOT


def _reads_the_environment(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "environ" in text or "getenv" in text


def test_no_module_but_core_environment_reads_a_blogtune_variable():
    package = Path(blogtune_assets.__file__).parent
    readers = []
    for module in sorted(package.rglob("*.py")):
        if module.name == "environment.py":
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Call, ast.Subscript, ast.Compare)) and _reads_the_environment(node):
                names = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and str(c.value).startswith("BLOGTUNE_")]
                readers += [f"{module.relative_to(package)}: {name}" for name in names]
    assert readers == []


def test_the_readme_lists_exactly_the_variables_read():
    rows = [line for line in (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("| `BLOGTUNE_")]
    documented = {name for row in rows for name in re.findall(r"`(BLOGTUNE_[A-Z_]+)`", row.split("|")[1])}
    assert documented == set(VARIABLES)


def test_every_default_parses(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    values = {name: read(name) for name in VARIABLES}
    assert values["BLOGTUNE_LANGUAGES"] == [] and values["BLOGTUNE_KEEP_VERSIONS"] == 3
    assert values["BLOGTUNE_MAX_POST_BYTES"] is None and values["BLOGTUNE_LLAMA_CPP_SDIST"] is None
    assert values["BLOGTUNE_CACHE"] == Path("~/.cache/blogtune").expanduser()


@pytest.mark.parametrize(
    "name, value, accepts",
    [
        ("BLOGTUNE_KEEP_VERSIONS", "three", "a whole number"),
        ("BLOGTUNE_FULL_CHECK_S", "-1", "a whole number"),
        ("BLOGTUNE_EXECUTOR", "docker", "'k8s' or unset"),
        ("BLOGTUNE_PROFILE", "qwen3_4b", "one of 'tiny', 'qwen3-shape', 'qwen3-4b'"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_accepts(name, value, accepts, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r} is not {accepts}")):
        read(name)


@pytest.mark.parametrize("name", sorted(n for n, v in VARIABLES.items() if v.empty_is_default))
def test_an_empty_value_means_the_default(name, monkeypatch):
    monkeypatch.delenv(name, raising=False)
    default = read(name)
    monkeypatch.setenv(name, "")
    assert read(name) == default


def test_an_empty_gpu_toleration_tolerates_no_taint(monkeypatch):
    monkeypatch.delenv("BLOGTUNE_GPU_TOLERATION", raising=False)
    assert read("BLOGTUNE_GPU_TOLERATION") == "nvidia.com/gpu"
    monkeypatch.setenv("BLOGTUNE_GPU_TOLERATION", "")
    assert read("BLOGTUNE_GPU_TOLERATION") == ""


def test_a_value_is_read_when_asked_not_at_import(monkeypatch):
    monkeypatch.setenv("BLOGTUNE_LANGUAGES", " en, zh ,")
    assert read("BLOGTUNE_LANGUAGES") == ["en", "zh"]
    monkeypatch.setenv("BLOGTUNE_LANGUAGES", "zh")
    assert read("BLOGTUNE_LANGUAGES") == ["zh"]
