"""The IndRNN model (`tf_rnn.models.indrnn`, `model=indrnn`): values by hand, the fast path
against the cell loop and a NumPy reference, gradients through the carried state, the
|u| bound after real updates, serialisation, and one tiny run through the CLI."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from support import (assert_export_scores_as_eval, assert_variable_gradients, run_cli,
                     tiny)

from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.engine import steps
from tf_rnn.models.indrnn import IndRNNModel


def _model(A=5, n=3, layers=2, residual=True, seed=0, **kwargs):
    """A float64 model with random weights (u in [0, 0.95)) and a nonzero start."""
    keras.utils.set_random_seed(seed)
    model = IndRNNModel(A, n, num_layers=layers, residual=residual, recurrent_max=0.95,
                        init="glorot", dtype="float64", **kwargs)
    for v in model.trainable_variables:  # biases too: no unit sits at relu's kink
        v.assign(np.random.default_rng(seed + 1).uniform(-0.3, 0.95, v.shape)
                 if v.name == "u" else v + np.random.default_rng(seed).normal(0, 0.3, v.shape))
    return model


def _numpy_reference(model, ids, state):
    """The stack written out in NumPy, one step at a time: logits (B, T, A), state."""
    cells = [{k: getattr(c, k).numpy() for k in ("W", "b", "u")} for c in model.layer_cells]
    V, c = model.V.numpy(), model.c.numpy()
    hs = np.split(np.asarray(state), len(cells), axis=-1)
    logits = []
    for t in range(ids.shape[1]):
        o = np.eye(model.alphabet_size)[ids[:, t]]
        for layer, w in enumerate(cells):
            hs[layer] = np.maximum(o @ w["W"] + w["b"] + w["u"] * hs[layer], 0)
            o = hs[layer] + o if model.residual and layer > 0 else hs[layer]
        logits.append(o @ V + c)
    return np.stack(logits, axis=1), np.concatenate(hs, axis=-1)


def test_one_layer_two_steps_by_hand():
    model = IndRNNModel(2, 2, recurrent_max=1.0, dtype="float64")
    cell = model.layer_cells[0]
    cell.W.assign([[1.0, -1.0], [0.5, 2.0]])
    cell.b.assign([0.1, 0.2])
    cell.u.assign([0.25, 0.9])
    model.V.assign(np.eye(2))
    model.c.assign([0.5, -0.5])
    ids, h0 = tf.constant([[0, 1]]), tf.constant([[0.2, 0.4]], tf.float64)
    # step 1: a = [1 + 0.1 + 0.25*0.2, -1 + 0.2 + 0.9*0.4] = [1.15, -0.44] -> h = [1.15, 0]
    # step 2: a = [0.5 + 0.1 + 0.25*1.15, 2 + 0.2 + 0.9*0] = [0.8875, 2.2]
    expected = [[[1.65, -0.5], [1.3875, 1.7]]]
    for run in (model, model.call_reference):
        logits, state = run(ids, h0)
        np.testing.assert_allclose(logits, expected, rtol=1e-12)
        np.testing.assert_allclose(state, [[0.8875, 2.2]], rtol=1e-12)


@pytest.mark.parametrize("layers,residual", [(1, False), (2, False), (2, True), (3, True)])
def test_fast_path_equals_the_cell_loop_and_numpy(layers, residual):
    model = _model(layers=layers, residual=residual)
    ids = np.random.default_rng(2).integers(0, 5, (4, 6))
    state = np.random.default_rng(3).uniform(0, 1, (4, 3 * layers))
    logits, new_state = model(tf.constant(ids), tf.constant(state))
    ref_logits, ref_state = model.call_reference(tf.constant(ids), tf.constant(state))
    np_logits, np_state = _numpy_reference(model, ids, state)
    for got in (logits, ref_logits):
        np.testing.assert_allclose(got, np_logits, rtol=1e-10, atol=1e-12)
    for got in (new_state, ref_state):
        np.testing.assert_allclose(got, np_state, rtol=1e-10, atol=1e-12)
    active = (np_state > 0).mean()
    assert 0.2 < active < 1.0, active  # the premise: relus both on and off


def test_carried_state_equals_one_long_window():
    model = _model(layers=2, residual=True)
    ids = tf.constant(np.random.default_rng(4).integers(0, 5, (3, 8)))
    s0 = tf.constant(np.random.default_rng(5).uniform(0, 1, (3, 6)))
    whole, s_whole = model(ids, s0)
    first, s1 = model(ids[:, :4], s0)
    second, s2 = model(ids[:, 4:], s1)
    np.testing.assert_allclose(tf.concat([first, second], 1), whole, rtol=1e-12)
    np.testing.assert_allclose(s2, s_whole, rtol=1e-12)
    fresh, _ = model(ids[:, 4:], tf.zeros_like(s1))  # the premise: the state matters
    assert np.abs(fresh - second).max() > 1e-3


def test_gradients_through_the_carried_state_match_central_differences():
    """d(loss of window 2)/d(weights, start state), window 2 starting from window 1's
    state: the path through the carried state and both layers' recurrences."""
    model = _model(layers=2, residual=True)
    ids = tf.constant(np.random.default_rng(6).integers(0, 5, (2, 6)))
    mix = tf.constant(np.random.default_rng(7).normal(size=(2, 3, 5)))
    s0 = tf.Variable(np.random.default_rng(8).uniform(0, 1, (2, 6)))

    def loss():
        _, s1 = model(ids[:, :3], s0)
        logits, s2 = model(ids[:, 3:], s1)
        return tf.reduce_sum(logits * mix) + tf.reduce_sum(tf.sin(s2))

    grads = assert_variable_gradients(loss, [s0, *model.trainable_variables])
    # The premise: window 1's start reaches window 2's loss.
    assert np.abs(grads[0]).max() > 1e-3


