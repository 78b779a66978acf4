"""The sequential core of every recurrent model: h_t = f(p_t + g_t * (h_{t-1} @ w)).

Everything that does not depend on the previous state (input projections, biases,
and the optional element-wise gate g of multiplicative integration) is computed by
the caller for the whole window at once and passed in as `p` (and `gate`); only
this recurrence runs step by step. Without a gate (g = 1) it is the additive
recurrence of Elman networks and Arch 1; with one it serves Arch 1's `mul` combine.

The recurrent weights come in two forms, sharing every loop below (only the three
helpers `_times_w`, `_times_w_transposed` and `_weight_gradient` tell them apart):

* `recurrence`, a matrix w (n, n): the full recurrence above;
* `diagonal_recurrence`, a vector u (n,): the diagonal (element-wise) recurrence of
  IndRNN (Li et al. 2018), h_t = f(p_t + g_t * (u * h_{t-1})), where each unit feeds
  back only itself. The same loops run it with every matmul replaced by an
  element-wise product, so its sequential work is O(B·n) per step both ways:
  dL/dh_{t-1} = u * dz_t, and dL/du = sum_{t,b} h_{t-1} * dz_t is one reduction
  after the loop (dz_t = g_t * da_t).

`recurrence` (and `diagonal_recurrence`) is the fast version used by the models. Its
backward pass is written by hand (`tf.custom_gradient`) instead of being derived by
autodiff, because on a CPU the recurrence is bound by the number of small ops per time
step, not by FLOPs:

* the backward loop carries only the state gradient: per step one matmul (a multiply
  for a diagonal w), one add and one fused activation-gradient op, reading the
  derivative off the saved outputs (relu' = [h > 0], tanh' = 1 - h²,
  sigmoid' = h (1 - h)); nothing of the forward pass but its outputs is kept;
* the weight gradient, sum_t h_{t-1}^T (g_t * da_t), is one (n, T·B) × (T·B, n)
  matmul after the loop instead of T small ones inside it, dp is the loop's output as
  is, and the gate's gradient da_t * (h_{t-1} @ w) is one element-wise product of
  the loop's output with the products kept from the forward pass;
* in a plain graph (`tf.function`) or eagerly, a window of static length
  T <= MAX_UNROLL is unrolled in Python: that removes the while-loop and TensorArray
  bookkeeping of every step;
* under XLA (`jit_compile=True`), and whenever T is dynamic or long, both loops run as
  `tf.while_loop`s with the same arithmetic: XLA compiles that form in about half the
  time of the unrolled one, and the training step ran 5-25% faster with it.

`recurrence_reference` and `diagonal_recurrence_reference` are the obvious `tf.scan`
versions with autodiff gradients, kept as the specification the tests compare against.
"""

import tensorflow as tf

ACTIVATIONS = ("relu", "tanh", "sigmoid")

# Longest window that is unrolled in Python; longer or dynamic windows use a loop, so
# that graph size and tracing time stay bounded.
MAX_UNROLL = 128

