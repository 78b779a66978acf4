"""The diagonal (IndRNN) form of the recurrence kernel, h_t = f(p_t + g_t * (u * h_{t-1})):
values worked by hand, values and every gradient against the tf.scan reference in each
mode the kernel runs in, central differences through the state, and no matmul at all."""

import numpy as np
import pytest
import tensorflow as tf

from support import assert_central_differences
from tf_rnn.models import kernels

NAMES = ["h", "dp", "dh0", "du", "dgate"]


def _inputs(shape, seed, dtype=tf.float64):
    """(p, h0, u, gate, dy); |u| < 1 with both signs, so long windows stay finite."""
    steps, batch, n = shape
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(steps, batch, n))
    h0 = rng.normal(size=(batch, n))
    u = rng.uniform(-0.95, 0.95, size=n)
    gate = rng.uniform(0.5, 1.5, size=(steps, batch, n))
    dy = rng.normal(size=(steps, batch, n))
    return [tf.constant(x, dtype) for x in (p, h0, u, gate, dy)]


def _value_and_grads(fn, activation, gated=False):
    """f(p, h0, u, gate, dy) -> [h, dp, dh0, du(, dgate)] for the loss sum(dy * h)."""

    def run(p, h0, u, gate, dy):
        with tf.GradientTape() as tape:
            tape.watch([p, h0, u, gate])
            h = fn(p, h0, u, activation, gate=gate if gated else None)
        wrt = [p, h0, u, gate] if gated else [p, h0, u]
        return [h] + tape.gradient(h, wrt, output_gradients=dy)

    return run


def test_hand_worked_values_and_gradients():
    # T = 2, B = 1, n = 2, relu, loss = sum(h_1 + h_2), so dy = 1 everywhere.
    #   h0 = [1, 2], u = [0.5, 2], p_1 = [1, 3], p_2 = [-2, 2]
    # Forward:
    #   a_1 = p_1 + u*h0 = [1 + 0.5, 3 + 4]     = [1.5, 7]     -> h_1 = [1.5, 7]
    #   a_2 = p_2 + u*h_1 = [-2 + 0.75, 2 + 14] = [-1.25, 16]  -> h_2 = [0, 16]
    # Backward (da_t = dh_t * [a_t > 0], dh_{t-1} = dy_{t-1} + u*da_t):
    #   da_2 = [1, 1] * [0, 1]            = [0, 1]
    #   dh_1 = [1, 1] + [0.5*0, 2*1]      = [1, 3]   (unit 1 is off at t=2: no u term)
    #   da_1 = [1, 3] * [1, 1]            = [1, 3]
    #   dh0  = u*da_1 = [0.5*1, 2*3]      = [0.5, 6]
    #   du   = h0*da_1 + h_1*da_2 = [1*1 + 1.5*0, 2*3 + 7*1] = [1, 13]
    #   dp   = [da_1, da_2]               = [[1, 3], [0, 1]]
    p = tf.constant([[[1.0, 3.0]], [[-2.0, 2.0]]], tf.float64)
    h0 = tf.constant([[1.0, 2.0]], tf.float64)
    u = tf.constant([0.5, 2.0], tf.float64)
    expected = {
        "h": [[[1.5, 7.0]], [[0.0, 16.0]]],
        "dp": [[[1.0, 3.0]], [[0.0, 1.0]]],
        "dh0": [[0.5, 6.0]],
        "du": [1.0, 13.0],
    }
    forms = [kernels.diagonal_recurrence, kernels._unrolled, kernels._looped,
             kernels.diagonal_recurrence_reference]
    for fn in forms:
        got = _value_and_grads(fn, "relu")(p, h0, u, tf.ones_like(p), tf.ones_like(p))
        for name, a in zip(NAMES, got):
            np.testing.assert_allclose(a.numpy(), expected[name], rtol=1e-12,
                                       err_msg=f"{fn.__name__}: {name}")


def _signature(n):
    """Input signature of (p, h0, u, gate, dy) with T and B unknown while tracing."""
    window = tf.TensorSpec([None, None, n], tf.float64)
    return [window, tf.TensorSpec([None, n], tf.float64), tf.TensorSpec([n], tf.float64),
            window, window]


MODES = ["eager", "function", "dynamic_t", "xla", "xla_dynamic_t", "long"]


@pytest.mark.parametrize("gated", [False, True], ids=["plain", "gated"])
@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
@pytest.mark.parametrize("mode", MODES)
def test_matches_reference_float64(mode, activation, gated):
    # "long" runs eagerly past MAX_UNROLL: the while-loop form through the public function.
    shape = (kernels.MAX_UNROLL + 2, 2, 3) if mode == "long" else (6, 3, 4)
    args = _inputs(shape, seed=MODES.index(mode) + 10 * gated)
    expected = _value_and_grads(kernels.diagonal_recurrence_reference, activation, gated)(
        *args)
    run = _value_and_grads(kernels.diagonal_recurrence, activation, gated)
    if mode != "eager" and mode != "long":
        run = tf.function(
            run,
            jit_compile=mode.startswith("xla"),
            input_signature=_signature(shape[2]) if "dynamic" in mode else None,
        )
    got = run(*args)
    assert len(got) == len(expected)
    for name, a, e in zip(NAMES, got, expected):
        assert a.dtype == e.dtype == tf.float64, name
        assert a.shape == e.shape, name
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_reference_is_the_cell_run_step_by_step():
    # The tf.scan reference against the IndRNN cell written out in NumPy.
    p, h0, u, _, _ = [x.numpy() for x in _inputs((5, 2, 3), seed=4)]
    h, expected = h0, []
    for p_t in p:
        h = np.tanh(p_t + u * h)
        expected.append(h)
    got = kernels.diagonal_recurrence_reference(p, h0, u, "tanh")
    np.testing.assert_allclose(got.numpy(), np.stack(expected), rtol=1e-12)


