"""Stacked Elman and Arch 1 (sum, mul) models (`num_layers`, `residual`): one layer is
the unstacked model to the bit, the fast path against the cell loop, the state carried
across windows, gradients through it, serialisation, the config's refusals, and one
tiny run through the CLI."""

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from support import (assert_export_scores_as_eval, assert_variable_gradients, run_cli,
                     tiny)

from tf_rnn import models
from tf_rnn.base import config as config_lib

# (name, Config fields): the stackable models.
VARIANTS = {"elman": dict(model="elman"), "arch1_sum": dict(combine="sum"),
            "arch1_mul": dict(combine="mul")}


def _model(variant, layers=2, residual=False, A=5, n=4, seed=0):
    """A float64 model with its weights moved off their start (gates and biases too),
    so that every term of every layer matters."""
    keras.utils.set_random_seed(seed)
    config = config_lib.Config(num_nodes=n, init="glorot", num_layers=layers,
                               residual=residual, **VARIANTS[variant])
    model = models.build_model(config, A, dtype="float64")
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(v + rng.normal(0, 0.3, v.shape))
    return model


def _ids(B=3, T=7, A=5, seed=1):
    return tf.constant(np.random.default_rng(seed).integers(0, A, (B, T)), tf.int32)


# Computed with the code before stacking existed (commit 698bb1c): build_model after
# keras.utils.set_random_seed(3), Config(num_nodes=6, init="glorot", ...), A = 5:
# the SHA-256 of the weights' bytes in order, and the last step's logits from a 0.25 state.
BEFORE_STACKING = {
    "elman": ("e2c10a07329b498c16559ed73598d543290036f4392114383925524311a4560e",
              [[0.269142, 0.16707, -0.09166, 0.574195, 0.058661],
               [0.424117, -0.19037, -0.347209, 0.133116, 0.864838]]),
    "arch1_sum": ("e2c10a07329b498c16559ed73598d543290036f4392114383925524311a4560e",
                  [[-0.026768, 0.023869, 0.073151, 0.642755, -0.078716],
                   [0.197811, -0.402846, 0.060652, -0.043171, 0.592439]]),
    "arch1_mul": ("bebc3eab91360db55c4e1216e8bf7d69b988462630053960a5b35ace2b33109e",
                  [[0.00269, 0.082635, 0.056785, 0.535513, -0.130508],
                   [0.247032, -0.095677, -0.172642, 0.079096, 0.41896]]),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_layer_is_the_model_before_stacking(variant):
    fields = dict(VARIANTS[variant], activation="tanh") if variant == "arch1_mul" else \
        VARIANTS[variant]
    keras.utils.set_random_seed(3)
    model = models.build_model(config_lib.Config(num_nodes=6, init="glorot", **fields), 5)
    digest = hashlib.sha256(b"".join(w.numpy().tobytes() for w in model.weights))
    want_digest, want_logits = BEFORE_STACKING[variant]
    assert digest.hexdigest() == want_digest  # the same weights, no new ones
    logits, state = model(tf.constant([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]),
                          tf.fill([2, 6], 0.25))
    np.testing.assert_allclose(logits[:, -1], want_logits, atol=2e-6)
    assert state.shape == (2, 6)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_path_is_the_cell_by_cell_loop(variant, residual):
    model = _model(variant, layers=2, residual=residual)
    ids = _ids()
    s0 = tf.constant(np.random.default_rng(2).uniform(-0.5, 0.5, (3, 8)))
    logits, state = model(ids, s0)
    want_logits, want_state = model.call_reference(ids, s0)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state, want_state, rtol=1e-10, atol=1e-12)
    assert state.shape == (3, 8) and model.state_size == 8
    # The premise: layer 2 reaches the logits (the output layer reads the top layer).
    layer_1 = models.build_model(config_lib.Config(
        num_nodes=4, init="glorot", **VARIANTS[variant]), 5, dtype="float64")
    for mine, theirs in zip(layer_1.weights, model.cell.weights):
        mine.assign(theirs)
    assert np.abs(layer_1(ids, s0[:, :4])[0] - logits).max() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_carried_across_two_windows_is_one_long_window(variant):
    model = _model(variant, layers=3, residual=True)
    ids = _ids(T=10)
    s0 = tf.constant(np.random.default_rng(3).uniform(-0.5, 0.5, (3, 12)))
    long_logits, long_state = model(ids, s0)
    first, s1 = model(ids[:, :4], s0)
    second, s2 = model(ids[:, 4:], s1)
    np.testing.assert_allclose(tf.concat([first, second], 1), long_logits, rtol=1e-12)
    np.testing.assert_allclose(s2, long_state, rtol=1e-12)
    fresh, _ = model(ids[:, 4:], tf.zeros_like(s1))  # the carried state matters
    assert np.abs(fresh - second).max() > 1e-3


