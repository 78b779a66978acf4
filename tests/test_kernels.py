"""Tests for tf_rnn.models.kernels: the fast recurrence against the tf.scan reference."""

import numpy as np
import pytest
import tensorflow as tf
from support import assert_central_differences

from tf_rnn.models import kernels

ACTIVATIONS = kernels.ACTIVATIONS
# (T, B, n): a single step, a short window, and one longer than MAX_UNROLL so that
# the while-loop path is exercised through the public function too.
SHAPES = [(1, 3, 4), (5, 2, 4), (kernels.MAX_UNROLL + 2, 2, 3)]


def _inputs(shape, dtype, seed):
    """Random (p, h0, w, g) in `dtype`; g is an upstream gradient on every output."""
    steps, batch, n = shape
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(steps, batch, n))
    h0 = rng.normal(size=(batch, n))
    # Spectral radius below 1 keeps long windows finite for every activation.
    w = rng.normal(size=(n, n)) * 0.5 / np.sqrt(n)
    g = rng.normal(size=(steps, batch, n))
    return [tf.constant(x, dtype) for x in (p, h0, w, g)]


def _value_and_grads(fn, activation):
    """f(p, h0, w, g) -> [h (T,B,n), dp (T,B,n), dh0 (B,n), dw (n,n)] for sum(g * h)."""

    def run(p, h0, w, g):
        with tf.GradientTape() as tape:
            tape.watch([p, h0, w])
            h = fn(p, h0, w, activation)
        return [h] + tape.gradient(h, [p, h0, w], output_gradients=g)

    return run


def _assert_all_close(actual, expected, rtol, atol):
    for name, a, e in zip(["h", "dp", "dh0", "dw"], actual, expected):
        assert a.dtype == e.dtype, name
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=rtol, atol=atol, err_msg=name)


def _dynamic_signature(n):
    """Input signature of (p, h0, w, g) with T and B unknown while tracing."""
    window = tf.TensorSpec([None, None, n], tf.float64)
    state, weights = tf.TensorSpec([None, n], tf.float64), tf.TensorSpec([n, n], tf.float64)
    return [window, state, weights, window]


# Every mode sees both short shapes; the long window (the while-loop path, reached
# through the public function) is checked eagerly and traced with T unknown.
CASES = [
    (mode, shape)
    for mode, shapes in [
        ("eager", SHAPES),
        ("function", SHAPES[:2]),
        ("dynamic_t", SHAPES[1:]),
        ("xla", SHAPES[:2]),
    ]
    for shape in shapes
]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("mode,shape", CASES, ids=[f"{m}-T{s[0]}" for m, s in CASES])
def test_matches_reference_float64(mode, shape, activation):
    args = _inputs(shape, tf.float64, seed=sum(shape) + ACTIVATIONS.index(activation))
    expected = _value_and_grads(kernels.recurrence_reference, activation)(*args)
    run = _value_and_grads(kernels.recurrence, activation)
    if mode == "function":
        run = tf.function(run)
    elif mode == "dynamic_t":
        # T and B unknown while tracing: the while-loop fallback.
        run = tf.function(run, input_signature=_dynamic_signature(shape[2]))
    elif mode == "xla":
        run = tf.function(run, jit_compile=True)
    _assert_all_close(run(*args), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", ["public_dynamic_t", "unrolled"])
def test_xla_dynamic_t_and_unrolled_form(path):
    args = _inputs((5, 2, 4), tf.float64, seed=5)
    expected = _value_and_grads(kernels.recurrence_reference, "tanh")(*args)
    if path == "public_dynamic_t":
        run = tf.function(
            _value_and_grads(kernels.recurrence, "tanh"),
            jit_compile=True,
            input_signature=_dynamic_signature(4),
        )
    else:
        # Under XLA `recurrence` picks the loop form; the unrolled one must compile too.
        run = tf.function(_value_and_grads(kernels._unrolled, "tanh"), jit_compile=True)
    _assert_all_close(run(*args), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float32_forward_and_gradients(activation):
    # The Arch 1 window length, eagerly (unrolled): float32 in, float32 out.
    args = _inputs((40, 4, 6), tf.float32, seed=3)
    expected = _value_and_grads(kernels.recurrence_reference, activation)(*args)
    actual = _value_and_grads(kernels.recurrence, activation)(*args)
    _assert_all_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("path", ["unrolled", "looped"])
def test_gradients_match_central_differences(activation, path):
    p, h0, w, g = _inputs((3, 2, 2), tf.float64, seed=7)
    if activation == "relu":
        # Random inputs switch some relus off, and with seed 7 every path back through
        # time then passes an inactive unit: such a case cannot see the recurrent term
        # of the BPTT. Keep every unit on, well away from the kink at 0: p >= 1, h0 >= 0
        # and w >= 0 give pre-activations >= 1.
        p, h0, w = tf.abs(p) + 1.0, tf.abs(h0), tf.abs(w)
    run = {"unrolled": kernels._unrolled, "looped": kernels._looped}[path]
    if activation == "relu":
        h = run(p, h0, w, activation)  # (T, B, n)
        entering = tf.concat([h0[None], h[:-1]], 0)  # (T, B, n)
        pre = p + tf.einsum("tbi,ij->tbj", entering, w)
        assert np.all(pre.numpy() >= 1.0)  # every unit active: every path open
    _, *analytic = _value_and_grads(run, activation)(p, h0, w, g)

    def loss(p, h0, w):
        return float(tf.reduce_sum(g * run(p, h0, w, activation)))

    assert_central_differences(loss, [p, h0, w], analytic, ["p", "h0", "w"])


def test_relu_gradient_is_zero_where_inactive():
    # Every pre-activation negative: relu outputs 0 and no gradient may pass.
    p = -tf.ones([4, 2, 3], tf.float64)
    h0 = tf.zeros([2, 3], tf.float64)
    w = tf.ones([3, 3], tf.float64)
    g = tf.ones([4, 2, 3], tf.float64)
    h, dp, dh0, dw = _value_and_grads(kernels.recurrence, "relu")(p, h0, w, g)
    for x in (h, dp, dh0, dw):
        assert not np.any(x.numpy())


def test_variables_are_differentiated_through():
    p, h0, w, _ = _inputs((5, 2, 3), tf.float32, seed=11)
    w_var = tf.Variable(w)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(kernels.recurrence(p, h0, w_var, "tanh") ** 2)
    with tf.GradientTape() as tape_ref:
        loss_ref = tf.reduce_sum(kernels.recurrence_reference(p, h0, w_var, "tanh") ** 2)
    np.testing.assert_allclose(loss.numpy(), loss_ref.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        tape.gradient(loss, w_var).numpy(),
        tape_ref.gradient(loss_ref, w_var).numpy(),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.parametrize("fn", [kernels.recurrence, kernels.recurrence_reference])
@pytest.mark.parametrize("activation", ["softmax", "Relu", None])
def test_invalid_activation_raises(fn, activation):
    p, h0, w, _ = _inputs((2, 1, 2), tf.float32, seed=0)
    with pytest.raises(ValueError, match=f"`activation`.*{activation!r}"):
        fn(p, h0, w, activation)


def test_invalid_shapes_raise():
    p, h0, w, _ = _inputs((2, 1, 2), tf.float32, seed=0)
    with pytest.raises(ValueError, match="`p`"):
        kernels.recurrence(p[0], h0, w, "relu")
    with pytest.raises(ValueError, match="`w`"):
        kernels.recurrence(p, h0, w[0], "relu")
    with pytest.raises(ValueError, match="`p`.*at least one time step"):
        kernels.recurrence(p[:0], h0, w, "relu")
