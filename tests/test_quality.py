"""`python -m experiments.quality`: its output contract, the TensorBoard runs it writes
(read back with TensorBoard's own reader) and its PNG, never its figures."""

import json
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from support import ROOT, subprocess_env, write_corpus

CONTENDERS = ["text8_best", "arch1_sum_best", "keras_simplernn_200"]


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away"]
    corpus = tmp / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(words, size=20000)), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "experiments.quality", "--data", str(corpus),
         "--minutes", "0.1", "--points", "2", "--contenders", ",".join(CONTENDERS),
         "--add", "mul16=text8_best,num_nodes=16,learning_rate=0.01",
         "--logdir", str(tmp / "tb"), "--plot", str(tmp / "curves.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=subprocess_env())
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp, out


@pytest.mark.slow
def test_one_row_per_contender_then_the_summary(quality_run):
    _, out = quality_run
    records = [json.loads(line) for line in out.stdout.strip().splitlines()]
    rows, summary = records[:-1], records[-1]["summary"]
    assert [r["name"] for r in rows] == [f"quality/{c}" for c in CONTENDERS + ["mul16"]]
    for row in rows:
        assert row["steps"] > 0 and row["chars_per_sec"] > 0
        assert row["train_seconds"] >= 6.0  # the budget: 0.1 min
        # The curve keeps 4 decimals, the row 4 significant digits (4.5779 vs 4.578).
        assert len(row["curve"]) == 2
        assert row["curve"][-1][2] == pytest.approx(row["valid_bpc"], abs=1e-3)
        # A first step (its compile) longer than half the budget passes both marks at once.
        assert row["curve"][0][0] <= row["curve"][1][0] and 0 < row["valid_bpc"] < 10
    assert summary["best_valid_bpc"] == rows[0]["valid_bpc"]
    assert summary["best_keras_valid_bpc"] == rows[2]["valid_bpc"]
    assert summary["best_margin_over_keras"] == pytest.approx(
        rows[2]["valid_bpc"] - rows[0]["valid_bpc"], abs=2e-3)


@pytest.mark.slow
def test_each_contender_is_a_tensorboard_run(quality_run):
    tmp, out = quality_run
    rows = {r["name"].split("/")[1]: r for r in map(json.loads,
                                                     out.stdout.strip().splitlines()[:-1])}
    for name in CONTENDERS + ["mul16"]:
        acc = event_accumulator.EventAccumulator(str(tmp / "tb" / name), size_guidance={
            event_accumulator.TENSORS: 0})
        acc.Reload()
        import tensorflow as tf

        events = acc.Tensors("valid/bpc")
        assert [e.step for e in events] == [round(s) for s, _, _ in rows[name]["curve"]]
        values = [float(tf.make_ndarray(e.tensor_proto)) for e in events]
        np.testing.assert_allclose(values, [b for _, _, b in rows[name]["curve"]], rtol=1e-4)


@pytest.mark.slow
def test_the_plot_is_a_png(quality_run):
    tmp, _ = quality_run
    assert (tmp / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_are_rejected(tmp_path):
    cmd = [sys.executable, "-m", "experiments.quality", "--data", str(tmp_path / "none.txt")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "is not a file" in out.stderr
    out = subprocess.run(cmd + ["--contenders", "text8_best,gru"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "gru" in out.stderr
    out = subprocess.run(cmd + ["--add", "w=text8_best,combine=product"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "`combine`" in out.stderr


def test_a_run_without_keras_contenders_reports_null_not_a_crash():
    # A tf_rnn-only sweep (--contenders text8_best --add ...) has no Keras figure to
    # compare with: the summary says null where the margin would be (JSON has no NaN).
    from experiments import _quality
    from experiments._report import round_figures
    from tf_rnn import jsonl

    line = jsonl.dumps({"summary": round_figures(
        _quality.summary({"text8_best": 2.03, "d40": 2.01}, 6))})  # quality.run's last line
    summary = json.loads(line)["summary"]
    assert summary["best_valid_bpc"] == 2.03
    assert summary["best_keras_valid_bpc"] is None
    assert summary["best_margin_over_keras"] is None
    assert summary["best_beats_keras_by_0_05"] is False


@pytest.mark.slow
def test_lstm_streams_scores_per_stream_as_the_quality_run_does(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", 30000)
    cmd = [sys.executable, "-m", "experiments.lstm_streams", "--data", str(corpus)]
    env = subprocess_env()
    out = subprocess.run(cmd + ["--steps", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    streams = result["stream_bpc"]
    assert len(streams) == 32 and result["steps"] == 2
    # Its per-stream scoring adds up to the quality run's figure for the same weights.
    assert result["valid_bpc"] == pytest.approx(result["quality_scoring_bpc"], rel=1e-6)
    assert result["valid_bpc"] == pytest.approx(np.mean(streams), abs=1e-3)
    assert streams[result["worst_stream"]] == max(streams)
    assert result["other_streams_mean_bpc"] <= result["worst_stream_bpc"]
    assert len(result["worst_stream_starts"]) > 20
    assert result["worst_stream_starts"] in corpus.read_text()  # text of the valid split
    bad = subprocess.run(cmd + ["--steps", "0"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "--steps must be >= 1" in bad.stderr
