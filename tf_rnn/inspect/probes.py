"""Why a vanilla RNN learns or not, measured on one window without touching the update.

* Gradient flow through time: ||dL/dh_{T-k}|| for every lag k = 0..T-1 of the
  window, where L is the window's loss and h_t the hidden layer after step t (the
  whole gradient reaching h_t: from its own output and, through the recurrence, from
  every later one); and the same for the loss of the last step alone, dL_T/dh_{T-k},
  which is how far back one prediction's error reaches (vanishing or exploding).
* Unit activity over the window: for relu the fraction of (step, row, unit) values
  that are active (h > 0) and the fraction of units never active (dead); for tanh
  (sigmoid) the fraction saturated, |h| > 0.99 (h outside [0.01, 0.99]), and the
  fraction of units saturated throughout (stuck).
* The recurrent matrix: its largest singular value, and for a square one its
  spectral radius.
* The gradient norm of each weight matrix before clipping.
* For a stacked model (`num_layers` L > 1: h is the L layers' states side by side), the
  same per layer: each layer's gradient-vs-lag profile, its unit activity and its own
  recurrent block's spectrum (IndRNN's diag(u): sigma_max = spectral radius = max |u|).

How: `reference_unroll` runs the model one step at a time and adds a zero "probe" to
each step's hidden layer before it is read out or carried on, so dL/d(probe_t) =
dL/dh_t exactly. The model says how its step splits at the hidden layer, and what its
recurrent matrix and activation are: the probe protocol of `tf_rnn.models`
(`PROBE_PROTOCOL`), which every model of the package provides (and the toy tasks'
`ElmanSequenceModel`); this module never asks which class it holds. A model without
the protocol gets a ValueError naming what it lacks. The probes and the gradients are
one `tf.GradientTape` in a `tf.function` built once per model (`make_measure`).

A diverged model has non-finite weights or gradients: its figures are NaN or
infinite, which `measure_text` reports as None with a `"nonfinite"` field naming each
such figure and why. `tf_rnn.inspect.diagnostics` puts these figures in TensorBoard during
training and behind `tf-rnn diagnose`; `tf_rnn.inspect.units` reads per-unit views of them.
"""

import numpy as np
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base.errors import DataError
from tf_rnn.engine import steps as steps_lib


SATURATION = 0.99  # tanh: |h| > 0.99; sigmoid: h outside [1 - 0.99, 0.99]


def check_protocol(model):
    """ValueError unless `model` has the probe protocol of `tf_rnn.models`."""
    missing = models.missing_probe_protocol(model)
    if missing:
        raise ValueError(f"Received an invalid value for argument `model`, expected a model "
                         f"with the probe protocol of tf_rnn.models (PROBE_PROTOCOL), got "
                         f"{type(model).__name__}, which lacks {', '.join(missing)}.")


def recurrent_matrix(model):
    """The matrix through which the state feeds back, as a NumPy array.

    Arch 1 concat: W[n:] (n, n), the r -> r block; sum/mul: W (n, n); Elman: W_hh;
    the toy tasks' model: its masked block-diagonal W_hh (one block per member);
    Arch 2: W (A, n), the fed-back output's matrix (not square).
    """
    return np.asarray(model.recurrent_matrix())


def spectrum(matrix):
    """{"sigma_max": largest singular value, "spectral_radius": max |eigenvalue|
    (None for a non-square matrix)} of a 2-D array."""
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"Received an invalid value for argument `matrix`, expected a 2-D "
                         f"array, got shape {matrix.shape}.")
    square = matrix.shape[0] == matrix.shape[1]
    if not np.isfinite(matrix).all():  # a diverged model: TensorFlow's Eig would raise
        return {"sigma_max": float("nan"), "spectral_radius": float("nan") if square else None}
    # TensorFlow's own kernels, not NumPy's: beside a training TensorFlow, NumPy's BLAS
    # threads fought it for the cores (a 100 x 100 SVD took 0.6 s instead of ~1 ms).
    sigma = float(tf.linalg.svd(matrix, compute_uv=False)[0])
    radius = float(tf.reduce_max(tf.abs(tf.linalg.eigvals(matrix)))) if square else None
    return {"sigma_max": sigma, "spectral_radius": radius}