@pytest.mark.parametrize("jit_compile", [False, True])
def test_u_stays_within_its_bound_after_training_steps(jit_compile):
    config = config_lib.Config(model="indrnn", num_layers=2, num_nodes=6, num_unrollings=4,
                               init="glorot")
    bound = 2.0 ** (1 / 4)
    keras.utils.set_random_seed(0)
    model = models.build_model(config, 5)
    assert model.recurrent_max == pytest.approx(bound)
    for cell in model.layer_cells:  # u ~ U(0, bound) at the start
        u = cell.u.numpy()
        assert (u >= 0).all() and (u < bound).all() and u.std() > 0.1
    train_step = steps.make_train_step(model, keras.optimizers.SGD(200.0),
                                       jit_compile=jit_compile)
    ids = np.random.default_rng(0).integers(0, 5, (8, 5))
    state = model.zero_state(8)
    for _ in range(5):
        metrics, state = train_step(ids[:, :-1], ids[:, 1:], state)
        assert bool(metrics["finite"])
    u = np.concatenate([cell.u.numpy() for cell in model.layer_cells])
    assert np.abs(u).max() <= bound * (1 + 1e-6)
    # The premise: such updates push u past the bound, where the clip holds it.
    assert np.isclose(np.abs(u), bound, rtol=1e-6).sum() >= 2, u


def test_get_config_round_trip_keeps_float64_and_the_bound():
    model = IndRNNModel(7, 4, num_layers=2, residual=True, recurrent_max=1.1,
                        dtype="float64", dropout=0.2, seed=3, init="glorot")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(clone, IndRNNModel) and clone.get_config() == model.get_config()
    assert clone.compute_dtype == "float64" and clone.state_size == 8
    assert clone.layer_cells[1].u.constraint.max_value == pytest.approx(1.1)
    clone.set_weights(model.get_weights())
    ids = tf.constant([[1, 2, 3]])
    np.testing.assert_allclose(clone(ids)[0], model(ids)[0], rtol=1e-12)


def test_config_refuses_what_indrnn_does_not_use():
    with pytest.raises(ValueError, match="num_layers=2 for model='arch2', which does not "
                       "stack"):
        config_lib.Config(model="arch2", num_layers=2)
    with pytest.raises(ValueError, match="config field `num_layers`, expected a positive"):
        config_lib.Config(model="indrnn", num_layers=0)
    with pytest.raises(ValueError, match="config field `indrnn_gamma`"):
        config_lib.Config(model="indrnn", indrnn_gamma=0.0)
    with pytest.raises(ValueError, match="init='irnn' for model='indrnn'"):
        config_lib.Config(model="indrnn", init="irnn")


def test_dropout_masks_differ_per_connection_and_spare_the_recurrence():
    model = _model(layers=2, residual=False, dropout=0.5)
    ids = tf.constant(np.random.default_rng(9).integers(0, 5, (4, 5)))
    s0 = tf.constant(np.random.default_rng(10).uniform(0, 1, (4, 6)))
    plain, plain_state = model(ids, s0)
    seed = tf.constant([0, 7], tf.int64)
    dropped, dropped_state = model(ids, s0, dropout_seed=seed)
    assert np.abs(dropped - plain).max() > 1e-3
    # Layer 1 reads no dropped connection: its state is untouched; layer 2's is not.
    np.testing.assert_allclose(dropped_state[:, :3], plain_state[:, :3], rtol=1e-12)
    assert np.abs(dropped_state[:, 3:] - plain_state[:, 3:]).max() > 1e-6
    a = model._connection_seed(seed, 0)
    b = model._connection_seed(seed, 1)
    assert a.numpy().tolist() != b.numpy().tolist()


@pytest.mark.slow
def test_cli_train_resume_eval_sample_export_diagnose(tmp_path, capsys, corpus):
    workdir = tmp_path / "run"
    flags = ["--data", str(corpus), "--workdir", str(workdir), *tiny(
        model="indrnn", num_layers=2, residual=True, num_nodes=16, init="glorot",
        optimizer="adam", learning_rate=0.01, dropout=0.1, eval_every=20)]
    code, first, err = run_cli(capsys, "train", "--steps", "20", *flags)
    assert code == 0, err
    code, second, err = run_cli(capsys, "train", "--steps", "40", *flags)
    assert code == 0 and "Resumed" in err and second["step"] == 40, err
    assert second["valid_bpc"] < first["valid_bpc"] - 0.1  # it learned
    assert json.loads((workdir / "config.json").read_text())["num_layers"] == 2

    code, ev, err = run_cli(capsys, "eval", "--workdir", str(workdir))
    assert code == 0 and ev["bpc"] == pytest.approx(second["valid_bpc"], rel=1e-5), err
    code, sample, err = run_cli(capsys, "sample", "--workdir", str(workdir), "--prime",
                                "the ", "--length", "20", "--seed", "1")
    assert code == 0 and len(sample["text"]) == 24 and sample["text"].startswith("the "), err

    code, exported, err = run_cli(capsys, "export", "--workdir", str(workdir))
    assert code == 0 and exported["state_size"] == 32, err
    assert_export_scores_as_eval(capsys, workdir, exported["export_dir"],
                                 corpus.read_text(encoding="utf-8")[:300], tmp_path)

    code, figures, err = run_cli(capsys, "diagnose", "--workdir", str(workdir))
    assert code == 0, err
    assert figures["activation"] == "relu" and len(figures["unit_rate"]) == 32
    assert 0 < figures["sigma_max"] <= 2.0 ** (1 / 10) + 1e-6  # max |u|, within the bound
    assert np.isfinite(figures["grad_by_lag"]).all()