# The hidden layers' non-linearities by name: the one table of the package (cells,
# models and the toy tasks' model read it here).
_FORWARD = {"relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}


def activation_fn(name):
    """The element-wise function named `name`, one of ACTIVATIONS (ValueError else)."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Received an invalid value for argument `activation`, expected one of "
            f"{list(ACTIVATIONS)}, got {name!r}."
        )
    return _FORWARD[name]


def _backprop_activation(name, h, dh):
    """Gradient through the activation, computed from its output.

    Args:
      name: one of ACTIVATIONS.
      h: (..., n) outputs act(a).
      dh: (..., n) gradient with respect to h.

    Returns:
      (..., n) gradient with respect to the pre-activation a: dh * act'(a).
    """
    # The fused *Grad ops do the derivative and the product in one op, and need only
    # the output h, so the backward pass keeps no pre-activations and has no separate
    # mask computation per step. relu(a) > 0 exactly where a > 0, so h serves as the
    # "features" of ReluGrad.
    if name == "relu":
        return tf.raw_ops.ReluGrad(gradients=dh, features=h)
    if name == "tanh":
        return tf.raw_ops.TanhGrad(y=h, dy=dh)
    return tf.raw_ops.SigmoidGrad(y=h, dy=dh)


# The two forms of the recurrent weights differ only in these three functions; the
# loops below are shared. The rank of w is static (made so by `_recurrence`); len()
# also reads it off the NumPy arrays the tests pass to the private forms.


def _times_w(h, w):
    """(B, n) recurrent term h_{t-1} @ w, or u * h_{t-1} for a diagonal (n,) w."""
    return h * w if len(w.shape) == 1 else tf.matmul(h, w)


def _times_w_transposed(dz, w):
    """(B, n) dL/dh_{t-1} from dz = dL/d(h_{t-1} @ w): dz @ w^T, or u * dz if diagonal."""
    return dz * w if len(w.shape) == 1 else tf.matmul(dz, w, transpose_b=True)


def _weight_gradient(h_prev, dz, w):
    """dL/dw over all time steps at once, after the backward loop.

    Args:
      h_prev: (T, B, n) the states h_0..h_{T-1} that entered each step.
      dz: (T, B, n) gradients with respect to the recurrent terms.
      w: (n, n) or (n,) the recurrent weights (only their rank is used).

    Returns:
      (n, n) sum_t h_{t-1}^T dz_t as one matmul, or for a diagonal w the (n,)
      sum over t and b of h_{t-1} * dz_t.
    """
    if len(w.shape) == 1:
        return tf.reduce_sum(h_prev * dz, axis=[0, 1])
    n = tf.shape(dz)[-1]
    return tf.matmul(
        tf.reshape(h_prev, [-1, n]), tf.reshape(dz, [-1, n]), transpose_a=True
    )


def _unrolled(p, h0, w, activation, gate=None):
    """Recurrence and its hand-written BPTT, both unrolled over a static T >= 1."""
    f = activation_fn(activation)

    @tf.custom_gradient
    def run(p, h0, w, *gate):
        g_steps = tf.unstack(gate[0]) if gate else None
        hs, zs = [h0], []
        for t, p_t in enumerate(tf.unstack(p)):  # one Unpack op instead of T slices
            z = _times_w(hs[-1], w)  # (B, n)
            zs.append(z)
            hs.append(f(p_t + (g_steps[t] * z if gate else z)))
        # (T + 1, B, n) h_0..h_T in one buffer: the outputs h_1..h_T and the inputs
        # h_0..h_{T-1} of the weight gradient are both slices along the first axis,
        # which TensorFlow hands out as views instead of copies.
        h_seq = tf.stack(hs)
        h_all = h_seq[1:]  # (T, B, n)

        def grad(dy):
            # dy: (T, B, n) upstream gradient on every output.
            dys = tf.unstack(dy)
            das, dzs = [None] * len(dys), [None] * len(dys)
            dh = dys[-1]
            for t in range(len(dys) - 1, -1, -1):
                da = _backprop_activation(activation, hs[t + 1], dh)  # (B, n)
                das[t] = da
                dzs[t] = g_steps[t] * da if gate else da  # dL/d(h_{t-1} @ w)
                # Gradient reaching h_{t-1}; for t = 0 this is dL/dh0 itself.
                dh_prev = _times_w_transposed(dzs[t], w)
                if t > 0:
                    dh = dys[t - 1] + dh_prev
            da_all = tf.stack(das)  # (T, B, n) = dL/dp
            dz_all = tf.stack(dzs) if gate else da_all
            grads = [da_all, dh_prev, _weight_gradient(h_seq[:-1], dz_all, w)]
            if gate:
                grads.append(da_all * tf.stack(zs))  # dL/dg
            return grads

        return h_all, grad

    return run(p, h0, w, *_listed(gate))


def _looped(p, h0, w, activation, gate=None):
    """Recurrence and its hand-written BPTT as `tf.while_loop`s, for any T >= 1."""
    f = activation_fn(activation)

    @tf.custom_gradient
    def run(p, h0, w, *gate):
        steps = tf.shape(p)[0]

        def array():
            # The static element shape keeps the (B, n) shape known after the loops.
            return tf.TensorArray(p.dtype, size=steps, element_shape=h0.shape)

        p_ta = array().unstack(p)
        g_ta = array().unstack(gate[0]) if gate else None

        def forward_step(t, h, out, z_out):
            z = _times_w(h, w)
            h = f(p_ta.read(t) + (g_ta.read(t) * z if gate else z))
            return t + 1, h, out.write(t, h), z_out.write(t, z) if gate else z_out

        _, _, out, z_out = tf.while_loop(
            lambda t, *_: t < steps,
            forward_step,
            (0, h0, array(), array()),
        )
        h_all = out.stack()  # (T, B, n)
        # Stacked here, not in `grad`: a gradient function that captured the loop's
        # TensorArray could not be saved in a SavedModel.
        z_all = z_out.stack() if gate else None  # (T, B, n) h_{t-1} @ w

        def grad(dy):
            dy_ta = array().unstack(dy)
            h_ta = array().unstack(h_all)
            # A TensorArray gives each element out once: the gate is read again here.
            gb_ta = array().unstack(gate[0]) if gate else None

            def backward_step(t, dh_next, da_out, dz_out):
                # dh_next: (B, n) gradient reaching h_t from step t + 1.
                da = _backprop_activation(activation, h_ta.read(t), dy_ta.read(t) + dh_next)
                dz = gb_ta.read(t) * da if gate else da  # dL/d(h_{t-1} @ w)
                return (t - 1, _times_w_transposed(dz, w), da_out.write(t, da),
                        dz_out.write(t, dz) if gate else dz_out)

            _, dh0, da_out, dz_out = tf.while_loop(
                lambda t, *_: t >= 0,
                backward_step,
                (steps - 1, tf.zeros_like(h0), array(), array()),
            )
            da_all = da_out.stack()  # (T, B, n) = dL/dp
            dz_all = dz_out.stack() if gate else da_all
            h_prev = tf.concat([h0[None], h_all[:-1]], 0)  # (T, B, n)
            grads = [da_all, dh0, _weight_gradient(h_prev, dz_all, w)]
            if gate:
                grads.append(da_all * z_all)  # dL/dg
            return grads

        return h_all, grad

    return run(p, h0, w, *_listed(gate))


def _listed(gate):
    """The optional gate as the tail of the custom gradient's argument list."""
    return [] if gate is None else [gate]


def _compiled_by_xla():
    """Whether the ops being built now will be compiled by XLA (`jit_compile=True`)."""
    # Only a speed choice between two correct forms rests on this private query (XLA
    # compiles the while-loop form in half the time and runs it faster than the
    # unrolled one), so if a TensorFlow release drops it, the unrolled form is used.
    try:
        from tensorflow.python.ops import control_flow_util  # private, see above

        graph = tf.compat.v1.get_default_graph()
        return bool(control_flow_util.GraphOrParentsInXlaContext(graph))
    except (ImportError, AttributeError):
        return False


def _check_rank(name, x, rank):
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a rank-{rank} "
            f"tensor, got shape {x.shape}."
        )