def activity(hidden, activation, recurrent=None):
    """Unit activity over a window of hidden layers.

    Args:
      hidden: (T, B, S) hidden layers (any array).
      activation: "relu" — active means h > 0; "tanh" — saturated |h| > 0.99;
        "sigmoid" — saturated h outside [0.01, 0.99].
      recurrent: optional slice of the S units that feed back; adds the same figures
        for that part under "recurrent_..." keys.

    Returns:
      relu: {"active_fraction": mean of h > 0, "dead_fraction": fraction of units
      never active, "unit_rate": (S,) each unit's active fraction}; tanh/sigmoid:
      {"saturated_fraction", "stuck_fraction": units saturated at every step and row,
      "unit_rate": (S,) each unit's saturated fraction}; with `recurrent`, the same
      figures of those units as "recurrent_..." ("recurrent_unit_rate": (R,)).
    """
    h = np.asarray(hidden)
    if h.ndim != 3:
        raise ValueError(f"Received an invalid value for argument `hidden`, expected a "
                         f"(T, B, S) array, got shape {h.shape}.")
    if activation == "relu":
        on, names = h > 0, ("active_fraction", "dead_fraction")
    elif activation == "tanh":
        on, names = np.abs(h) > SATURATION, ("saturated_fraction", "stuck_fraction")
    elif activation == "sigmoid":
        on = (h > SATURATION) | (h < 1 - SATURATION)
        names = ("saturated_fraction", "stuck_fraction")
    else:
        raise ValueError(f"Received an invalid value for argument `activation`, expected "
                         f"one of ['relu', 'tanh', 'sigmoid'], got {activation!r}.")
    rate = on.reshape(-1, on.shape[-1]).mean(axis=0)  # (S,)
    # relu: a dead unit is never on; tanh/sigmoid: a stuck unit is always saturated.
    stuck = rate == 0 if activation == "relu" else rate == 1
    out = {names[0]: float(on.mean()), names[1]: float(stuck.mean()), "unit_rate": rate}
    if recurrent is not None:
        part = activity(h[..., recurrent], activation)
        out.update({f"recurrent_{k}": v for k, v in part.items()})
    return out


def reference_unroll(model, inputs, state, probes=None):
    """The model one step at a time, with optional additive probes on the hidden layer.

    Args:
      model: a model with the probe protocol (see the module docstring).
      inputs: (B, T) int ids, or (B, T, I) floats for an `ElmanSequenceModel`.
      state: (B, state_size) the state before the window.
      probes: optional (T, B, S) tensor added to each step's hidden layer before it is
        read out and carried on (zeros: the same values; its gradient is dL/dh_t); in
        a stack, to each layer's h before the layer above reads it.

    Returns:
      logits (B, T, O), hidden layers (T, B, S), the state after the window.
    """
    check_protocol(model)
    layers = layer_count(model)
    logits, hs = [], []
    for t in range(inputs.shape[1]):
        x = inputs[:, t]
        if probes is not None and layers > 1:  # into each layer, before the one above
            h = model.hidden_step(x, state, probe=probes[t])
        else:
            h = model.hidden_step(x, state)
            h = h if probes is None else h + probes[t]
        hs.append(h)
        logits.append(model.readout(h))
        state = model.carry(h, x)
    return tf.stack(logits, axis=1), tf.stack(hs), state


