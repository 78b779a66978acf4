"""Diagnostics of stacked models, per layer: each layer's gradient-vs-lag profile counts
every path from its h to the loss (up the stack within a step, and along its own
recurrence), its activity and its own recurrent block's spectrum; every weight keeps its
own name in the figures and in TensorBoard."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.engine import summaries
from tf_rnn.inspect import diagnostics, probes
from tf_rnn.models.indrnn import IndRNNModel

A, N, B, T = 5, 3, 2, 6
STACKS = {
    "indrnn": dict(model="indrnn", residual=True),
    "arch1_mul": dict(model="arch1", combine="mul", activation="tanh", init="glorot"),
    "arch1_sum": dict(model="arch1", combine="sum", activation="relu", init="glorot"),
    "elman": dict(model="elman", init="glorot"),
}


def _stack(name, layers=2):
    keras.utils.set_random_seed(3)
    cfg = config_lib.Config(num_nodes=N, num_layers=layers, **STACKS[name])
    return models.build_model(cfg, A, dtype="float64")


def _window(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, A, (B, T + 1))
    return ids[:, :-1], ids[:, 1:]


def _measure(model, seed=0):
    inputs, targets = _window(seed)
    state = np.random.default_rng(seed + 1).uniform(0, 0.5, (B, model.state_size))
    return probes.make_measure(model)(inputs, targets, state), (inputs, targets, state)


def test_each_layers_profile_is_the_gradient_on_its_h_by_a_hand_written_stack():
    """A 2-layer residual IndRNN written out in the test with a perturbation e added to
    each layer's h where it is formed: ||dL/de^l_t|| is layer l's profile."""
    model = IndRNNModel(A, N, num_layers=2, residual=True, dtype="float64")
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:  # off relu's kink, and every path alive
        v.assign(rng.uniform(0.05, 0.9, v.shape))
    figures, (inputs, targets, state) = _measure(model)
    cells = model.layer_cells
    e = tf.zeros([2, T, B, N], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(e)
        hs = list(tf.split(tf.constant(state), 2, axis=-1))
        losses = []
        for t in range(T):
            o = tf.one_hot(inputs[:, t], A, dtype=tf.float64)
            for layer, cell in enumerate(cells):
                hs[layer] = tf.nn.relu(o @ cell.W + cell.b + cell.u * hs[layer]) + e[layer, t]
                o = hs[layer] + o if layer > 0 else hs[layer]
            losses.append(tf.nn.sparse_softmax_cross_entropy_with_logits(
                targets[:, t], o @ model.V + model.c))
        loss = tf.reduce_mean(tf.stack(losses))
    grads = tape.gradient(loss, e).numpy()  # (L, T, B, n)
    expected = np.sqrt((grads ** 2).sum(axis=(2, 3)))[:, ::-1]  # (L, T), lag 0 first
    assert expected[0, 0] > 1e-3  # the path up the stack at the last step is there
    for layer in range(2):
        np.testing.assert_allclose(figures["layers"][layer]["grad_by_lag"], expected[layer],
                                   rtol=1e-10)
    np.testing.assert_allclose(figures["grad_by_lag"], np.sqrt((expected ** 2).sum(0)),
                               rtol=1e-10)


@pytest.mark.parametrize("name", sorted(STACKS))
def test_layers_split_the_whole_models_figures(name):
    model = _stack(name)
    figures, _ = _measure(model)
    rows = figures["layers"]
    assert [row["layer"] for row in rows] == [1, 2]
    # the layers' squared profiles add up to the whole hidden layer's
    np.testing.assert_allclose(sum(np.square(r["grad_by_lag"]) for r in rows),
                               np.square(figures["grad_by_lag"]), rtol=1e-9)
    assert all(r["grad_by_lag"][0] > 0 for r in rows)  # lag 0 reaches layer 1 too
    matrix = np.asarray(model.recurrent_matrix())
    for row, part in zip(rows, (slice(0, N), slice(N, 2 * N))):
        assert row["sigma_max"] == pytest.approx(np.linalg.svd(matrix[part, part])[1][0])
        fractions = probes.activity(figures_hidden(model)[..., part], model.activation)
        key = "active_fraction" if model.activation == "relu" else "saturated_fraction"
        assert row[key] == pytest.approx(fractions[key])
    # one norm per weight: a stack's layers keep their own U, W, b apart
    assert len(figures["grad_norms"]) == len(model.trainable_variables)


def figures_hidden(model, seed=0):
    """The hidden layers (T, B, L·n) the measurement saw (the same window and state)."""
    inputs, _ = _window(seed)
    state = np.random.default_rng(seed + 1).uniform(0, 0.5, (B, model.state_size))
    _, hs, _ = probes.reference_unroll(model, tf.constant(inputs), tf.constant(state))
    return hs.numpy()


def test_indrnn_layers_spectrum_is_the_largest_abs_u():
    model = _stack("indrnn")
    rows = _measure(model)[0]["layers"]
    for row, cell in zip(rows, model.layer_cells):
        top = float(np.max(np.abs(cell.u.numpy())))
        assert row["sigma_max"] == pytest.approx(top)
        assert row["spectral_radius"] == pytest.approx(top)


def test_one_layer_has_no_layer_rows_and_keeps_its_weight_names():
    model = _stack("arch1_mul", layers=1)
    figures, _ = _measure(model)
    assert "layers" not in figures
    assert list(figures["grad_norms"]) == [v.name for v in model.trainable_variables]


def test_summaries_and_table_show_each_layer():
    model = _stack("indrnn")
    figures = probes.measure_text(model, np.random.default_rng(0).integers(0, A, 400),
                                       B, T, windows=2)
    pending = summaries.PendingSummaries()
    diagnostics.write(pending, figures, model, step=1)
    tags = {tag for _, tag, _, _ in pending._items}
    assert {"diag/layer_1/grad_by_lag", "diag/layer_2/grad_ratio",
            "diag/layer_2/dead_fraction", "diag/layer_1/sigma_max"} <= tags
    weights = sorted(t for t in tags if t.startswith("weights/"))
    assert len(weights) == len(model.trainable_variables)  # none overwrote another
    assert all(summaries.describe(t) for t in tags if t.startswith("diag/layer_"))
    lines = diagnostics.table(figures)
    assert [line.split(":")[0] for line in lines if line.startswith("layer ")] == \
        ["layer 1", "layer 2"]
    assert [row["layer"] for row in figures["layers"]] == [1, 2]  # the mean keeps them