def recurrence(p, h0, w, activation, gate=None):
    """Runs h_t = activation(p_t + g_t * (h_{t-1} @ w)) over a time-major window.

    Differentiable with respect to p, h0, w and gate through a hand-written backward
    pass (see the module docstring). Works eagerly, in `tf.function` and under XLA
    `jit_compile`, in float32 and float64, with T static (unrolled) or dynamic (loop).

    Args:
      p: (T, B, n) input-driven pre-activations, biases included.
      h0: (B, n) state before the first step.
      w: (n, n) recurrent weights.
      activation: one of "relu", "tanh", "sigmoid".
      gate: optional (T, B, n) element-wise factor g_t of the recurrent term
        (multiplicative integration); None means g = 1, with no multiply at all.

    Returns:
      (T, B, n) the states h_1..h_T; the last one is the carried state.

    Raises:
      ValueError: if `activation` is not one of ACTIVATIONS, or a static rank or
        shape is wrong.
    """
    return _recurrence(p, h0, ("w", w, 2), activation, gate)


def diagonal_recurrence(p, h0, u, activation, gate=None):
    """Runs the IndRNN recurrence h_t = activation(p_t + g_t * (u * h_{t-1})).

    `recurrence` with a diagonal recurrent matrix diag(u), without any matmul: each
    unit feeds back only itself, so both loops do O(B·n) element-wise work per step.
    Differentiable with respect to p, h0, u and gate (hand-written backward pass),
    in every mode `recurrence` supports.

    Args:
      p: (T, B, n) input-driven pre-activations, biases included.
      h0: (B, n) state before the first step.
      u: (n,) recurrent weight of each unit on its own previous value.
      activation: one of "relu", "tanh", "sigmoid".
      gate: optional (T, B, n) element-wise factor g_t of the recurrent term;
        None means g = 1.

    Returns:
      (T, B, n) the states h_1..h_T; the last one is the carried state.

    Raises:
      ValueError: if `activation` is not one of ACTIVATIONS, or a static rank or
        shape is wrong (a `u` of shape (1,) would broadcast silently: it is refused).
    """
    return _recurrence(p, h0, ("u", u, 1), activation, gate)