def test_float32_and_variables():
    # The float32 path, with u a variable as a model holds it.
    p, h0, u, _, _ = _inputs((40, 4, 6), seed=3, dtype=tf.float32)
    u_var = tf.Variable(u)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(kernels.diagonal_recurrence(p, h0, u_var, "tanh") ** 2)
    with tf.GradientTape() as tape_ref:
        loss_ref = tf.reduce_sum(
            kernels.diagonal_recurrence_reference(p, h0, u_var, "tanh") ** 2)
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), loss_ref.numpy(), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(loss, u_var).numpy(),
                               tape_ref.gradient(loss_ref, u_var).numpy(),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
@pytest.mark.parametrize("path", ["unrolled", "looped"])
def test_gradients_match_central_differences(activation, path):
    p, h0, _, _, dy = _inputs((4, 2, 3), seed=7)
    u = tf.constant([0.9, -0.6, 0.5], tf.float64)  # both signs, none near 0
    if activation == "relu":
        # A relu unit that is off cuts every path back through time, and then the u
        # term of the BPTT cannot show: keep every unit on, well away from the kink
        # (p >= 1, h0 >= 0, u >= 0.2 give pre-activations >= 1).
        p, h0 = tf.abs(p) + 1.0, tf.abs(h0)
        u = tf.constant([0.2, 0.5, 0.9], tf.float64)
    run = {"unrolled": kernels._unrolled, "looped": kernels._looped}[path]
    h, *analytic = _value_and_grads(run, activation)(p, h0, u, tf.ones_like(p), dy)
    entering = tf.concat([h0[None], h[:-1]], 0)  # (T, B, n) h_0..h_{T-1}
    if activation == "relu":
        assert np.all((p + u * entering).numpy() >= 1.0)  # every unit on, every path open
    # The state carries: the recurrent term is far from negligible in every unit.
    assert np.min(np.abs((u * entering).numpy()).mean(axis=(0, 1))) > 0.1

    def loss(p, h0, u):
        return float(tf.reduce_sum(dy * run(p, h0, u, activation)))

    assert_central_differences(loss, [p, h0, u], analytic, NAMES[1:4])


def test_gated_gradients_match_central_differences():
    p, h0, u, gate, dy = _inputs((3, 2, 2), seed=5)

    def loss(p, h0, u, gate):
        return float(tf.reduce_sum(dy * kernels.diagonal_recurrence(p, h0, u, "tanh", gate)))

    _, *analytic = _value_and_grads(kernels.diagonal_recurrence, "tanh", True)(
        p, h0, u, gate, dy)
    assert_central_differences(loss, [p, h0, u, gate], analytic, NAMES[1:])


def _op_types(concrete):
    """Every op type in a concrete function's graph, the bodies of its loops included."""
    graph_def = concrete.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


@pytest.mark.parametrize("dynamic", [False, True], ids=["unrolled", "looped"])
def test_no_matmul_forward_or_backward(dynamic):
    # The diagonal form's sequential work is element-wise: the traced forward and
    # backward pass (loop bodies included) hold no matrix product of any kind.
    matmuls = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"}
    p, h0, u, gate, dy = _inputs((5, 2, 3), seed=0)

    def trace(fn, w):
        run = tf.function(_value_and_grads(fn, "relu"))
        if dynamic:  # T unknown: the while-loop form
            p_spec, h0_spec, _, gate_spec, dy_spec = _signature(3)
            return run.get_concrete_function(
                p_spec, h0_spec, tf.TensorSpec(w.shape, tf.float64), gate_spec, dy_spec)
        return run.get_concrete_function(p, h0, w, gate, dy)

    assert not _op_types(trace(kernels.diagonal_recurrence, u)) & matmuls
    # The premise: the same search finds the matrix form's products, loops included.
    w = tf.eye(3, dtype=tf.float64)
    assert "MatMul" in _op_types(trace(kernels.recurrence, w))


@pytest.mark.parametrize("shape", [(1,), (4,), (3, 3)])
def test_u_shape_is_checked(shape):
    # A (1,) u would broadcast over every unit without a word: refused like the others.
    p, h0, _, _, _ = _inputs((2, 2, 3), seed=0)
    with pytest.raises(ValueError, match=r"argument `u`.*got shape \(" + str(shape[0])):
        kernels.diagonal_recurrence(p, h0, tf.ones(shape, tf.float64), "relu")


def test_invalid_activation_raises():
    p, h0, u, _, _ = _inputs((2, 1, 2), seed=0)
    with pytest.raises(ValueError, match="`activation`.*'softmax'"):
        kernels.diagonal_recurrence(p, h0, u, "softmax")
