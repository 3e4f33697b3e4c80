"""Loading the definitions costs what Dagster needs, not what training needs.

Every Dagster step is a fresh process that imports the definitions before its first line (10.6 s when
they imported torch and transformers, under 2 s without), and a training rank imports core modules:
none of them may pay for a library it does not use.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import blogtune_assets.core
from blogtune_assets.core.profiles import SAMPLE_BLOG

ML_LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "llama_cpp", "matplotlib")


def _loaded_after(statement: str, watched: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {watched!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_the_definitions_load_without_the_ml_libraries():
    assert _loaded_after("import blogtune_assets.definitions", ML_LIBRARIES) == []


def test_the_data_steps_count_tokens_without_torch_or_transformers(tmp_path, monkeypatch):
    # sft_dataset's step took 8 s to reach its first line when counting imported transformers (and torch,
    # through the embedded bases' builders); with `tokenizers` alone it costs what the definitions cost.
    from blogtune_assets.core.tokenizer_source import tiny_tokenizer_dir

    tiny_tokenizer_dir(log=lambda line: None)  # a cache miss trains it with transformers; the step then finds it
    shutil.copytree(SAMPLE_BLOG, tmp_path / "blog")
    monkeypatch.setenv("BLOGTUNE_BLOG_DIR", str(tmp_path / "blog"))
    monkeypatch.setenv("BLOGTUNE_HOME", str(tmp_path / "home"))
    steps = (
        "import dagster as dg\n"
        "from blogtune_assets.assets.posts import raw_posts, cleaned_posts\n"
        "from blogtune_assets.assets.sft_dataset import sft_dataset\n"
        "from blogtune_assets.resources import from_env\n"
        "assert dg.materialize([raw_posts, cleaned_posts, sft_dataset], resources=from_env()).success"
    )
    assert _loaded_after(steps, ("torch", "transformers", "trl", "peft", "datasets")) == []  # a plot draws with matplotlib
    assert (tmp_path / "home" / "sft_dataset" / "current" / "train.jsonl").is_file()


def test_importing_the_training_process_module_loads_no_training_library():
    # lora_adapter's step imports it for TrainRequest; trl, peft and datasets load in the training process.
    assert _loaded_after("import blogtune_assets.train_process", ML_LIBRARIES) == []


def test_a_training_rank_loads_no_dagster():
    # The package's __init__ is empty: a torchrun rank importing core/ does not load the definitions (rank 0
    # talks to Dagster through dagster_pipes alone).
    statement = "import blogtune_assets.train_process, blogtune_assets.core.train, blogtune_assets.core.sft"
    assert _loaded_after(statement, ("dagster", "blogtune_assets.definitions")) == []


def test_core_imports_nothing_above_it():
    # core/ is the Dagster-free domain layer: the assets, resources and training process build on it, never
    # the other way round, so a core module can be read, tested and reused without the layer above.
    core = Path(blogtune_assets.core.__file__).parent
    upward = []
    for module in sorted(core.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = ["." * node.level + (node.module or "")] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            upward += [
                f"{module.name}: {name}"
                for name in names
                if name.startswith("blogtune_assets") and not name.startswith("blogtune_assets.core")
                or name.startswith("..")
                or name == "dagster"
                or name.startswith("dagster.")
            ]
    assert upward == []