def _recurrence(p, h0, weights, activation, gate):
    """Checks the arguments of either public form and picks the unrolled or loop form.

    Args:
      weights: (argument name, recurrent weights, their rank: 2 matrix, 1 diagonal).
    """
    activation_fn(activation)
    w_name, w, w_rank = weights
    # Converting here (outside the custom gradient) lets variables be passed directly:
    # their reads are recorded by the tape like any other op.
    p = tf.convert_to_tensor(p)
    h0 = tf.convert_to_tensor(h0, dtype=p.dtype)
    w = tf.convert_to_tensor(w, dtype=p.dtype)
    checks = [("p", p, 3), ("h0", h0, 2), (w_name, w, w_rank)]
    if gate is not None:
        gate = tf.convert_to_tensor(gate, dtype=p.dtype)
        checks.append(("gate", gate, 3))
    for name, x, rank in checks:
        _check_rank(name, x, rank)
    if w.shape.rank is None:
        # The kernel's two forms are told apart by the static rank of w.
        w = tf.ensure_shape(w, [None] * w_rank)
    units = p.shape[-1]
    if not w.shape.is_compatible_with([units] * w_rank):
        raise ValueError(
            f"Received an invalid value for argument `{w_name}`, expected shape "
            f"{tuple([units] * w_rank)} (the units of `p`), got shape {w.shape}."
        )
    if gate is not None and not gate.shape.is_compatible_with(p.shape):
        raise ValueError(
            f"Received an invalid value for argument `gate`, expected the shape of `p` "
            f"{p.shape}, got shape {gate.shape}."
        )
    steps = p.shape[0]
    if steps == 0:
        raise ValueError(
            f"Received an invalid value for argument `p`, expected at least one time "
            f"step, got shape {p.shape}."
        )
    if steps is not None and steps <= MAX_UNROLL and not _compiled_by_xla():
        return _unrolled(p, h0, w, activation, gate)
    return _looped(p, h0, w, activation, gate)


def recurrence_reference(p, h0, w, activation, gate=None):
    """Plain `tf.scan` version of `recurrence` with autodiff gradients, for tests.

    Args:
      p: (T, B, n) input-driven pre-activations, biases included.
      h0: (B, n) state before the first step.
      w: (n, n) recurrent weights.
      activation: one of "relu", "tanh", "sigmoid".
      gate: optional (T, B, n) factor of the recurrent term; None means 1.

    Returns:
      (T, B, n) the states h_1..h_T.

    Raises:
      ValueError: if `activation` is not one of ACTIVATIONS.
    """
    return _scan(lambda h: tf.matmul(h, w), p, h0, activation, gate)


def diagonal_recurrence_reference(p, h0, u, activation, gate=None):
    """Plain `tf.scan` version of `diagonal_recurrence` with autodiff gradients.

    Args and Returns as `recurrence_reference`, with u: (n,) in place of w.
    """
    return _scan(lambda h: u * h, p, h0, activation, gate)


def _scan(recurrent_term, p, h0, activation, gate):
    """h_t = f(p_t + g_t * recurrent_term(h_{t-1})) by `tf.scan`, one step at a time."""
    f = activation_fn(activation)
    if gate is None:
        return tf.scan(lambda h, p_t: f(p_t + recurrent_term(h)), p, initializer=h0)
    return tf.scan(lambda h, pg: f(pg[0] + pg[1] * recurrent_term(h)), (p, gate),
                   initializer=h0)
