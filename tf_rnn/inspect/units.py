"""What each hidden unit of a model does over a text: the numbers of `tf-rnn inspect`.

* Per-step hidden layers: `tf_rnn.inspect.probes.reference_unroll`, the probe protocol of
  `tf_rnn.models` (`PROBE_PROTOCOL`), one compiled window at a time with the state
  carried: `hidden_states(model, inputs)` -> (N, H), the hidden layer after each input.
  For a stacked model H is every layer's units side by side (layer l: units
  [l·n, (l+1)·n)); for Arch 1 concat, [0, n) is the input-only half q and [n, 2n) the
  recurrent half r (`recurrent_units`).
* Simple features of the text (`text_features`), each a number per character, NaN where
  it is not defined (the vowel feature on a non-letter, "since the last newline" before
  the first one).
* Units ranked by |Pearson correlation| between a unit's activation after reading
  character i and the feature at i (`correlations`, `ranking`): a linear measure, so a
  unit that tracks a feature by sign or by saturation ranks high; one that tracks it
  non-monotonically does not.
* Activity per unit and per layer with the diagnostics' definitions
  (`tf_rnn.inspect.probes.activity`: relu active h > 0, dead never; tanh saturated
  |h| > `SATURATION`, stuck always).
* The gradient-vs-lag profile of the excerpt (`tf_rnn.inspect.probes.make_measure`).
"""

import numpy as np
import tensorflow as tf

from tf_rnn.base.checks import positive_integer
from tf_rnn.inspect import probes

# Feature name -> what it is (shown in the report beside the ranking).
FEATURES = {
    "position_in_word": "1-based position of a letter in its run of letters (NaN off letters)",
    "inside_quotes": "1 inside double quotes \"...\", the quote marks included, else 0",
    "inside_brackets": "1 inside (), [] or {}, the brackets included, else 0",
    "since_space": "characters since the last space (0 at a space; NaN before the first)",
    "since_newline": "characters since the last newline (0 at one; NaN before the first)",
    "since_sentence_end": "characters since the last . ! or ? (NaN before the first)",
    "vowel": "1 for a vowel (aeiou), 0 for another letter, NaN off letters",
}
OPENING, CLOSING = "([{", ")]}"


def _since(text, marks):
    """(N,) characters since the last character in `marks` (0 on one), NaN before any."""
    out, last = np.full(len(text), np.nan), None
    for i, c in enumerate(text):
        if c in marks:
            last = i
        if last is not None:
            out[i] = i - last
    return out


def text_features(text):
    """{feature name: (N,) float64} of `FEATURES` for each character of `text`."""
    n = len(text)
    word, quotes, brackets = np.full(n, np.nan), np.zeros(n), np.zeros(n)
    vowel = np.full(n, np.nan)
    run, inside, depth = 0, False, 0
    for i, c in enumerate(text):
        run = run + 1 if c.isalpha() else 0
        if run:
            word[i] = run
            vowel[i] = 1.0 if c.lower() in "aeiou" else 0.0
        if c == '"':
            inside = not inside
            quotes[i] = 1.0  # the opening and the closing mark both count as inside
        else:
            quotes[i] = float(inside)
        depth += c in OPENING
        brackets[i] = float(depth > 0)
        depth = max(0, depth - (c in CLOSING))
    return {"position_in_word": word, "inside_quotes": quotes, "inside_brackets": brackets,
            "since_space": _since(text, " "), "since_newline": _since(text, "\n"),
            "since_sentence_end": _since(text, ".!?"), "vowel": vowel}


def hidden_states(model, inputs, state=None, window=25):
    """The hidden layer after each input, the state carried from `state` (zero).

    Args:
      model: a model with the probe protocol (ValueError else).
      inputs: (N,) int ids, or (N, I) floats for a toy task's `ElmanSequenceModel`.
      window: steps per compiled call (the graph is traced once per window length;
        the unroll's graph grows with it: 25 traces in ~1 s and runs 20 000
        characters of a 2-layer model in ~2 s, 100 takes ~4-5 s for either).

    Returns:
      hidden (N, H) float64, logits (N, O) float64 (the readout of each hidden layer:
      the prediction of the input after it), the state after the last input.
    """
    probes.check_protocol(model)
    positive_integer("window", window)
    inputs = np.asarray(inputs)
    if len(inputs) < 1:
        raise ValueError(f"Received an invalid value for argument `inputs`, expected at "
                         f"least one step, got shape {inputs.shape}.")
    state = model.zero_state(1) if state is None else state
    unroll = tf.function(lambda x, s: probes.reference_unroll(model, x, s),
                         reduce_retracing=False)
    hidden, logits = [], []
    for start in range(0, len(inputs), window):
        x = tf.convert_to_tensor(inputs[start:start + window][None])  # (1, W[, I])
        out, hs, state = unroll(x, state)
        hidden.append(hs.numpy()[:, 0].astype(np.float64))  # (W, H)
        logits.append(out.numpy()[0].astype(np.float64))  # (W, O)
    return np.concatenate(hidden), np.concatenate(logits), state


