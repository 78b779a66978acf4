"""Any Keras RNN cell through tf_rnn's loop (issue 38, item 4): Keras's own cells as models
of the table, and a user's cell by the config field `cell`, trained, resumed, scored,
sampled, exported and diagnosed like the package's own models."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from support import run_cli, tiny

from tf_rnn import models
from tf_rnn.base import config
from tf_rnn.inspect import probes
from tf_rnn.models import keras_cell

A = 7


# The documentation's example (docs/models.md, "Any Keras cell"): a cell of one's own.
@keras.saving.register_keras_serializable("tests")
class LeakyCell(keras.layers.Layer):
    """h' = (1 - a)·h + a·tanh(x·W + h·U + b): a leaky-integrator RNN."""

    def __init__(self, units, leak=0.5, **kwargs):
        super().__init__(**kwargs)
        self.units, self.leak, self.state_size = units, leak, units

    def build(self, input_shape):
        self.W = self.add_weight(shape=(input_shape[-1], self.units), name="W")
        self.U = self.add_weight(shape=(self.units, self.units), name="U",
                                 initializer="orthogonal")
        self.b = self.add_weight(shape=(self.units,), name="b", initializer="zeros")

    def call(self, x, states):
        h = states[0] if isinstance(states, (list, tuple)) else states
        new = (1 - self.leak) * h + self.leak * keras.ops.tanh(x @ self.W + h @ self.U + self.b)
        return new, [new]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "leak": self.leak}

    # What the diagnostics read of a cell, where it has them (Keras's own cells do).
    activation = "tanh"
    recurrent_kernel = property(lambda self: self.U)


def build(name, **fields):
    if name == "leaky":
        fields = {"cell": keras_cell.cell_setting(LeakyCell(6)), **fields}
        name = "keras_cell"
    keras.utils.set_random_seed(0)
    return models.build_model(config.Config(model=name, init="glorot", **fields), A)


KINDS = {"keras_simplernn": 6, "keras_gru": 6, "keras_lstm": 12, "leaky": 6}  # state width


def ids(batch=3, steps=8, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, A, (batch, steps)), tf.int32)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_window_is_the_cell_step_by_step_and_carries_its_state(kind):
    fields = {} if kind == "leaky" else {"num_nodes": 6}
    model = build(kind, **fields)
    assert model.state_size == KINDS[kind]
    x = ids()
    logits, state = model(x)
    want, want_state = model.call_reference(x, model.zero_state(3))
    np.testing.assert_allclose(logits, want, atol=1e-5)
    np.testing.assert_allclose(state, want_state, atol=1e-5)
    first, carried = model(x[:, :5])  # two windows, the state carried, as training does
    second, _ = model(x[:, 5:], carried)
    np.testing.assert_allclose(tf.concat([first, second], 1), logits, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_diagnostics_read_any_cell(kind):
    """h = [output, new state]; the figures come out for Keras's cells and a user's."""
    model = build(kind, **({} if kind == "leaky" else {"num_nodes": 6}))
    assert models.missing_probe_protocol(model) == []
    x = ids(steps=12)
    figures = probes.make_measure(model)(x[:, :-1], x[:, 1:], model.zero_state(3))
    assert np.isfinite(figures["sigma_max"]) and figures["recurrent_units"] != "all"
    assert figures["activation"] == ("relu" if kind == "keras_simplernn" else "tanh")


def test_a_cell_without_an_activation_or_kernel_reads_as_without_the_protocol():
    model = models.KerasCellModel(A, cell=keras.layers.StackedRNNCells(
        [keras.layers.GRUCell(4), keras.layers.GRUCell(4)]))
    assert model.state_size == 8
    assert sorted(models.missing_probe_protocol(model)) == ["activation", "recurrent_matrix"]


def test_config_needs_the_cell_and_refuses_what_a_cell_ignores():
    with pytest.raises(ValueError, match="Received no `cell` for model='keras_cell'"):
        config.Config(model="keras_cell")
    cell = keras_cell.cell_setting(keras.layers.GRUCell(4))
    with pytest.raises(ValueError, match="num_nodes=64 for model='keras_cell', which does "
                                         "not use it: the cell has its own width"):
        config.Config(model="keras_cell", cell=cell, num_nodes=64)
    with pytest.raises(ValueError, match="Received num_layers=2 for model='keras_gru', "
                                         "which does not stack.*StackedRNNCells"):
        config.Config(model="keras_gru", num_layers=2)
    with pytest.raises(ValueError, match="Received cell="):
        config.Config(model="keras_gru", cell=cell)
    unknown = json.dumps({"class_name": "NoSuchCell", "config": {}, "module": "nowhere"})
    with pytest.raises(ValueError, match="NoSuchCell.*register_keras_serializable"):
        models.build_model(config.Config(model="keras_cell", cell=unknown), A)


def test_a_users_cell_trains_resumes_scores_samples_and_exports(tmp_path, capsys, corpus):
    """The CLI, in this process (where the cell's class is registered), end to end."""
    cell = keras_cell.cell_setting(LeakyCell(8))
    workdir = tmp_path / "run"
    sets = [f for s in ("model=keras_cell", f"cell={cell}", "init=glorot", "optimizer=adam",
                        "learning_rate=0.01", "dropout=0.1") for f in ("--set", s)]
    argv = ["train", "--data", corpus, "--workdir", workdir, *tiny(num_nodes=None), *sets]
    code, first, err = run_cli(capsys, *argv, "--steps", "20")
    assert code == 0 and first["step"] == 20, err
    code, resumed, err = run_cli(capsys, *argv, "--steps", "40")
    assert code == 0 and resumed["step"] == 40 and "Resumed" in err, err
    assert resumed["loss"] < 2.5  # from log(27) = 3.3 nats: it learns
    saved = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
    assert saved["model"] == "keras_cell" and json.loads(saved["cell"])["class_name"] == \
        "LeakyCell"
    code, ev, err = run_cli(capsys, "eval", "--workdir", workdir, "--split", "valid")
    assert code == 0 and 0 < ev["bpc"] < 4, err
    code, sample, err = run_cli(capsys, "sample", "--workdir", workdir, "--prime", "the ",
                                "--length", "20", "--seed", "1")
    assert code == 0 and len(sample["text"]) == 24, err
    code, scored, err = run_cli(capsys, "score", "--workdir", workdir, "--text", "the cat sat")
    assert code == 0, err
    scored = scored["summary"]
    assert 0 < scored["bpc"] < 8
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat and the dog ran far away", encoding="utf-8")
    code, _, err = run_cli(capsys, "inspect", "--workdir", workdir, "--file", text, "--out",
                           tmp_path / "report.html")
    assert code == 0 and "<html" in (tmp_path / "report.html").read_text(encoding="utf-8"), err
    out = tmp_path / "export"
    code, _, err = run_cli(capsys, "export", "--workdir", workdir, "--out", out)
    assert code == 0, err
    loaded = tf.saved_model.load(str(out))  # the SavedModel needs no Python class
    exported = loaded.score(tf.constant(["the cat sat"]))["bpc"].numpy()[0]
    assert exported == pytest.approx(scored["bpc"], abs=1e-4)  # as `tf-rnn score` says
