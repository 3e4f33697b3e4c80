"""Every benchmark runs end to end at a tiny size, so none of them can rot.

Builds run in this process (not a spawned child, which would re-import torch each time);
the figures are meaningless at this size, only the plumbing is checked.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import calibrate, data_pipeline, export_scaling, gpu_check, measure, sensor_tick, startup, training_efficiency
from benchmarks import liquid_worst_case, stop_margin, warm_start
from benchmarks.synthetic_blog import REFERENCE, load_calibration, note_share, write_blog
from blogtune_assets_tests.conftest import SHARED_CORPUS


@pytest.fixture(autouse=True)
def in_process(monkeypatch):
    monkeypatch.setattr(measure, "in_child", lambda fn, *args: measure._measured(fn, args))


def test_generator_is_seeded_and_has_the_calibrated_shape(tmp_path):
    first = write_blog(tmp_path / "a", 300, seed=1)
    again = write_blog(tmp_path / "b", 300, seed=1)
    assert first == again
    assert [p.read_bytes() for p in sorted((tmp_path / "a").rglob("*.md"))] == [
        p.read_bytes() for p in sorted((tmp_path / "b").rglob("*.md"))
    ]
    assert set(first.by_language) == {"en", "zh"} and min(first.by_language.values()) > 100
    # Mean file size near the reference run's 86 MB / 21,434 (one log-normal draw per post: loose).
    assert 0.6 < first.bytes / first.posts / (REFERENCE["bytes"] / REFERENCE["posts"]) < 1.4
    assert 0 < note_share(load_calibration(), REFERENCE["bytes"] / REFERENCE["posts"]) < 1


def test_calibration_derives_from_the_shared_corpus(tmp_path):
    if not SHARED_CORPUS.is_dir():
        pytest.skip("shared corpus not available")
    calibrate.main(["--out", str(tmp_path / "calibration.json")])
    assert json.loads((tmp_path / "calibration.json").read_text()) == load_calibration()


def test_data_pipeline(tmp_path):
    payload = data_pipeline.main(["--sizes", "40", "--repeats", "1", "--out", str(tmp_path)])
    [size] = payload["sizes"]
    assert size["incremental"]["identical_to_full"]
    assert size["incremental"]["incremental_posts"] == size["blogtune"]["posts"] + 1
    assert size["blogtune"]["posts"] == 40 and size["baseline"]["examples"] > 0
    assert (tmp_path / "data_pipeline.json").is_file() and (tmp_path / "data_pipeline.png").is_file()


def test_export_scaling(tmp_path):
    payload = export_scaling.main(["--sizes", "tiny", "--repeats", "1", "--out", str(tmp_path)])
    [tiny] = payload["models"]
    assert tiny["q4_k_m_mb"] < tiny["bf16_gguf_mb"] and tiny["convert"]["convert_s"] > 0
    assert (tmp_path / "export_scaling.png").is_file()


def test_training_efficiency(tmp_path):
    args = ["--posts", "30", "--steps", "1", "--train-examples", "4", "--modes", "padded", "--out", str(tmp_path)]
    payload = training_efficiency.main(args)
    shares = payload["reference_lengths"]["padding_share"]
    assert shares["padding_free"] == 0 and 0 < shares["padded"] < 1
    assert payload["cpu_runs"][0]["real_tokens_per_s"] > 0
    assert (tmp_path / "training_efficiency.png").is_file()


def test_padding_and_packing_arithmetic():
    shares = training_efficiency.padding_shares([10, 30, 5000], max_length=100, batch=2)
    assert shares["tokens_after_truncation"] == 140 and shares["truncated_examples"] == 1
    # 60 opens a bin, 50 another; 40 best fits the first (full), 30 goes to the second.
    assert sorted(training_efficiency.best_fit_decreasing([60, 50, 40, 30], capacity=100)) == [80, 100]


@pytest.mark.slow
def test_the_gpu_check_runs_at_toy_size_on_the_cpu(qwen3_tokenizer_dir, tmp_path):
    """Every part of the GPU check (its CUDA-only NF4 quantization aside), so it is ready when a GPU is lent."""
    args = ["--size", "toy", "--steps", "2", "--tokenizer", str(qwen3_tokenizer_dir), "--work", str(tmp_path / "work"), "--out", str(tmp_path)]
    report = gpu_check.main(args)
    padding_free, padded = report["runs"]
    assert padding_free["batching"].startswith("padding-free") and padded["batching"].startswith("padded")
    assert padding_free["steps"] == padded["steps"] == 2 and padding_free["train_tokens"] == padded["train_tokens"] > 0
    assert padding_free["estimated_peak_memory_gb"] > 0 and padding_free["model_tflops_per_s"] > 0
    assert report["stop_and_resume"]["resumed_where_saved"] and report["stop_and_resume"]["steps"] == 2
    assert report["merge"]["dtype"] == "float32" and report["merge"]["within_tolerance"]
    assert report["lora_gradients_after_no_grad_forward"]["right"]
    assert json.loads((tmp_path / "gpu_check.json").read_text())["size"] == "toy"


def test_sensor_tick(tmp_path):
    payload = sensor_tick.main(["--posts", "40", "--repeats", "1", "--out", str(tmp_path)])
    assert payload["posts"] == 40 and payload["tick_s"] > 0 and payload["full_check_s"] > 0


def test_liquid_worst_case(tmp_path):
    payload = liquid_worst_case.main(["--sizes", "2000", "--repeats", "1", "--out", str(tmp_path)])
    assert set(payload["patterns"]) == set(liquid_worst_case.PATTERNS)
    assert all(run["chars"] <= 2000 and run["chars_per_s"] > 0 for runs in payload["patterns"].values() for run in runs)
    assert (tmp_path / "liquid_worst_case.json").is_file()


def test_startup(tmp_path):
    payload = startup.main(["--repeats", "1", "--out", str(tmp_path)])
    assert set(payload["imports"]) == set(startup.IMPORTS) and all(r["median_s"] > 0 for r in payload["imports"].values())


@pytest.mark.slow
def test_warm_start(tmp_path):
    payload = warm_start.main(["--new-posts", "1", "--full-steps", "4", "--out", str(tmp_path)])
    parent, warm, full = payload["rows"]
    assert (parent["steps"], full["steps"]) == (4, 4)
    # One new post and ceil(3.0 x 1) replayed, 2 a step, one pass: 2 steps, whatever the full runs' length.
    assert warm["mode"] == "warm" and warm["replay"] == 3 and warm["steps"] == 2
    assert payload["reference_scale"][0]["warm_steps"] == 1 and (tmp_path / "warm_start.json").is_file()


@pytest.mark.slow
def test_stop_margin(tmp_path):
    payload = stop_margin.main(["--seeds", "1", "--max-steps", "2", "--pretrain-steps", "4", "--recipe", '{"learning_rate": 1e-3}', "--out", str(tmp_path)])
    profile, other = payload["rows"]
    assert (profile["steps"], other["steps"]) == (2, 2) and other["recipe"] == '{"learning_rate": 0.001, "max_steps": 2}'
    assert profile["p_stop_base"] == other["p_stop_base"] > 0 and profile["gain"] > 0
    assert (tmp_path / "stop_margin.json").is_file()
