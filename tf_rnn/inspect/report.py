"""`tf-rnn inspect`: one self-contained HTML page of what a model does over a text.

`render(model, ids, alphabet)` is the page of any model with the probe protocol
(`tf_rnn.models.PROBE_PROTOCOL`): the text coloured by surprisal or by a unit, each
character's probability and the model's guesses, the units ranked by how well they
track simple features of the text (`tf_rnn.inspect.units`), activity per unit and per layer,
the gradient-vs-lag profile and the excerpt's BPC. `inspect(workdir, file)` is the
command: a run's checkpoint over the first characters of a file, with its config.

The bytes depend on the inputs alone (no time, no random draw, sorted keys, fixed
rounding): the same model and text give the same file. The BPC of a character model
(ids in, no `inputs`) is `tf-rnn score`'s on the same text, by the same computation
(`tf_rnn.engine.scoring`).
"""

import base64
import dataclasses
import html
import json
import math

import numpy as np

from tf_rnn import data as data_lib
from tf_rnn.base import files
from tf_rnn.base.checks import positive_integer
from tf_rnn.base.errors import ArgumentError, DataError
from tf_rnn.data import textio
from tf_rnn.engine import scoring
from tf_rnn.inspect import diagnostics, report_page, units
from tf_rnn.run import reading

UNIT_BYTES = 2_000_000  # unit activations kept: M = min(N, UNIT_BYTES // H) characters
NONE16 = 65535


def _b64(array, dtype):
    return base64.b64encode(np.ascontiguousarray(array, dtype).tobytes()).decode("ascii")