def correlations(hidden, features):
    """{feature: (H,) Pearson r of each unit with the feature} over the characters where
    the feature is defined; NaN for a unit that does not vary there, and all NaN for a
    feature that is constant (or undefined) on the text."""
    hidden = np.asarray(hidden, np.float64)
    out = {}
    for name, values in features.items():
        keep = np.isfinite(values)
        f, h = values[keep], hidden[keep]
        r = np.full(hidden.shape[1], np.nan)
        if f.size > 1 and f.std() > 0:
            hc, fc = h - h.mean(axis=0), f - f.mean()
            spread = np.sqrt((hc ** 2).sum(axis=0) * (fc ** 2).sum())
            varies = spread > 0
            r[varies] = (fc @ hc[:, varies]) / spread[varies]
        out[name] = r
    return out


def ranking(corr, top=10):
    """{feature: [(unit, r), ...]}: the `top` units of each feature by |r|, best first
    (ties: the lower unit first; units with no r left out)."""
    out = {}
    for name, r in corr.items():
        units = [u for u in np.argsort(-np.abs(np.nan_to_num(r, nan=-1.0)), kind="stable")
                 if np.isfinite(r[u])]
        out[name] = [(int(u), float(r[u])) for u in units[:top]]
    return out


def best_unit(ranks):
    """(unit, feature, r) with the largest |r| over every feature's ranking (None when no
    feature varies on the text)."""
    found = [(abs(r), -unit, unit, name, r) for name, rows in sorted(ranks.items())
             for unit, r in rows[:1]]
    if not found:
        return None
    _, _, unit, name, r = max(found)
    return unit, name, r


def layers_of(model):
    """[(name, slice of the hidden units)]: the layers of a stacked model
    (`num_layers` > 1), the input-only and recurrent halves where only part of h feeds
    back (`recurrent_units`), else all units as one."""
    size, layers = model.hidden_size, probes.layer_count(model)
    if layers > 1:
        n = size // layers
        return [(f"layer {l + 1}", slice(l * n, (l + 1) * n)) for l in range(layers)]
    part = model.recurrent_units
    if part is not None:
        return [(f"input-only [0:{part.start})", slice(0, part.start)),
                (f"recurrent [{part.start}:{part.stop})", part)]
    return [("all", slice(0, size))]


def unit_activity(hidden, activation, layers):
    """The diagnostics' activity of the text's hidden layers (N, H): {"unit_rate": (H,)
    each unit's active (relu) or saturated (tanh, sigmoid) fraction, "layers": [{"name",
    "units": [start, stop), and `probes.activity`'s two fractions}]}."""
    h = np.asarray(hidden)[:, None, :]  # (T, B=1, H)
    rows = []
    for name, part in layers:
        figures = probes.activity(h[..., part], activation)
        figures.pop("unit_rate")
        rows.append({"name": name, "units": [part.start, part.stop], **figures})
    return {"unit_rate": probes.activity(h, activation)["unit_rate"], "layers": rows}


def gradient_profile(model, inputs, targets, num_unrollings, windows=4):
    """The mean gradient-vs-lag profiles over the first `windows` windows of the text
    (one stream from the zero state, carried; `probes.make_measure`).

    Args:
      inputs: (N,) ids or (N, I) floats; targets: (N,) the ids they predict.

    Returns:
      {"grad_by_lag", "grad_by_lag_last": (T,) lists, lag 0 first; "window": T,
      "windows"}, with T = min(num_unrollings, N); None for a text of no steps.
    """
    steps = min(positive_integer("num_unrollings", num_unrollings), len(inputs))
    if steps < 1:
        return None
    count = max(1, min(windows, len(inputs) // steps))
    measure, state, each = probes.make_measure(model), model.zero_state(1), []
    for w in range(count):
        x = tf.convert_to_tensor(np.asarray(inputs)[w * steps:(w + 1) * steps][None])
        y = tf.convert_to_tensor(np.asarray(targets)[w * steps:(w + 1) * steps][None])
        each.append(measure(x, y, state))
        _, state = model(x, state)
    return {key: np.mean([e[key] for e in each], axis=0).tolist()
            for key in ("grad_by_lag", "grad_by_lag_last")} | {"window": steps,
                                                                 "windows": count}