def test_gradients_through_the_carried_state_match_central_differences():
    """d(loss of window 2)/d(weights, start state), window 2 starting from window 1's
    state: through both layers' recurrences, the gates and the residual path."""
    model = _model("arch1_mul", layers=2, residual=True, n=3)
    ids = _ids(B=2, T=6)
    mix = tf.constant(np.random.default_rng(7).normal(size=(2, 3, 5)))
    s0 = tf.Variable(np.random.default_rng(8).uniform(-0.5, 0.5, (2, 6)))

    @tf.function  # one trace, then each of the ~200 evaluations a graph run
    def loss():
        _, s1 = model(ids[:, :3], s0)
        logits, s2 = model(ids[:, 3:], s1)
        return tf.reduce_sum(logits * mix) + tf.reduce_sum(tf.sin(s2))

    assert_variable_gradients(loss, [s0, *model.trainable_variables])


@pytest.mark.parametrize("variant", VARIANTS)
def test_get_config_round_trip(variant):
    model = _model(variant, layers=2, residual=True)
    config = model.get_config()
    assert config["num_layers"] == 2 and config["residual"] is True
    clone = type(model).from_config(config)
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]
    for mine, theirs in zip(clone.weights, model.weights):
        mine.assign(theirs)
    ids = _ids()
    np.testing.assert_allclose(clone(ids)[0], model(ids)[0], rtol=1e-12)


def test_recurrent_matrix_is_every_layers_w_block_diagonal():
    model = _model("elman", layers=2)
    m = model.recurrent_matrix().numpy()
    np.testing.assert_array_equal(m[:4, :4], model.cell.W_hh.numpy())
    np.testing.assert_array_equal(m[4:, 4:], model.layer_1.W.numpy())
    assert not m[:4, 4:].any() and not m[4:, :4].any()


def test_dropout_spares_layer_1_and_masks_each_connection():
    keras.utils.set_random_seed(0)
    model = models.build_model(config_lib.Config(
        model="elman", num_nodes=4, init="glorot", num_layers=2, dropout=0.5), 5,
        dtype="float64")
    ids, s0 = _ids(), tf.zeros([3, 8], tf.float64)
    plain, plain_state = model(ids, s0)
    dropped, dropped_state = model(ids, s0, dropout_seed=tf.constant([0, 7], tf.int64))
    assert np.abs(dropped - plain).max() > 1e-3
    # Layer 1 reads no dropped connection (the recurrence is never dropped).
    np.testing.assert_allclose(dropped_state[:, :4], plain_state[:, :4], rtol=1e-12)
    assert np.abs(dropped_state[:, 4:] - plain_state[:, 4:]).max() > 1e-6


def test_config_refuses_what_cannot_stack():
    with pytest.raises(ValueError, match=r"num_layers=2 for model='arch1' with "
                       r"combine='concat', which does not stack: concat's recurrence reads "
                       r"its own layer's \[x·U, h·W\].*use combine 'sum' or 'mul'"):
        config_lib.Config(num_layers=2)
    with pytest.raises(ValueError, match=r"num_layers=3 for model='arch2', which does not "
                       r"stack: Arch 2 feeds back its output"):
        config_lib.Config(model="arch2", num_layers=3)
    with pytest.raises(ValueError, match="which does not stack"):
        models.Arch1Model(5, 4, num_layers=2)
    for fields in VARIANTS.values():
        assert config_lib.Config(num_layers=2, residual=True, **fields).num_layers == 2


@pytest.mark.slow
def test_cli_train_eval_export_score(tmp_path, capsys, corpus):
    workdir = tmp_path / "run"
    flags = ["--data", str(corpus), "--workdir", str(workdir), *tiny(
        model="arch1", combine="mul", num_layers=2, residual=True, num_nodes=16,
        init="glorot", optimizer="adam", learning_rate=0.01, dropout=0.1)]
    code, trained, err = run_cli(capsys, "train", "--steps", "3", *flags)
    assert code == 0 and trained["step"] == 3, err
    code, exported, err = run_cli(capsys, "export", "--workdir", str(workdir))
    assert code == 0 and exported["state_size"] == 32, err
    assert_export_scores_as_eval(capsys, workdir, exported["export_dir"],
                                 corpus.read_text(encoding="utf-8")[:300], tmp_path)
