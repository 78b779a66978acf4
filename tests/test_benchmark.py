"""`python -m experiments.benchmark --quick`: its output contract, never its timings."""

import json
import os
import subprocess
import sys

import pytest
from support import ROOT

SUMMARY_KEYS = {"arch1_vs_keras", "arch1_peak_fraction", "arch2_vs_naive", "sampling_vs_loop"}


@pytest.fixture(scope="module")
def quick_run():
    out = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--quick", "--seconds", "0.2",
         "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_every_stdout_line_is_a_json_object_and_the_summary_comes_last(quick_run):
    lines = quick_run.stdout.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    assert list(records[-1]) == ["summary"]
    assert all("summary" not in r for r in records[:-1])


@pytest.mark.slow
def test_rows_carry_a_name_and_a_positive_speed(quick_run):
    rows = [json.loads(line) for line in quick_run.stdout.strip().splitlines()[:-1]]
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names))
    for row in rows:
        assert isinstance(row["chars_per_sec"], (int, float)) and row["chars_per_sec"] > 0
    for prefix in ("matmul_peak", "train/arch1/tf_rnn", "train/arch1/keras_simplernn",
                   "train/arch1/naive", "train/arch2/tf_rnn", "train/arch2/naive",
                   "train/indrnn/tf_rnn_1_layer", "train/indrnn/keras_simplernn_1_layer",
                   "train/indrnn/tf_rnn_2_layer", "train/indrnn/keras_simplernn_2_layer",
                   "train/stacks/text8_best_10min/tf_rnn",
                   "train/stacks/text8_best_10min/keras_simplernn_stack",
                   "eval/arch1/", "sample/arch1/python_loop", "sample/arch1/tf_rnn_1_",
                   "sample/arch1/tf_rnn_64_", "scale/arch1/"):
        assert any(name.startswith(prefix) for name in names), prefix
    for row in (row for row in rows if row["name"].startswith("train/indrnn/tf_rnn")
                or row["name"].startswith("train/stacks/") and row["name"].endswith("/tf_rnn")):
        assert row["vs_keras"] > 0 and row["peak_fraction"] > 0, row["name"]
    scale = next(row for row in rows if row["name"].startswith("scale/"))
    assert {"state_size", "unroll", "peak_rss_mb"} <= set(scale)


@pytest.mark.slow
def test_summary_holds_the_four_ratios(quick_run):
    summary = json.loads(quick_run.stdout.strip().splitlines()[-1])["summary"]
    assert SUMMARY_KEYS <= set(summary)
    for key in SUMMARY_KEYS:
        assert isinstance(summary[key], (int, float)) and summary[key] > 0, key


@pytest.mark.slow
def test_the_table_goes_to_stderr_without_tensorflow_chatter(quick_run):
    assert "| row | chars/s |" in quick_run.stderr
    assert "| train/arch1/tf_rnn |" in quick_run.stderr
    assert "cpu_feature_guard" not in quick_run.stderr
    assert "absl::InitializeLog" not in quick_run.stderr and "oneDNN" not in quick_run.stderr


def test_bad_arguments_are_rejected():
    out = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--sections", "nope"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "sections" in out.stderr


def test_the_bf16_rows_compare_each_shape_in_both_dtypes(capsys):
    """`--sections bf16`: a float32 and a bfloat16 row per shape, and the summary's
    speed-ups are their ratios (in-process: a few tiny bursts)."""
    from experiments import benchmark

    summary = benchmark.run(benchmark.parse_args(
        ["--sections", "bf16", "--quick", "--seconds", "0.02", "--rounds", "1"]))["summary"]
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    shapes = ["recurrence_n384", "projection_n384", "recurrence_n512", "projection_n512"]
    assert sorted(rows) == sorted(f"bf16/{s}/{d}" for s in shapes
                                  for d in ("float32", "bfloat16"))
    for shape in shapes:
        f32, b16 = rows[f"bf16/{shape}/float32"], rows[f"bf16/{shape}/bfloat16"]
        assert f32["chars_per_sec"] > 0 and f32["vs_float32"] == 1
        assert summary["bf16_speedup"][shape] == pytest.approx(
            b16["chars_per_sec"] / f32["chars_per_sec"], rel=1e-3)


@pytest.mark.slow
def test_the_gated_rows_put_indrnn_against_keras_lstm_and_gru_stacks(capsys):
    """`--sections gated`: IndRNN, LSTM and GRU rows at text8_indrnn's width and depth,
    the device named, and the summary's ratios those of the rows."""
    from experiments import benchmark

    summary = benchmark.run(benchmark.parse_args(
        ["--sections", "gated", "--quick", "--seconds", "0.02", "--rounds", "1"]))["summary"]
    rows = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(rows) == [f"train/gated/{name}"
                            for name in ("keras_gru", "keras_lstm", "tf_rnn_indrnn")]
    ours = rows["train/gated/tf_rnn_indrnn"]["chars_per_sec"]
    for cell in ("lstm", "gru"):
        row = rows[f"train/gated/keras_{cell}"]
        assert row["layers"] == 2 and row["state"] == 512 and row["device"] in ("CPU", "GPU")
        assert summary[f"indrnn_vs_keras_{cell}_stack"] == pytest.approx(
            ours / row["chars_per_sec"], rel=1e-3)
    # LSTM computes four blocks of gates, GRU three, IndRNN's recurrence none
    flops = {name: row["train_flops_per_char"] for name, row in rows.items()}
    assert (flops["train/gated/keras_lstm"] > flops["train/gated/keras_gru"]
            > flops["train/gated/tf_rnn_indrnn"])


def test_every_stacked_preset_but_indrnn_gets_a_stack_row():
    from experiments import _stacks
    from tf_rnn.base import config

    names = _stacks.stacked_presets()
    assert "text8_best_10min" in names
    assert "text8_indrnn" not in names
    assert all(config.get_preset(name).num_layers > 1 for name in names)
    # one row per model: a preset that only changes the budget is not measured twice
    models = [config.get_preset(name).replace(budget_minutes=0.0) for name in names]
    assert len(models) == len(set(map(repr, models)))
    assert config.get_preset("text8_best_30min").replace(budget_minutes=0.0) in models
    assert "text8_best_3min" in names  # two layers of 384: a model of its own


def test_the_keras_stack_connects_its_layers_as_tf_rnn_stacks_do():
    """Residual adds from the second layer on, dropout before every upper layer and the
    head, none on the one-hot input: the same connections as `tf_rnn.models.stacking`."""
    import numpy as np

    from experiments._stacks import KerasStack

    stack = KerasStack(27, 8, 3, 2, 1e-3, 1.0, activation="tanh", residual=True,
                       dropout=0.4)
    kinds = [type(layer).__name__ for layer in stack.model.layers]
    assert kinds.count("SimpleRNN") == 3 and kinds.count("Add") == 2
    assert kinds.count("Dropout") == 3  # before layers 2 and 3, and before the head
    assert kinds.index("Dropout") > kinds.index("SimpleRNN")
    plain = KerasStack(27, 8, 2, 2, 1e-3, 1.0)
    assert not {"Add", "Dropout"} & {type(layer).__name__ for layer in plain.model.layers}
    window = np.random.default_rng(0).integers(0, 27, (2, 6)).astype(np.int32)
    assert np.isfinite(stack.train(window))
