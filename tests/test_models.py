"""Cells and models: hand-worked values, fast path == cell loop, gradients, config."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import config
from tf_rnn.engine import steps
from tf_rnn.models import cells
from tf_rnn.toys import sequence

# Constant weights for A = 2 symbols, n = 1 node (hand-worked examples below).
U = [[1.0], [2.0]]
W1 = [[0.5], [-1.0]]  # Arch 1: (2n, n)
W2 = [[0.5], [-1.0]]  # Arch 2: (A, n)
B = [0.1, -0.2]
V = [[1.0, -1.0], [3.0, 2.0]]
C = [0.0, 0.5]


def _set(layer, **values):
    for name, value in values.items():
        getattr(layer, name).assign(np.asarray(value, dtype=np.float64))


def _arch1(dtype="float64"):
    model = models.Arch1Model(2, 1, dtype=dtype)
    _set(model.cell, U=U, W=W1, b=B, V=V, c=C)
    return model


def _arch2(dtype="float64"):
    model = models.Arch2Model(2, 1, dtype=dtype)
    _set(model.cell, U=U, W=W2, b=B, V=V, c=C)
    return model


def test_arch1_cell_by_hand():
    model = _arch1()
    # x = 'symbol 1', h_prev = [1, 0.5]: a = [2 + 0.1, (0.5 - 0.5) - 0.2] -> h = [2.1, 0]
    logits, h = model.cell(tf.constant([[0.0, 1.0]], tf.float64),
                           tf.constant([[1.0, 0.5]], tf.float64))
    np.testing.assert_allclose(h, [[2.1, 0.0]])
    np.testing.assert_allclose(logits, [[2.1, -2.1 + 0.5]])


def test_arch1_window_by_hand():
    model = _arch1()
    state = tf.constant([[1.0, 0.5]], tf.float64)
    logits, h = model(tf.constant([[1, 0]]), state)
    # step 1 as above: h1 = [2.1, 0]; step 2, x = symbol 0: a = [1 + 0.1, 2.1*0.5 - 0.2]
    np.testing.assert_allclose(h, [[1.1, 0.85]])
    np.testing.assert_allclose(logits[0, 0], [2.1, -1.6])
    np.testing.assert_allclose(logits[0, 1], [1.1 + 3 * 0.85, -1.1 + 2 * 0.85 + 0.5])


def test_arch2_cell_by_hand():
    model = _arch2()
    x, o_prev = tf.constant([[0.0, 1.0]], tf.float64), tf.constant([[0.2, 0.8]], tf.float64)
    h = model.cell.hidden(x, o_prev)
    t1, t2 = math.tanh(2.0 + 0.1), math.tanh(0.2 * 0.5 - 0.8 - 0.2)
    np.testing.assert_allclose(h, [[t1, t2]])
    np.testing.assert_allclose(model.cell.readout(h), [[t1 + 3 * t2, -t1 + 2 * t2 + 0.5]])


def test_arch2_cell_returns_logits_and_the_new_state():
    """Like every cell: (logits, new state). "sample" feeds back x once the stream has
    started (zeros before) and x is the new state; "probs" feeds back the state, and the
    new state is the softmax."""
    model = _arch2()
    x, zeros = tf.constant([[0.0, 1.0]], tf.float64), tf.zeros([1, 2], tf.float64)
    for state, fed in ((tf.constant([[1.0, 0.0]], tf.float64), x), (zeros, zeros)):
        logits, new_state = model.cell(x, state)
        np.testing.assert_allclose(logits, model.cell.readout(model.cell.hidden(x, fed)))
        np.testing.assert_array_equal(new_state, x)
    probs = cells.Arch2Cell.from_config({**model.cell.get_config(), "feedback": "probs"})
    probs.build()
    probs.set_weights(model.cell.get_weights())
    o_prev = tf.constant([[0.2, 0.8]], tf.float64)
    logits, new_state = probs(x, o_prev)
    np.testing.assert_allclose(logits, probs.readout(probs.hidden(x, o_prev)))
    np.testing.assert_allclose(new_state, tf.nn.softmax(logits))


def test_arch2_teacher_forcing_by_hand():
    """Stream start feeds zeros back; later steps feed the previous target (= input)."""
    model = _arch2()
    logits, state = model(tf.constant([[1, 0]]), model.zero_state(1))
    t = [math.tanh(2.0 + 0.1), math.tanh(0.0 - 0.2)]  # step 1: o_prev = 0
    np.testing.assert_allclose(logits[0, 0], [t[0] + 3 * t[1], -t[0] + 2 * t[1] + 0.5])
    t = [math.tanh(1.0 + 0.1), math.tanh(0.5 - 0.2)]  # step 2: o_prev = one_hot(0)
    np.testing.assert_allclose(logits[0, 1], [t[0] + 3 * t[1], -t[0] + 2 * t[1] + 0.5])
    np.testing.assert_allclose(state, [[1.0, 0.0]])
    # A continuing window feeds back what the last one ended with (its last target).
    logits2, _ = model(tf.constant([[0]]), state)
    np.testing.assert_allclose(logits2[0, 0], logits[0, 1])


# Every model, and every combine x activation of Arch 1.
VARIANTS = {
    "arch1": {}, "arch1_tanh": {"activation": "tanh"},
    "arch1_sum": {"combine": "sum"}, "arch1_sum_tanh": {"combine": "sum", "activation": "tanh"},
    "arch1_mul": {"combine": "mul"}, "arch1_mul_tanh": {"combine": "mul", "activation": "tanh"},
    "arch2": {"model": "arch2"}, "elman": {"model": "elman"},
}


def _random_model(name, alphabet=5, nodes=3, dtype="float64"):
    keras.utils.set_random_seed(7)
    cfg = config.Config(num_nodes=nodes, init="glorot", **VARIANTS[name])
    model = models.build_model(cfg, alphabet, dtype=dtype)
    for v in model.trainable_variables:  # non-zero biases too, so no relu sits on a kink
        v.assign(v + np.random.default_rng(0).normal(0, 0.3, v.shape))
    if getattr(model, "activation", None) == "relu":
        # Positive biases keep most relu units on, so paths back through time exist.
        model.cell.b.assign_add(tf.fill(model.cell.b.shape, tf.constant(0.5, model.cell.b.dtype)))
    return model


def _start_state(model, batch, name):
    if name == "arch2":
        return tf.one_hot([1] * batch, model.alphabet_size, dtype=tf.float64)
    return tf.constant(np.random.default_rng(1).uniform(0.1, 0.5, (batch, model.state_size)))


@pytest.mark.parametrize("name", VARIANTS)
def test_fast_path_equals_cell_loop(name):
    model = _random_model(name)
    ids = tf.constant(np.random.default_rng(2).integers(0, 5, (4, 9)))
    for state in (model.zero_state(4), _start_state(model, 4, name)):
        fast, fast_state = model(ids, state)
        ref, ref_state = model.call_reference(ids, state)
        np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast_state, ref_state, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_match_finite_differences(name):
    model = _random_model(name)
    rng = np.random.default_rng(3)
    ids = tf.constant(rng.integers(0, 5, (2, 6)))
    targets = tf.constant(rng.integers(0, 5, (2, 6)))
    state = _start_state(model, 2, name)
    probe = tf.constant(rng.normal(size=(2, model.state_size)))  # gradient through the state

    def loss():
        logits, new_state = model(ids, state)
        return steps.lm_loss(logits, targets) + tf.reduce_sum(probe * new_state)

    if getattr(model, "activation", None) == "relu":
        # A relu path back through time exists only where units are on: check some are.
        _, state_seen = model(ids[:, :1], state)
        assert np.mean(state_seen.numpy() > 0) > 0.3

    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, model.trainable_variables)
    eps = 1e-6
    for var, grad in zip(model.trainable_variables, grads):
        base = var.numpy()
        numeric = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            for sign in (1, -1):
                shifted = base.copy()
                shifted[index] += sign * eps
                var.assign(shifted)
                numeric[index] += sign * float(loss()) / (2 * eps)
        var.assign(base)
        analytic = np.asarray(grad)
        error = np.linalg.norm(analytic - numeric) / max(
            np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
        assert error < 1e-6, (var.name, error)


def test_seed_shapes_and_weight_counts():
    model = models.build_model(config.get_preset("text8_arch1"), 27)
    shapes = {v.name: tuple(v.shape) for v in model.trainable_variables}
    assert shapes == {"U": (27, 100), "W": (200, 100), "b": (200,), "V": (200, 27),
                      "c": (27,)}
    model2 = models.build_model(config.get_preset("text8_arch2"), 27)
    shapes2 = {v.name: tuple(v.shape) for v in model2.trainable_variables}
    assert shapes2 == {"U": (27, 50), "W": (27, 50), "b": (100,), "V": (100, 27), "c": (27,)}
    assert model.state_size == 200 and model2.state_size == 27


def test_seed_initialisation_is_mean_minus_0_1():
    """tf.truncated_normal(shape, -0.1, 0.1) in the seed: mean -0.1, stddev 0.1."""
    keras.utils.set_random_seed(0)
    model = models.build_model(config.get_preset("text8_arch1"), 27)
    w = model.cell.W.numpy()
    assert abs(w.mean() + 0.1) < 0.01
    assert w.min() >= -0.3 - 1e-6 and w.max() <= 0.1 + 1e-6  # truncated at 2 stddev
    assert 0.07 < w.std() < 0.1  # a normal truncated at 2 sigma has std 0.88 sigma
    assert np.all(model.cell.b.numpy() == 0)


def test_charrnn_initialisation():
    keras.utils.set_random_seed(0)
    model = models.build_model(config.get_preset("charrnn_adagrad"), 65)
    np.testing.assert_allclose(model.cell.W_hh.numpy(), 0.01 * np.eye(75))
    assert abs(model.cell.W_xh.numpy().std() - 0.01) < 0.001


@pytest.mark.parametrize("name", VARIANTS)
def test_get_config_round_trip(name):
    model = _random_model(name, dtype="float32")
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert [tuple(v.shape) for v in clone.trainable_variables] == \
        [tuple(v.shape) for v in model.trainable_variables]
    cell = model.cell
    cell_clone = type(cell).from_config(cell.get_config())
    assert cell_clone.get_config() == cell.get_config()


@pytest.mark.parametrize("name", ["arch1", "arch1_mul", "arch2", "elman"])
def test_get_config_round_trip_keeps_float64(name):
    """from_config(get_config()) gives the same dtype, so the same weights give the same
    outputs bit for bit (a float32 clone differs in the 8th digit)."""
    model = _random_model(name, dtype="float64")
    clone = type(model).from_config(model.get_config())
    assert clone.compute_dtype == "float64" and clone.cell.compute_dtype == "float64"
    clone.set_weights(model.get_weights())
    ids = tf.constant(np.random.default_rng(3).integers(0, 5, (2, 7)))
    np.testing.assert_array_equal(clone(ids)[0].numpy(), model(ids)[0].numpy())


def test_sequence_model_get_config_round_trip_keeps_float64():
    model = sequence.ElmanSequenceModel(2, 3, 1, "tanh", members=2, dtype="float64")
    clone = sequence.ElmanSequenceModel.from_config(model.get_config())
    assert clone.compute_dtype == "float64" and clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = tf.constant(np.random.default_rng(4).normal(size=(2, 5, 2)))
    np.testing.assert_array_equal(clone(x)[0].numpy(), model(x)[0].numpy())


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="num_nodes"):
        cells.Arch1Cell(27, 0)
    with pytest.raises(ValueError, match="feedback"):
        models.Arch2Model(27, 5, feedback="argmax")
    with pytest.raises(ValueError, match="activation"):
        cells.ElmanCell(2, 3, 1, activation="softsign")
    for bad in ("1", 1.0, True):
        with pytest.raises(ValueError, match="argument `seed`, expected an integer"):
            models.ElmanModel(27, 5, seed=bad)


def test_arch2_free_running_feedback_modes():
    model = _random_model("arch2")
    ids = tf.constant([3, 1])
    zero = model.zero_state(2)
    _, state = model.step(ids, zero)
    np.testing.assert_allclose(state, tf.one_hot(ids, 5, dtype=tf.float64))
    probs = models.Arch2Model.from_config({**model.get_config(), "feedback": "probs"})
    for a, b in zip(probs.trainable_variables, model.trainable_variables):
        a.assign(b)
    logits, state = probs.step(ids, zero)
    np.testing.assert_allclose(state, tf.nn.softmax(logits))
    # With sampled one-hot feedback, stepping equals the teacher-forced window.
    window, _ = model(tf.constant([[3, 1, 4]]), model.zero_state(1))
    state = model.zero_state(1)
    for t, i in enumerate([3, 1, 4]):
        logits, state = model.step(tf.constant([i]), state)
        np.testing.assert_allclose(logits[0], window[0, t], rtol=1e-12)


# Arch 1's other combinations (S4b sum, S4c mul), A = 2 symbols, n = 1 node.
SUM_MUL = dict(U=[[1.0], [2.0]], W=[[0.5]], b=[0.1], V=[[1.0, -1.0]], c=[0.0, 0.5])


def _arch1_combined(combine, activation):
    model = models.Arch1Model(2, 1, combine=combine, activation=activation, dtype="float64")
    _set(model.cell, **SUM_MUL)
    if combine == "mul":
        _set(model.cell, alpha=[2.0], beta1=[0.5], beta2=[1.5])
    return model


def test_arch1_sum_by_hand():
    model = _arch1_combined("sum", "tanh")
    # step 1, x = symbol 1, h = 1: a = 2 + 0.5 + 0.1; step 2, x = symbol 0: a = 1 + 0.5 h1 + 0.1
    h1 = math.tanh(2.6)
    h2 = math.tanh(1.1 + 0.5 * h1)
    logits, state = model(tf.constant([[1, 0]]), tf.constant([[1.0]], tf.float64))
    np.testing.assert_allclose(logits[0], [[h1, -h1 + 0.5], [h2, -h2 + 0.5]])
    np.testing.assert_allclose(state, [[h2]])
    assert model.state_size == 1


def test_arch1_mul_by_hand():
    model = _arch1_combined("mul", "relu")
    # a = α(xU)(hW) + β1(hW) + β2(xU) + b with α = 2, β1 = 0.5, β2 = 1.5, b = 0.1.
    # step 1, x = symbol 1 (xU = 2), h = -1 (hW = -0.5): a = -2 - 0.25 + 3 + 0.1 = 0.85
    # step 2, x = symbol 0 (xU = 1), h = 0.85 (hW = 0.425): a = 0.85 + 0.2125 + 1.5 + 0.1
    logits, state = model(tf.constant([[1, 0]]), tf.constant([[-1.0]], tf.float64))
    np.testing.assert_allclose(logits[0], [[0.85, -0.35], [2.6625, -2.1625]])
    np.testing.assert_allclose(state, [[2.6625]])
    # The cell alone, one step from the same start, gives the same first step.
    cell_logits, h = model.cell(tf.constant([[0.0, 1.0]], tf.float64),
                                tf.constant([[-1.0]], tf.float64))
    np.testing.assert_allclose(h, [[0.85]])
    np.testing.assert_allclose(cell_logits, [[0.85, -0.35]])


def test_arch1_combine_shapes_and_gates():
    shapes = {}
    for combine in ("sum", "mul"):
        cfg = config.Config(combine=combine, num_nodes=50)
        model = models.build_model(cfg, 27)
        shapes[combine] = {v.name: tuple(v.shape) for v in model.trainable_variables}
        assert model.state_size == 50
    assert shapes["sum"] == {"U": (27, 50), "W": (50, 50), "b": (50,), "V": (50, 27),
                             "c": (27,)}
    assert shapes["mul"] == {**shapes["sum"], "alpha": (50,), "beta1": (50,), "beta2": (50,)}
    cell = models.build_model(config.Config(combine="mul", num_nodes=4), 27).cell
    np.testing.assert_array_equal(cell.alpha.numpy(), np.ones(4))
    np.testing.assert_array_equal(cell.beta1.numpy(), np.full(4, 0.5))
    np.testing.assert_array_equal(cell.beta2.numpy(), np.full(4, 0.5))


@pytest.mark.parametrize("combine", ["concat", "sum", "mul"])
def test_irnn_initialisation(combine):
    """Le et al. 2015: identity recurrent matrix (times init_gain), small input weights."""
    keras.utils.set_random_seed(0)
    cfg = config.Config(combine=combine, num_nodes=20, init="irnn", init_gain=0.9)
    cell = models.build_model(cfg, 27).cell
    w = cell.W.numpy()
    # The recurrent block is the one mapping the recurrent units to themselves: all of W
    # for sum and mul, its bottom (n, n) block for concat (state = concat(q, r)).
    np.testing.assert_allclose(w[-20:], 0.9 * np.eye(20))
    if combine == "concat":
        # q -> r starts small but not zero: from r = 0, a zero block would keep every
        # recurrent relu at its kink for good (no gradient ever reaches it).
        assert 0.0005 < w[:-20].std() < 0.002
    assert 0.0005 < cell.U.numpy().std() < 0.002 and 0.0005 < cell.V.numpy().std() < 0.002


def test_arch1_invalid_combine_and_activation_are_named():
    with pytest.raises(ValueError, match="`combine`.*'product'"):
        cells.Arch1Cell(27, 5, combine="product")
    with pytest.raises(ValueError, match="`activation`.*'sigmoid'"):
        models.Arch1Model(27, 5, activation="sigmoid")
    with pytest.raises(ValueError, match="`combine`"):
        config.Config(combine="product")
    with pytest.raises(ValueError, match="`init_gain`"):
        config.Config(init_gain=0.0)


def test_older_configs_mean_concat_relu():
    """A run saved before `combine` existed: its config and model config lack the fields."""
    saved = config.Config().to_dict()
    for key in ("combine", "activation", "init_gain"):
        saved.pop(key)
    cfg = config.Config.from_dict(saved)
    assert (cfg.combine, cfg.activation, cfg.init_gain) == ("concat", "relu", 1.0)
    model_config = models.Arch1Model(27, 4).get_config()
    for key in ("combine", "activation", "init_gain"):
        model_config.pop(key)
    model = models.Arch1Model.from_config(model_config)
    assert model.combine == "concat" and model.state_size == 8
