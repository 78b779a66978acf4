"""The gated form of the recurrence kernel, h_t = f(p_t + g_t * (h_{t-1} @ w)), used by
Arch 1's multiplicative integration: values and every gradient against the tf.scan
reference and against central differences, in each form the kernel takes."""

import numpy as np
import pytest
import tensorflow as tf

from support import assert_central_differences
from tf_rnn.models import kernels


def _inputs(shape, seed, dtype=tf.float64):
    """(p, h0, w, gate, dy): positive-leaning p so that relu units stay active."""
    steps, batch, n = shape
    rng = np.random.default_rng(seed)
    p = rng.normal(1.0, 0.3, size=(steps, batch, n))
    h0 = rng.uniform(0.1, 1.0, size=(batch, n))
    w = rng.normal(size=(n, n)) * 0.5 / np.sqrt(n)
    gate = rng.uniform(0.5, 1.5, size=(steps, batch, n))
    dy = rng.normal(size=(steps, batch, n))
    return [tf.constant(x, dtype) for x in (p, h0, w, gate, dy)]


def _value_and_grads(fn, activation):
    """f(p, h0, w, gate, dy) -> [h, dp, dh0, dw, dgate] for the loss sum(dy * h)."""

    def run(p, h0, w, gate, dy):
        with tf.GradientTape() as tape:
            tape.watch([p, h0, w, gate])
            h = fn(p, h0, w, activation, gate=gate)
        return [h] + tape.gradient(h, [p, h0, w, gate], output_gradients=dy)

    return run


NAMES = ["h", "dp", "dh0", "dw", "dgate"]


@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
@pytest.mark.parametrize("mode", ["eager", "function", "dynamic_t", "xla", "long"])
def test_gated_matches_reference_float64(mode, activation):
    shape = (kernels.MAX_UNROLL + 2, 2, 3) if mode == "long" else (6, 2, 4)
    args = _inputs(shape, seed=len(mode))
    expected = _value_and_grads(kernels.recurrence_reference, activation)(*args)
    run = _value_and_grads(kernels.recurrence, activation)
    if mode == "function":
        run = tf.function(run)
    elif mode == "dynamic_t":
        window = tf.TensorSpec([None, None, shape[2]], tf.float64)
        run = tf.function(run, input_signature=[
            window, tf.TensorSpec([None, shape[2]], tf.float64),
            tf.TensorSpec([shape[2]] * 2, tf.float64), window, window])
    elif mode == "xla":
        run = tf.function(run, jit_compile=True)
    for name, a, e in zip(NAMES, run(*args), expected):
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("activation", kernels.ACTIVATIONS)
@pytest.mark.parametrize("path", ["unrolled", "looped"])
def test_gated_gradients_match_central_differences(activation, path):
    p, h0, w, gate, dy = _inputs((4, 2, 3), seed=11)
    run = {"unrolled": kernels._unrolled, "looped": kernels._looped}[path]
    h, *analytic = _value_and_grads(run, activation)(p, h0, w, gate, dy)
    if activation == "relu":
        # The recurrent path is only seen where units are on: keep (nearly) all of them on.
        assert np.mean(h.numpy() > 0) > 0.9

    def loss(p, h0, w, gate):
        return float(tf.reduce_sum(dy * run(p, h0, w, activation, gate=gate)))

    assert_central_differences(loss, [p, h0, w, gate], analytic, NAMES[1:])


def test_gate_scales_the_recurrent_term_only():
    # A gate of ones is the additive recurrence; a gate of zeros cuts the past off.
    p, h0, w, gate, _ = _inputs((5, 2, 3), seed=2)
    np.testing.assert_allclose(kernels.recurrence(p, h0, w, "tanh", gate=tf.ones_like(p)),
                               kernels.recurrence(p, h0, w, "tanh"), rtol=1e-12)
    np.testing.assert_allclose(kernels.recurrence(p, h0, w, "tanh", gate=tf.zeros_like(p)),
                               tf.tanh(p), rtol=1e-12)


def test_gate_shape_is_checked():
    p, h0, w, gate, _ = _inputs((3, 2, 3), seed=0)
    with pytest.raises(ValueError, match="`gate`"):
        kernels.recurrence(p, h0, w, "relu", gate=gate[:2])
    with pytest.raises(ValueError, match="`gate`"):
        kernels.recurrence(p, h0, w, "relu", gate=gate[0])