def make_measure(model, loss_fn=steps_lib.lm_loss):
    """measure(inputs, targets, state) -> the diagnostics of one window (NumPy values).

    The gradients come from one compiled pass (traced once per window shape); the
    model's weights are read, never changed.

    Args:
      model: a model with the probe protocol (ValueError else).
      loss_fn: (logits, targets) -> scalar, the loss being trained (default the
        mean next-character cross-entropy).

    Returns:
      measure(inputs (B, T[, I]), targets, state (B, state_size)) -> {
        "loss": the window's loss,
        "grad_by_lag": (T,) ||dL/dh_{T-k}||, k = 0..T-1 (lag 0: the last step),
        "grad_by_lag_last": (T,) ||dL_T/dh_{T-k}||, L_T the last step's loss alone,
        "grad_ratio", "grad_ratio_last": lag T-1 over lag 0 of each,
        "grad_norms": {weight name: ||dL/dW|| before clipping},
        "sigma_max", "spectral_radius": of `recurrent_matrix(model)`,
        the `activity` figures of the window's hidden layers,
        "activation", "recurrent_units" ("all" or the recurrent slice "[n:2n)"), and
        for a stacked model "layers": [{"layer": l, "grad_by_lag", "grad_ratio",
        the layer's `activity` and `spectrum` figures}, bottom first]}.
    """
    check_protocol(model)
    activation, recurrent = model.activation, model.recurrent_units
    num_layers = layer_count(model)
    variables = model.trainable_variables
    names = weight_names(variables)

    @tf.function
    def gradients(inputs, targets, state):
        steps = inputs.shape[1]
        probes = tf.zeros([steps, tf.shape(state)[0], model.hidden_size], state.dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(probes)
            logits, hs, _ = reference_unroll(model, inputs, state, probes)
            loss = loss_fn(logits, targets)
        d_probes, *d_weights = tape.gradient(  # a weight the loss does not use: 0
            loss, [probes, *variables], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # The last step's loss alone: the same backward pass, seeded with the window
        # loss's gradient on the last step's logits only.
        last = tf.one_hot(steps - 1, steps, dtype=logits.dtype)[None, :, None]  # (1, T, 1)
        d_last = tape.gradient(logits, probes,
                               output_gradients=tape.gradient(loss, logits) * last)
        del tape
        by_step = lambda g: tf.sqrt(tf.reduce_sum(tf.square(g), axis=[1, 2]))  # (T,)
        per_layer = tf.reshape(d_probes, [steps, -1, num_layers, model.hidden_size // num_layers])
        by_layer = tf.sqrt(tf.reduce_sum(tf.square(per_layer), axis=[1, 3]))[::-1]  # (T, L)
        return (loss, by_step(d_probes)[::-1], by_step(d_last)[::-1],
                [tf.norm(g) for g in d_weights], hs, by_layer)

    def measure(inputs, targets, state):
        state = tf.convert_to_tensor(state, model.compute_dtype)
        loss, flow, flow_last, norms, hs, by_layer = gradients(
            tf.convert_to_tensor(inputs), tf.convert_to_tensor(targets), state)
        flow, flow_last = flow.numpy().astype(np.float64), flow_last.numpy().astype(np.float64)
        layers = {} if num_layers == 1 else {"layers": _layer_figures(
            model, hs.numpy(), by_layer.numpy().astype(np.float64), num_layers)}
        return {
            "loss": float(loss), "grad_by_lag": flow, "grad_by_lag_last": flow_last,
            "grad_ratio": _ratio(flow), "grad_ratio_last": _ratio(flow_last),
            "grad_norms": {name: float(g) for name, g in zip(names, norms)},
            **spectrum(recurrent_matrix(model)),
            **activity(hs.numpy(), activation, recurrent),
            "activation": activation,
            "recurrent_units": ("all" if recurrent is None
                                else f"[{recurrent.start}:{recurrent.stop})"),
            **layers,
        }

    return measure


def layer_count(model):
    """L: the model's `num_layers` (the probe protocol's one optional attribute; 1 when
    absent), checked to split its hidden layer into L equal parts."""
    num_layers = getattr(model, "num_layers", 1)
    if model.hidden_size % num_layers:
        raise ValueError(f"Received an invalid value for argument `model`, expected a "
                         f"hidden_size divisible by num_layers, got {model.hidden_size} "
                         f"and {num_layers}.")
    return num_layers


def weight_names(variables):
    """A unique name per weight: its own name ("W"), or, where two weights share one
    (each layer of a stack has its "W"), every weight's path ("layer_1/W")."""
    names = [v.name for v in variables]
    return names if len(set(names)) == len(names) else [v.path for v in variables]


def _layer_figures(model, hs, by_layer, num_layers):
    """Per layer l (bottom first): its part of the hidden layers hs (T, B, L·n), its
    profile by_layer[:, l] and its diagonal block of the recurrent matrix."""
    n = model.hidden_size // num_layers
    matrix = recurrent_matrix(model)
    rows = []
    for layer in range(num_layers):
        part = slice(layer * n, (layer + 1) * n)
        figures = activity(hs[..., part], model.activation)
        del figures["unit_rate"]  # the whole model's "unit_rate" holds every unit's
        rows.append({"layer": layer + 1, "grad_by_lag": by_layer[:, layer],
                     "grad_ratio": _ratio(by_layer[:, layer]), **figures,
                     **spectrum(matrix[part, part])})
    return rows


def _ratio(profile):
    """Lag T-1 over lag 0; NaN where that is no number (lag 0 zero or not finite, which
    a diverged model gives: dividing would warn "invalid value" and give NaN anyway)."""
    first, last = float(profile[0]), float(profile[-1])
    if not (first > 0 and np.isfinite(first) and not np.isnan(last)):
        return float("nan")
    return last / first


def measure_text(model, ids, batch_size, num_unrollings, windows=4):
    """The mean figures of `model` over the first `windows` windows of a text.

    The text is cut into `batch_size` streams, each starting from the zero state and
    carrying it across consecutive windows of `num_unrollings` characters.

    Returns:
      The figures of `make_measure`, JSON-ready: lists for the profiles, and None for
      a figure that is not finite (a diverged model), with "nonfinite" then naming each
      such figure and why ({"loss": "nan", "grad_by_lag": "nan at 40 of 40 lags"}).

    Raises:
      ValueError: the text is shorter than one window.
    """
    B, T = batch_size, num_unrollings
    if len(ids) < B * T + 1:  # each stream needs T predictions
        raise DataError(f"A text of {len(ids)} characters is shorter than one window of "
                        f"{B} streams x {T + 1} characters.")
    streams = steps_lib.scoring_streams(ids, B)  # (B, L + 1), L predictions per stream
    windows = min(windows, (streams.shape[1] - 1) // T)
    measure, state, each = make_measure(model), model.zero_state(B), []
    for w in range(windows):
        window = streams[:, w * T:(w + 1) * T + 1]
        each.append(measure(window[:, :-1], window[:, 1:], state))
        _, state = model(window[:, :-1], state)
    return {**_finite_or_none(_mean(each)), "windows": windows}


def _nonfinite_word(value):
    return "nan" if np.isnan(value) else "inf" if value > 0 else "-inf"


def _finite_or_none(figures):
    """`figures` with every non-finite number None, and "nonfinite" saying which and why
    (strict JSON has no NaN or Infinity: a diverged run's figures must still parse)."""
    out, why = {}, {}
    for key, value in figures.items():
        if key == "layers":  # each layer's figures, with its own "nonfinite"
            out[key] = [_finite_or_none(row) for row in value]
        elif isinstance(value, float) and not np.isfinite(value):
            out[key], why[key] = None, _nonfinite_word(value)
        elif isinstance(value, dict):
            out[key] = {}
            for name, v in value.items():
                finite = not isinstance(v, float) or np.isfinite(v)
                out[key][name] = v if finite else None
                if not finite:
                    why[f"{key}.{name}"] = _nonfinite_word(v)
        elif isinstance(value, list) and value and isinstance(value[0], float):
            bad = [v for v in value if not np.isfinite(v)]
            out[key] = [v if np.isfinite(v) else None for v in value]
            if bad:
                kinds = sorted({_nonfinite_word(v) for v in bad})
                why[key] = f"{'/'.join(kinds)} at {len(bad)} of {len(value)} entries"
        else:
            out[key] = value
    for key in ("sigma_max", "spectral_radius"):
        if key in why:
            why[key] += ": the recurrent matrix holds non-finite weights"
    for key, profile in (("grad_ratio", "grad_by_lag"),
                         ("grad_ratio_last", "grad_by_lag_last")):
        if key in why:
            why[key] += (f": {profile} is not finite" if profile in why
                         else f": {profile} is 0 at lag 0")
    if why:
        out["nonfinite"] = why
    return out


def _mean(each):
    """The mean over windows of every figure (profiles element-wise, each layer's
    apart); JSON-ready."""
    first, out = each[0], {}
    for key, value in first.items():
        if key == "layers":
            out[key] = [_mean([e[key][i] for e in each]) for i in range(len(value))]
        elif isinstance(value, dict):
            out[key] = {k: float(np.mean([e[key][k] for e in each])) for k in value}
        elif isinstance(value, np.ndarray):
            out[key] = np.mean([e[key] for e in each], axis=0).tolist()
        elif isinstance(value, float):
            out[key] = float(np.mean([e[key] for e in each]))
        else:
            out[key] = value
    for ratio, profile in (("grad_ratio", "grad_by_lag"), ("grad_ratio_last", "grad_by_lag_last")):
        if profile in out:
            out[ratio] = _ratio(out[profile])
    return out
