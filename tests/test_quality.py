"""`python -m experiments.quality`: its output contract, the TensorBoard runs it writes
(read back with TensorBoard's own reader) and its PNG, never its figures; the
transformer peer (`experiments._transformer`): causal, scored on the recurrent
contenders' characters with half its context, decayed on its matrices only; the
budget's schedules, which end at each contender's budget whatever its pace."""

import json
import math
import pathlib
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from support import ROOT, subprocess_env, write_corpus

from experiments import _quality, _transformer, quality
from tf_rnn import data
from tf_rnn.base import config
from tf_rnn.engine import steps
from tf_rnn.train import budget

CONTENDERS = ["text8_best", "keras_gru_256", "gpt_baby"]


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away"]
    corpus = tmp / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(words, size=20000)), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "experiments.quality", "--data", str(corpus),
         "--minutes", "0.05", "--points", "2", "--contenders", ",".join(CONTENDERS),
         "--add", "mul16=text8_best,num_nodes=16,learning_rate=0.01,schedule=linear",
         "--add", "gru8=keras_gru_256,num_nodes=8,learning_rate=0.01",
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
    assert [r["name"] for r in rows] == [f"quality/{c}" for c in CONTENDERS + ["mul16", "gru8"]]
    for row in rows:
        assert row["steps"] > 0 and row["chars_per_sec"] > 0
        # the budget: 0.05 min on the contender's clock, its validations included (the
        # last one's time kept aside: it may end a little early or late)
        assert row["train_seconds"] >= 0.9 * 3.0
        # its last step's: 0 where the first step (its compile) outlasted the budget
        assert 0 <= row["schedule_fraction"] <= 1
        # The curve keeps 4 decimals, the row 4 significant digits (4.5779 vs 4.578).
        # The transformer's: --points 2 (one, where the budget's end would repeat the
        # middle one at once); a run's (tf_rnn's and the Keras peers'): its validations
        # (every eval_every steps, 1000 here: its last step's alone).
        run = row["name"] != "quality/gpt_baby"
        assert len(row["curve"]) in ((1,) if run else (1, 2))
        assert ("command" in row) == run
        assert row["curve"][-1][2] == pytest.approx(row["valid_bpc"], abs=1e-3)
        # A first step (its compile) longer than half the budget passes both marks at once.
        assert row["curve"][0][0] <= row["curve"][-1][0] and 0 < row["valid_bpc"] < 10
    bpc = {r["name"].split("/")[1]: r["valid_bpc"] for r in rows}
    ours = min(["text8_best", "mul16"], key=bpc.get)
    peer = min(["keras_gru_256", "gpt_baby", "gru8"], key=bpc.get)  # a peer's variant too
    assert (summary["best_tf_rnn"], summary["best_peer"]) == (ours, peer)
    assert summary["best_tf_rnn_valid_bpc"] == bpc[ours]
    assert summary["best_peer_valid_bpc"] == bpc[peer]
    assert summary["margin_over_best_peer"] == pytest.approx(bpc[peer] - bpc[ours], abs=2e-3)
    assert summary["keras_schedule"] == "cooldown"


@pytest.mark.slow
def test_each_contender_is_a_tensorboard_run(quality_run):
    tmp, out = quality_run
    rows = {r["name"].split("/")[1]: r for r in map(json.loads,
                                                     out.stdout.strip().splitlines()[:-1])}
    for name in CONTENDERS + ["mul16", "gru8"]:
        acc = event_accumulator.EventAccumulator(str(tmp / "tb" / name), size_guidance={
            event_accumulator.TENSORS: 0})
        acc.Reload()
        events = acc.Tensors("valid/bpc")
        # The step is the training second, rounded; the row keeps the seconds to 0.1.
        seconds = [s for s, _, _ in rows[name]["curve"]]
        assert len(events) == len(seconds)
        assert all(abs(e.step - s) <= 0.55 for e, s in zip(events, seconds))
        values = [float(tf.make_ndarray(e.tensor_proto)) for e in events]
        np.testing.assert_allclose(values, [b for _, _, b in rows[name]["curve"]], rtol=1e-4)
        (entry,), _ = hparams_of(tmp / "tb" / name)  # its HParams dashboard entry
        settings = entry.session_start_info.hparams
        assert settings["model"].string_value == name
        assert settings["minutes"].number_value == 0.05
    (entry,), _ = hparams_of(tmp / "tb" / "gru8")  # the --add's width and rate, trained
    assert entry.session_start_info.hparams["width"].number_value == 8
    assert entry.session_start_info.hparams["lr"].number_value == pytest.approx(0.01)


