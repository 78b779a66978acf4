"""Per-character scores of a text under a model: `tf-rnn score`.

Every character after the first is scored given all the characters before it, with
the model's state carried through the text from the zero state: one stream, as
`tf-rnn eval --batch-size 1` scores a text (`steps.evaluate`) and as an export's
`score` does, so the mean of the bits here is their BPC. For each character: its
log2-probability and the model's `top_k` guesses for that position.
"""

import math

import numpy as np
import tensorflow as tf

from tf_rnn import data as data_lib
from tf_rnn.base.errors import DataError

LN2 = math.log(2.0)


def window_scorer(model):
    """A compiled f(ids (1, W) int32, state) -> (log-softmax (1, W, A) float32, state)
    of a Keras character model (any W: the time dimension is dynamic)."""
    @tf.function(reduce_retracing=True)
    def scorer(ids, state):
        logits, state = model(ids, state)
        return tf.nn.log_softmax(tf.cast(logits, tf.float32)), state
    return scorer


def export_scorer(loaded):
    """The same function over a SavedModel export's `step` signature (one character a
    call: it needs nothing but the export)."""
    def scorer(ids, state):
        rows = []
        for i in np.asarray(ids)[0]:
            out = loaded.step(ids=tf.constant([i], tf.int32), state=state)
            state = out["state"]
            rows.append(tf.nn.log_softmax(tf.cast(out["logits"], tf.float32))[0])
        return tf.stack(rows)[None], state
    return scorer


def score_characters(scorer, ids, zero_state, top_k=5, window=100):
    """The per-character scores of `ids` (N,) under `scorer` (`window_scorer`).

    Returns:
      {"log2p": (N,) float64, NaN for the first character (nothing before it),
       "top_ids": (N, k) the model's k likeliest characters at each position, best
       first (row 0: -1, no guess), "top_p": (N, k) their probabilities,
       "state": the state after the last character}.
    """
    ids = np.asarray(ids, np.int32)
    if ids.ndim != 1 or len(ids) < 2:
        raise DataError(f"Cannot score a text of {ids.size} character(s); need >= 2.")
    n = len(ids)
    log2p = np.full(n, np.nan)
    top_ids = np.full((n, top_k), -1, np.int64)
    top_p = np.zeros((n, top_k))
    state = zero_state
    for start in range(0, n - 1, window):
        inputs = ids[start:min(start + window, n - 1)]  # predicts ids[start+1 ...]
        log_probs, state = scorer(tf.constant(inputs[None]), state)
        log_probs = log_probs.numpy()[0].astype(np.float64)  # (W, A)
        part = slice(start + 1, start + 1 + len(inputs))
        log2p[part], top_ids[part], top_p[part] = rank_guesses(log_probs, ids[part], top_k)
    return {"log2p": log2p, "top_ids": top_ids, "top_p": top_p, "state": state}


def rank_guesses(log_probs, targets, top_k):
    """Per row of `log_probs` (W, A) (natural log, each row predicting `targets` (W,)):
    the target's log2 p (W,), the k likeliest ids best first (W, k), their p (W, k)."""
    best = np.argsort(-log_probs, axis=1, kind="stable")[:, :top_k]
    return (log_probs[np.arange(len(targets)), targets] / LN2, best,
            np.exp(np.take_along_axis(log_probs, best, axis=1)))


def read_by_line(text, normalize=False):
    """The text as the model reads it, and where each line of the user's text lies in it.

    Normalising (`tf_rnn.data.normalize_text8`) maps each line alone: a newline becomes
    a space and runs of spaces collapse, so the normalised lines joined by one space
    (blank ones dropped) are the normalised whole, and each line keeps its own span.

    Returns:
      (read: str, lines: [(line as written, start, end)]): `read[start:end]` is what
      the model read of that line, its newline (or the space standing for it) included.
    """
    written = text.splitlines(keepends=True)
    parts = [data_lib.normalize_text8(line) if normalize else line for line in written]
    if normalize:  # the space that joins a line to the next non-blank one is its newline
        last = max((i for i, part in enumerate(parts) if part), default=-1)
        parts = [part + " " if part and i < last else part for i, part in enumerate(parts)]
    lines, start = [], 0
    for line, part in zip(written, parts):
        lines.append((line, start, start + len(part)))
        start += len(part)
    return "".join(parts), lines


def by_line(lines, log2p):
    """[{"line", "text", "bpc", "chars"}] of each line (`read_by_line`'s spans) from the
    per-character `log2p` of the text read (the first character unscored)."""
    rows = []
    for number, (line, start, end) in enumerate(lines, 1):
        bits = -log2p[start:end]
        bits = bits[np.isfinite(bits)]
        rows.append({"line": number, "text": line,
                     "bpc": float(bits.mean()) if bits.size else None,
                     "chars": int(bits.size)})
    return rows