def _r(x, digits=6):
    """A float rounded for the page (the same float always prints the same)."""
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _scores_from_logits(logits, ids, top_k):
    """`scoring.score_characters`'s result from per-step logits (N, A): row t predicts
    ids[t + 1]."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (N, A)
    n = len(ids)
    log2p, top_ids, top_p = np.full(n, np.nan), np.full((n, top_k), -1), np.zeros((n, top_k))
    log2p[1:], top_ids[1:], top_p[1:] = scoring.rank_guesses(log_probs[:-1], ids[1:], top_k)
    return {"log2p": log2p, "top_ids": top_ids, "top_p": top_p}


# Where a unit's colour turns from blue (below) to red (above), per activation: the
# middle of its range. The page's colouring and its legend both read this one value
# (`act_split` in the data), so the legend states the split the page draws.
SPLITS = {"tanh": 0.0, "sigmoid": 0.5, "relu": 0.0}


def colour_scale(activation, hidden):
    """(lo, split, hi) of a unit's colours: the page draws a value blue below `split`,
    red above it, white at it and deepest at `lo` and `hi` (a value's bytes are packed
    over [lo, hi]). tanh: [-1, 1] split at 0; sigmoid: [0, 1] split at 0.5; relu: [0, the
    largest value of `hidden`] split at 0 (white to red: never below)."""
    if activation not in SPLITS:
        raise ValueError(f"Received an invalid value for argument `activation`, expected "
                         f"one of {sorted(SPLITS)}, got {activation!r}.")
    if activation == "tanh":
        return -1.0, SPLITS[activation], 1.0
    if activation == "sigmoid":
        return 0.0, SPLITS[activation], 1.0
    top = float(hidden.max()) if hidden.size else 0.0
    return 0.0, SPLITS[activation], _r(top, 4) if top > 0 else 1.0


def unit_values(hidden, activation):
    """The page's unit values of hidden layers (N, H): the first M = min(N, UNIT_BYTES
    // H) characters' values of each unit quantised to 255 steps of `act_range`, packed
    unit-major, and the colour split `act_split` (`colour_scale`)."""
    H = hidden.shape[1]
    M = min(len(hidden), max(1, UNIT_BYTES // H))
    lo, split, hi = colour_scale(activation, hidden[:M])
    quantised = np.clip(np.rint((hidden[:M] - lo) / (hi - lo) * 255), 0, 255).T  # (H, M)
    return {"unit_chars": M, "act": _b64(quantised, "u1"), "act_range": [lo, hi],
            "act_split": split}


def collect(model, ids, alphabet, inputs=None, num_unrollings=40, top_k=5):
    """The numbers of a report (JSON-ready, rounded), computed once; `render` draws them.

    Args:
      model: a model with the probe protocol whose readout is over `alphabet` (a toy
        task's `ElmanSequenceModel`: one member, `model.member(k)`).
      ids: (N,) the text's ids, N >= 2. alphabet: the characters, by id.
      inputs: optional (N, I) floats the model reads instead of the ids (a toy model's
        one-hot symbols); the probabilities then come from its readout step by step.
      num_unrollings: the gradient profile's window.
    """
    ids = np.asarray(ids, np.int64)
    if ids.ndim != 1 or len(ids) < 2:
        raise DataError(f"Cannot inspect a text of {ids.size} character(s); need >= 2.")
    k = min(positive_integer("top_k", top_k), len(alphabet))  # "helo" has 4 guesses
    text = "".join(alphabet[i] for i in ids)
    steps_in = ids.astype(np.int32) if inputs is None else np.asarray(inputs, np.float32)
    hidden, logits, _ = units.hidden_states(model, steps_in)
    if logits.shape[1] != len(alphabet):
        raise ValueError(f"Received an invalid value for argument `model`, expected a "
                         f"readout over the {len(alphabet)} characters of `alphabet`, got "
                         f"{logits.shape[1]} outputs (a toy model: one member).")
    if inputs is None:  # `tf-rnn score`'s own computation: its BPC, to the last bit
        scores = scoring.score_characters(scoring.window_scorer(model), ids.astype(np.int32),
                                          model.zero_state(1), k)
    else:
        scores = _scores_from_logits(logits, ids, k)
    bits = -scores["log2p"]
    return {
        **_characters(text, alphabet, scores, k), **_units(model, hidden, text),
        "bpc": float(bits[1:].mean()), "chars": len(ids) - 1,
        "profile": _rounded_profile(units.gradient_profile(
            model, steps_in[:-1], ids[1:], num_unrollings)),
    }


def _characters(text, alphabet, scores, k):
    """The per-character part of the figures: the text, surprisal, guesses (packed)."""
    # One byte an id where the alphabet allows (255: none), else two (65535: none).
    none, id_type = (255, "u1") if len(alphabet) < 255 else (NONE16, "<u2")
    return {
        "text": text, "n": len(text), "alphabet": list(alphabet), "top_k": k,
        "bits": _b64(-scores["log2p"], "<f4"),
        "bits_max": _r(max(1.0, math.log2(len(alphabet))), 4),
        "top_ids": _b64(np.where(scores["top_ids"] >= 0, scores["top_ids"], none), id_type),
        "top_ids_none": none,
        "top_p": _b64(np.rint(np.asarray(scores["top_p"]) * NONE16), "<u2"),
    }


def _units(model, hidden, text):
    """The per-unit part: values (packed), the ranking, activity per unit and layer."""
    corr = units.correlations(hidden, units.text_features(text))
    ranks = units.ranking(corr)
    layers = units.layers_of(model)
    activity = units.unit_activity(hidden, model.activation, layers)
    best = units.best_unit(ranks)
    H = hidden.shape[1]
    per_unit = []  # each unit's best feature and r
    for u in range(H):
        found = [(abs(r[u]), name, r[u]) for name, r in sorted(corr.items())
                 if np.isfinite(r[u])]
        per_unit.append(None if not found else [max(found)[1], _r(max(found)[2], 4)])
    return {
        "units": H, **unit_values(hidden, model.activation), "activation": model.activation,
        "rate_name": "active" if model.activation == "relu" else "saturated",
        "unit_rate": [_r(x, 4) for x in activity["unit_rate"]],
        "unit_layer": [next(name for name, part in layers if part.start <= u < part.stop)
                       for u in range(H)],
        "unit_best": per_unit,
        "layers": [{key: (_r(v, 4) if isinstance(v, float) else v) for key, v in row.items()}
                   for row in activity["layers"]],
        "ranking": {name: [[u, _r(r, 4)] for u, r in rows] for name, rows in ranks.items()},
        "features": units.FEATURES,
        "constant": sorted(name for name, rows in ranks.items() if not rows),
        "default_unit": best[0] if best else 0,
        "best": None if best is None else {"unit": best[0], "feature": best[1],
                                           "r": _r(best[2], 4)},
    }


def _rounded_profile(profile):
    if profile is None:
        return None
    return {**profile, **{key: [float(f"{v:.4e}") if math.isfinite(v) else None
                                for v in profile[key]]
                          for key in ("grad_by_lag", "grad_by_lag_last")}}


def profile_svg(profile, width=520, height=220):
    """An inline SVG of the two gradient-vs-lag profiles on a log10 scale."""
    if profile is None:
        return "<p>no profile: the text has no step</p>"
    lines, pad = [], 44
    values = [v for key in ("grad_by_lag", "grad_by_lag_last") for v in profile[key]
              if v is not None and v > 0]
    if not values:
        return "<p>every gradient is zero (or not finite) on this excerpt</p>"
    top, bottom = math.ceil(math.log10(max(values))), math.floor(math.log10(min(values)))
    bottom = min(bottom, top - 1)
    steps = profile["window"]
    x = lambda k: pad + (width - 2 * pad) * (k / max(1, steps - 1))  # noqa: E731
    y = lambda v: pad / 2 + (height - 1.5 * pad) * (top - math.log10(v)) / (top - bottom)  # noqa
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="profile" width="{width}" '
           f'height="{height}" font-size="11">']
    for decade in range(bottom, top + 1):
        out.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y(10.0 ** decade):.2f}" '
                   f'y2="{y(10.0 ** decade):.2f}" stroke="#ddd"/><text x="2" '
                   f'y="{y(10.0 ** decade) + 4:.2f}">1e{decade}</text>')
    for k in diagnostics.table_lags(steps):
        out.append(f'<text x="{x(k) - 4:.2f}" y="{height - 6}">{k}</text>')
    for key, colour in (("grad_by_lag", "#c22"), ("grad_by_lag_last", "#25c")):
        points = " ".join(f"{x(k):.2f},{y(v):.2f}" for k, v in enumerate(profile[key])
                          if v is not None and v > 0)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                   f'points="{points}" data-key="{key}"/>')
        lines.append(f'<span style="color:{colour}">{key}</span>')
    out.append("</svg>")
    return ("".join(out) + '<p class="note">||dL/dh_(T-k)|| by lag k (red: the window\'s '
            'loss; blue: its last step\'s alone), mean over ' + str(profile["windows"]) +
            f" window(s) of {steps} steps from the start of the excerpt: " +
            ", ".join(lines) + "</p>")


def _json_for_script(value):
    """JSON that cannot end its <script> element: <, > and & as \\u escapes."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table(head, rows, id_):
    """A static HTML table, every cell escaped."""
    def cells(tag, row):
        return "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in row)
    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f'<table id="{id_}"><tr>{cells("th", head)}</tr>{body}</table>'


def render(model, ids, alphabet, *, inputs=None, about=None, num_unrollings=40, top_k=5,
           title="tf-rnn inspect"):
    """The report page (str) of `model` over the text `ids`; `collect` says what the
    arguments are. `about`: {label: JSON-ready value} shown under "Run" (the config,
    the checkpoint). Returns (html, figures): figures are `collect`'s numbers."""
    figures = collect(model, ids, alphabet, inputs, num_unrollings, top_k)
    return page(figures, about or {}, title), figures


def page(figures, about, title):
    """The HTML text of `collect`'s figures."""
    names = sorted(k for k in figures["layers"][0] if k.endswith("_fraction"))
    layers = _table(["layer", "units", *names],
                    [[row["name"], f'[{row["units"][0]}, {row["units"][1]})',
                      *(f"{row[k]:.4f}" for k in names)] for row in figures["layers"]],
                    "layers")
    best = figures["best"]
    summary = (f'<b>{figures["chars"]}</b> characters scored: <b id="bpc">'
               f'{figures["bpc"]:.4f}</b> bits per character; {figures["units"]} '
               f'{figures["activation"]} units.')
    if best:
        summary += (f' Best unit: <b>{best["unit"]}</b>, r = {best["r"]:+.3f} with '
                    f'{best["feature"]} (<a href="#unit={best["unit"]}">show it</a>).')
    note = ("r: Pearson correlation between a unit's activation after reading a "
            "character and the feature at that character, over the characters where "
            "the feature is defined; the 10 units of largest |r| per feature.")
    if figures["constant"]:
        note += " Constant on this text (no ranking): " + ", ".join(figures["constant"]) + "."
    rows = [[k, json.dumps(v, sort_keys=True)] for k, v in sorted(about.items())]
    return report_page.PAGE.format(
        title=html.escape(title), style=report_page.STYLE, summary=summary,
        max_unit=figures["units"] - 1, ranking_note=html.escape(note), layers=layers,
        profile=profile_svg(figures["profile"]), about=_table(["", ""], rows, "about"),
        data=_json_for_script(figures), script=report_page.SCRIPT)


def inspect(workdir, file, out, chars=2000, checkpoint="latest"):
    """`tf-rnn inspect`: writes the report of a run's checkpoint over the first `chars`
    characters of `file` (normalised and encoded as `tf-rnn score` reads it) to `out`.

    Returns:
      {"out", "bytes", "bpc" (`tf-rnn score`'s on the same text), "chars" scored,
      "text_chars", "units", "best" (the ranking's best unit, feature and r), and the
      checkpoint: "checkpoint", "step", "which", "best_valid_bpc"}.
    """
    chars = positive_integer("chars", chars, error=ArgumentError)
    files.require_parent(out, "--out")  # before the work, not after it
    loaded = reading.load_model(workdir, checkpoint)
    model, vocab, config = loaded
    text = textio.load_text(file)
    text = data_lib.normalize_text8(text) if config.normalize else text
    ids = vocab.encode(text, unknown=config.unknown)[:chars]
    about = {"config": dataclasses.asdict(config), "checkpoint": loaded.checkpoint,
             "file": str(file), "characters": int(len(ids))}
    body, figures = render(model, ids, list(vocab.chars), about=about,
                           num_unrollings=config.num_unrollings,
                           title=f"tf-rnn inspect: {loaded.checkpoint['checkpoint']}")
    payload = body.encode("utf-8")
    files.atomic_write(out, payload)
    return {"out": str(out), "bytes": len(payload), "bpc": figures["bpc"],
            "chars": figures["chars"], "text_chars": figures["n"],
            "units": figures["units"], "best": figures["best"], **loaded.checkpoint}