@pytest.mark.slow
def test_the_plot_is_a_png(quality_run):
    tmp, _ = quality_run
    assert (tmp / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [
    ([], "is not a file"), (["--contenders", "text8_best,gru"], "gru"),
    (["--keras-schedule", "step"], "--keras-schedule"),
    (["--add", "w=text8_best,combine=product"], "`combine`"),
    (["--add", "l=keras_lstm_256,num_layers=2"], "which does not stack"),
    (["--add", "l=keras_lstm_256,learning_rate=fast"], "`learning_rate`, expected a number"),
    (["--add", "l=keras_lstm_256,num_nodes=-3"], "`num_nodes`"),
    (["--add", "l=keras_lstm_256,num_nodes=8.5"], "`num_nodes`, expected an integer"),
    (["--add", "l=gpt_baby,learning_rate=0.1"], "Unknown preset 'gpt_baby'"),
    (["--add", "keras_gru_256=keras_gru_256,num_nodes=8"], "give a new contender name")])
def test_bad_arguments_are_rejected(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        quality.parse_args(["--data", str(tmp_path / "none.txt"), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_run_without_keras_contenders_reports_null_not_a_crash():
    # A tf_rnn-only sweep (--contenders text8_best --add ...) has no Keras figure to
    # compare with: the summary says null where the margin would be (JSON has no NaN).
    from experiments import _quality
    from experiments._report import round_figures
    from tf_rnn.base import jsonl

    line = jsonl.dumps({"summary": round_figures(
        _quality.summary({"text8_best": 2.03, "d40": 2.01}, 6))})  # quality.run's last line
    summary = json.loads(line)["summary"]
    assert summary["best_tf_rnn"] == "d40" and summary["best_tf_rnn_valid_bpc"] == 2.01
    assert summary["best_peer"] is None and summary["best_peer_valid_bpc"] is None
    assert summary["margin_over_best_peer"] is None
    assert summary["beats_best_peer_by_0_05"] is False


def test_an_added_variant_of_a_peer_is_a_peer_and_of_a_preset_is_ours():
    added = {"lstm1e3": ("keras_lstm_256", {"learning_rate": 1e-3}),
             "d20": ("text8_best", {"dropout": 0.2})}
    peers = _quality.peer_names(added)
    assert {"lstm1e3", "keras_gru_256", "gpt_baby"} <= peers and "d20" not in peers
    summary = _quality.summary({"d20": 1.9, "lstm1e3": 1.8, "keras_gru_256": 2.0}, 3, peers)
    assert (summary["best_tf_rnn"], summary["best_peer"]) == ("d20", "lstm1e3")


def test_the_summary_sets_the_best_tf_rnn_contender_against_the_best_peer():
    # Every contender not tf_rnn's is a peer, the transformer included; an --add is ours.
    bpc = {"text8_best": 1.90, "mine": 1.80, "keras_lstm_256": 2.00, "gpt_baby": 1.86}
    summary = _quality.summary(bpc, 3)
    assert (summary["best_tf_rnn"], summary["best_peer"]) == ("mine", "gpt_baby")
    assert summary["margin_over_best_peer"] == pytest.approx(0.06)
    assert summary["beats_best_peer_by_0_05"] is True
    bpc["gpt_baby"] = 1.84  # a margin of 0.04
    assert _quality.summary(bpc, 3)["beats_best_peer_by_0_05"] is False


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


# The transformer peer ------------------------------------------------------------------

def tiny_gpt(**changes):
    """A baby GPT shrunk for tests: width 16, 2 heads, 2 layers, context 8."""
    settings = {"width": 16, "heads": 2, "num_layers": 2, "context": 8, "batch_size": 2,
                **changes}
    return _transformer.GPTTrainer(27, _quality.new_progress(), **settings)


def test_the_transformer_is_causal():
    gpt = tiny_gpt()
    ids = np.random.default_rng(0).integers(0, 27, (2, 8))
    changed = ids.copy()
    changed[:, 5] = (changed[:, 5] + 1) % 27
    before, after = gpt.model(ids).numpy(), gpt.model(changed).numpy()
    np.testing.assert_array_equal(before[:, :5], after[:, :5])  # earlier logits: untouched
    assert np.abs(before[:, 5:] - after[:, 5:]).min(axis=-1).max() > 0  # premise: it reads


@pytest.mark.parametrize("context", [64, 48])  # 48: 24 does not divide 32 streams' text
@pytest.mark.parametrize("num_chars", [33, 65, 97, 1000, 1057, 20001])
def test_the_transformer_scores_the_recurrent_contenders_characters(num_chars, context):
    # The characters steps.evaluate scores with 32 streams: each stream's targets.
    rnn = steps.scoring_streams(np.arange(num_chars), 32)[:, 1:].ravel()
    targets, contexts = _transformer.scored_targets(num_chars, context=context)
    assert len(targets) == len(rnn) == len(set(targets.tolist()))  # each once
    np.testing.assert_array_equal(np.sort(targets), np.sort(rnn))
    # At least half the window of context, or all the text before it near the start.
    assert (contexts >= np.minimum(targets, context // 2)).all()
    assert (contexts <= context).all()
    start = targets <= context
    assert (contexts[start] == targets[start]).all()


def test_the_transformer_score_is_each_characters_probability_given_its_window():
    gpt = tiny_gpt()
    ids = np.random.default_rng(1).integers(0, 27, 32 * 7 + 5)
    targets, contexts = _transformer.scored_targets(len(ids), context=8)
    bits = []
    for c in np.unique(contexts):  # the model run on each character's own context alone
        t = targets[contexts == c]
        logits = gpt.model(ids[t[:, None] - c + np.arange(c)[None, :]]).numpy()[:, -1]
        log_z = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        bits.extend((log_z - logits[np.arange(len(t)), ids[t]]) / math.log(2))
    assert len(bits) == 32 * 7
    assert gpt.evaluate(ids, chunk=5) == pytest.approx(np.mean(bits), rel=1e-5)


def test_weight_decay_shrinks_the_matrices_only():
    gpt = tiny_gpt(warmup=0, learning_rate=0.1, weight_decay=0.5)
    variables = gpt.model.trainable_variables
    matrices = [v for v in variables if len(v.shape) == 2 and "embedding" not in v.path]
    assert len(matrices) == 2 * 4 and len(variables) > len(matrices)  # premise: the others
    before = [v.numpy() for v in variables]
    # Zero gradients: Adam's step is 0, so what changes is the decoupled decay alone.
    gpt.optimizer.apply([tf.zeros_like(v) for v in variables], variables)
    for v, old in zip(variables, before):
        factor = 1 - 0.1 * 0.5 if any(v is m for m in matrices) else 1.0
        np.testing.assert_allclose(v.numpy(), old * factor, rtol=1e-6, err_msg=v.path)


def test_warmup_then_cosine_to_the_floor_at_the_budgets_end():
    progress = _quality.new_progress()
    lr = _transformer.WarmupCosine(1e-3, 1e-4, 100, progress)
    rates = [float(lr(s)) for s in range(0, 101)]
    assert np.all(np.diff(rates[:100]) > 0) and rates[0] < 2e-5  # the warm-up rises
    assert float(lr(500)) == pytest.approx(1e-3)  # nothing of the budget spent: the peak
    progress.assign(0.5)
    assert float(lr(600)) == pytest.approx(5.5e-4)  # half way: the mean of peak and floor
    progress.assign(1.0)
    assert float(lr(1100)) == pytest.approx(1e-4) and float(lr(5000)) == pytest.approx(1e-4)


@pytest.mark.parametrize("kind, half, end", [("constant", 1.0, 1.0), ("linear", 0.5, 0.0),
                                             ("cooldown", 1.0, 0.0)])
def test_the_keras_peers_schedules_end_at_the_budgets_end(kind, half, end):
    """--keras-schedule gives the Keras peers' runs the config fields of its shape; the
    run's schedule, on the budget's progress, then ends at the budget's end."""
    cfg = config.get_preset("keras_gru_256").replace(**_quality.schedule_changes(kind))
    progress = _quality.new_progress()
    scale = tf.Variable(1.0, trainable=False)
    total = tf.Variable(0, dtype=tf.int64, trainable=False)  # no step count: the clock ends it
    lr = steps.Schedule(cfg.schedule, cfg.learning_rate, cfg.decay_steps, cfg.decay_rate,
                        scale, total, cfg.cooldown_fraction, progress=progress)
    assert float(lr(300)) == pytest.approx(2e-3)
    progress.assign(0.5)
    assert float(lr(500)) == pytest.approx(2e-3 * half)
    progress.assign(1.0)
    assert float(lr(1000)) == pytest.approx(2e-3 * end, rel=1e-6, abs=1e-12)


def test_the_keras_peers_are_runs_of_tf_rnns_loop(tmp_path):
    """Each Keras peer is the preset of its name, trained as `tf-rnn train --minutes`
    trains it: a RunContender with the command that reproduces its row."""
    corpus = write_corpus(tmp_path / "c.txt", 6000)
    contenders = _quality.make_contenders(["keras_lstm_256"], 27, "linear", data=str(corpus),
                                          logdir=str(tmp_path / "tb"), minutes=0.1)
    try:
        (lstm,) = contenders
        assert isinstance(lstm, _quality.RunContender)
        assert lstm.trainer.config.model == "keras_lstm" and lstm.changes == {
            "schedule": "linear"}
        assert "tf-rnn train --preset keras_lstm_256" in lstm.command
        assert "--set schedule=linear" in lstm.command
    finally:
        for c in contenders:
            c.close()
    # The default schedule is the preset's own: nothing to set in the command.
    (gru,) = contenders = _quality.make_contenders(
        ["keras_gru_256"], 27, "cooldown", data=str(corpus), logdir=str(tmp_path / "tb2"),
        minutes=0.1)
    try:
        assert gru.changes == {} and "--set" not in gru.command
    finally:
        for c in contenders:
            c.close()


class PacedClock:
    """tf_rnn.train.budget's clock, moved only by the contenders' training steps: `step(name)`
    takes 1 s for each contender's first `slow` steps and 0.5 s after them; a
    validation `validation` seconds."""

    def __init__(self, validation=0.0, slow=0):
        self.now, self.steps, self.validation, self.slow = 0.0, {}, validation, slow

    def __call__(self):
        return self.now

    def step(self, name):
        self.steps[name] = self.steps.get(name, 0) + 1
        self.now += 1.0 if self.steps[name] <= self.slow else 0.5
        return 0.0

    def validate(self, ids):
        self.now += self.validation
        return 1.0


def test_train_for_ends_each_contender_at_its_own_budget(monkeypatch):
    clock = PacedClock(validation=0.5)
    monkeypatch.setattr(budget, "clock", clock)
    contenders = [_quality.Contender(name, lambda window, name=name: clock.step(name),
                                     clock.validate, 2, 3) for name in ("a", "b")]
    bpc = _quality.train_for(contenders, np.zeros(1000, np.int32), np.zeros(100, np.int32),
                             50.0, lambda line: None)
    # 0.5 s a step over 50 s in turns, each on its own clock (the other's turns between
    # its steps are not its time); then its validation, 0.5 s more on its clock.
    assert bpc == {"a": 1.0, "b": 1.0}
    for c in contenders:
        assert c.steps == 100 and c.seconds == 50.5 and c.curve == [(50.5, 100, 1.0)]
        assert c.schedule_fraction == pytest.approx(0.99)  # its last step's


@pytest.mark.parametrize("validation", [0.0, 10.0])
def test_train_for_ends_annealed_as_the_pace_changes_and_validations_cost(monkeypatch,
                                                                         validation):
    """A pace that doubles after 40 steps, and validations of 10 % of the budget at a
    third and two thirds of it: every schedule still reaches its end (progress 1) on the
    budget's last step, and the clock, validations included, ends on time."""
    clock = PacedClock(validation, slow=40)
    monkeypatch.setattr(budget, "clock", clock)
    contenders = [_quality.Contender(name, lambda window, name=name: clock.step(name),
                                     clock.validate, 2, 3) for name in ("a", "b")]
    _quality.train_for(contenders, np.zeros(1000, np.int32), np.zeros(100, np.int32), 100.0,
                       lambda line: None, points=3)
    for c in contenders:
        # 40 steps of 1 s, then 0.5 s a step: 160 steps; with the validations' 30 s
        # (the last one kept time for) 60 steps after the first 40.
        assert c.steps == (100 if validation else 160)
        assert c.seconds == pytest.approx(100.0, abs=0.5) and len(c.curve) == 3
        assert c.schedule_fraction >= 0.99


def hparams_of(run_dir):
    """(the HParams plugin's protos, {scalar tag: [(step, value)]}) of a run's events."""
    plugin, scalars = [], {}
    for path in sorted(pathlib.Path(run_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    plugin.append(plugin_data_pb2.HParamsPluginData.FromString(
                        v.metadata.plugin_data.content))
                elif v.HasField("tensor"):
                    scalars.setdefault(v.tag, []).append(
                        (event.step, float(tf.make_ndarray(v.tensor))))
    return plugin, scalars


def test_each_contender_has_an_hparams_entry_and_its_metric(tmp_path, monkeypatch):
    corpus = types.SimpleNamespace(train=np.zeros(4000, np.int32), valid=np.zeros(400),
                                   vocab=types.SimpleNamespace(size=27), source="fake")
    monkeypatch.setattr(data, "load_corpus", lambda *a, **k: corpus)
    fakes = [_quality.Contender("text8_best", None, None, 32, 40,
                                hparams={"width": 384, "lr": 2e-3, "schedule": "cooldown"}),
             _quality.Contender("gpt_baby", None, None, 12, 64, hparams={"width": 128})]
    monkeypatch.setattr(_quality, "make_contenders", lambda *a, **k: fakes)

    def train_for(contenders, train, valid, seconds, log, points, on_point):
        for c in contenders:
            c.curve.append((seconds, 7, 2.5 if c.name == "gpt_baby" else 2.25))
            on_point(c)
        return {c.name: c.curve[-1][2] for c in contenders}

    monkeypatch.setattr(_quality, "train_for", train_for)
    args = quality.parse_args(["--data", __file__, "--minutes", "0.5", "--logdir",
                               str(tmp_path), "--contenders", "text8_best,gpt_baby"])
    quality.run(args)
    (config,), _ = hparams_of(tmp_path)  # the dashboard's columns and its metric
    assert [m.name.tag for m in config.experiment.metric_infos] == ["valid/bpc"]
    columns = {h.name for h in config.experiment.hparam_infos}
    assert {"model", "width", "lr", "schedule", "batch", "minutes"} <= columns
    for c, bpc in ((fakes[0], 2.25), (fakes[1], 2.5)):
        (entry,), scalars = hparams_of(tmp_path / c.name)
        got = {k: v.string_value or v.number_value for k, v in
               entry.session_start_info.hparams.items()}
        assert got == {**c.hparams, "minutes": 0.5}
        assert got["batch"] == c.batch_size and got["model"] == c.name
        assert scalars["valid/bpc"] == [(30, bpc)]


def test_every_documented_quality_command_names_known_contenders():
    """The README's and docs/quality.md's `experiments.quality --contenders` lists run
    as written (experiments.gpt_peers has contenders of its own)."""
    from experiments import _quality

    pages = [ROOT / "README.md", ROOT / "docs" / "quality.md"]
    named = {name for page in pages
             for names in re.findall(r"experiments\.quality(?:[^\n]|\\\n)*?--contenders\s+"
                                     r"([\w,]+)", page.read_text("utf-8"))
             for name in names.split(",") if name}
    assert {"text8_best_3min", "text8_best_30min"} <= named  # the 3- and 30-minute rows
    assert named <= set(_quality.KNOWN), sorted(named - set(_quality.KNOWN))
