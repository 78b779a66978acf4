"""TensorBoard summaries that never run ahead of the run's last checkpoint.

A killed run resumes from its last checkpoint and trains the steps after it again; had
it logged those steps already, a reader would see each of them twice (TensorFlow 2
writes no `SessionLog.START` that would tell TensorBoard's Python loader to drop
them). So the training loop keeps its summaries in memory (`PendingSummaries`) and
writes them — then flushes the writer — just before each checkpoint save: the event
files never hold a step past the checkpoint about to be written. The one window left, a
kill inside that save, is closed by `purge_after`, which a resumed run calls with the
step it restored: it drops the later events from the files already written. The
divergence guard, which rolls back within a process, just discards what is pending.

Every summary carries a description (TensorBoard shows it beside the chart): they all
come from one table, `DESCRIPTIONS`, looked up by `describe(tag)`.
"""

import fnmatch
import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

from tf_rnn.base import files


# tag (or fnmatch pattern) -> what a reader of the chart needs to know. The first match
# wins, so exact tags come before the patterns that would also match them.
DESCRIPTIONS = {
    # tf-rnn train (tf_rnn.train.training) and the toy experiments (tf_rnn.toys.sequence.fit)
    "train/loss": "Training loss over the last logging interval. Character models: mean "
                  "cross-entropy in nats per character; toy tasks (xor_elman, hello, "
                  "binary_addition): the task's loss, mean over the K seeds.",
    "train/bpc": "Training bits per character: train/loss / ln 2, over the last "
                 "logging interval.",
    "train/learning_rate": "The optimizer's learning rate at this step (schedule and "
                           "any recovery scaling included).",
    "train/grad_norm": "Global norm of the gradient before clipping, mean over the "
                       "logging interval.",
    "train/clip_fraction": "Share of the interval's steps whose gradient was clipped.",
    "train/chars_per_sec": "Training speed: characters per second of the train step alone "
                           "(validation, sampling, diagnostics and saves excluded).",
    "train/steps": "Training steps done by this time (x axis: seconds of training).",
    "valid/bpc": "Validation bits per character (cross-entropy / ln 2) of the model at "
                 "this step.",
    "samples/text": "Text sampled from the model at this step.",
    # tf_rnn.inspect.diagnostics
    "diag/loss": "Loss of the measured window (the window about to be trained).",
    "diag/grad_ratio": "||dL/dh_{T-k}|| at the window's first step (k = T-1) over the last "
                       "(k = 0), L the window's loss: < 1 the gradient fades going back.",
    "diag/grad_ratio_last": "The same ratio for L_T, the last step's loss alone: how much of "
                            "one prediction's error reaches the window's first step.",
    "diag/grad_lag0": "||dL/dh_T||: the gradient of the window's loss reaching the last "
                      "step's hidden state.",
    "diag/grad_lag_last": "||dL/dh_1||: the gradient of the window's loss reaching the "
                          "first step's hidden state.",
    "diag/sigma_max": "Largest singular value of the recurrent matrix (> 1 allows growth, "
                      "< 1 forces decay).",
    "diag/spectral_radius": "Largest |eigenvalue| of the recurrent matrix (square ones).",
    "diag/active_fraction": "relu: share of (step, row, unit) values with h > 0.",
    "diag/dead_fraction": "relu: share of hidden units never active in the window.",
    "diag/recurrent_active_fraction": "Arch 1 concat: active share over r, the state's "
                                      "recurrent half (the units that feed back).",
    "diag/recurrent_dead_fraction": "Arch 1 concat: share of r's units (the recurrent "
                                    "half) never active in the window.",
    "diag/saturated_fraction": "tanh: share of values with |h| > 0.99; sigmoid: outside "
                               "[0.01, 0.99].",
    "diag/stuck_fraction": "tanh/sigmoid: share of units saturated at every step and row.",
    "diag/grad_norm/*": "Norm of this weight matrix's gradient, before clipping.",
    "diag/grad_by_lag": "Histograms dashboard: bucket k (x axis) is lag k, its height "
                        "||dL/dh_{T-k}|| (linear; the log10 figures are the scalars "
                        "diag/grad_by_lag/lag_*).",
    "diag/grad_by_lag_last": "Histograms dashboard: bucket k is lag k, its height "
                             "||dL_T/dh_{T-k}||, L_T the last step's loss (linear; log10 "
                             "in diag/grad_by_lag_last/lag_*).",
    "diag/grad_by_lag/lag_*": "log10 ||dL/dh_{T-k}|| at the lag k in the tag's name: the "
                              "window loss's gradient k steps before the window's end. "
                              "-30 stands for exactly 0 (no gradient reaches that step).",
    "diag/grad_by_lag_last/lag_*": "log10 ||dL_T/dh_{T-k}|| at the lag k in the tag's "
                                   "name, L_T the last step's loss: how far back one "
                                   "prediction's error reaches. -30 stands for exactly 0.",
    "diag/unit_rate": "Each hidden unit's share of the window it is active (relu) or "
                      "saturated (tanh, sigmoid).",
    "diag/layer_*/grad_by_lag": "Stacked models, layer L of the tag (1: the bottom): "
                                "histograms dashboard, bucket k is lag k, its height the "
                                "norm of dL/dh_{T-k} over that layer's units.",
    "diag/layer_*/*": "Stacked models: the diag/ figure of the tag's last part, over the "
                      "units (and recurrent block) of layer L of the tag (1: the bottom).",
    "weights/*": "Histogram of this weight matrix's entries (stacked models: "
                 "layer_L/NAME for layers above the first).",
    # experiments.xor_elman, experiments.binary_addition, experiments.hello
    "sweep/offset": "The offset from the trained value at sweep point s (the x axis of "
                    "the sweep/ charts is the point s, not the offset).",
    "sweep/about": "What the sweep/ charts show and which seeds were swept.",
    "sweep/*": "Cost (cross-entropy on the training streams) of one trained seed as one "
               "context weight W_hh[i, j] moves by sweep/offset[s], the rest held fixed.",
    "test/accuracy": "Per seed: share of the fresh test stream's bits predicted right.",
    "exact/*": "Lowest share, over the seeds, of additions with every bit right.",
    "samples_needed": "Per seed: training additions before it first got every pair right.",
    "generated": "Per seed: the greedy continuation of the prime, and whether it is right.",
}


def describe(tag):
    """The description of `tag` in `DESCRIPTIONS` ("" when it has none)."""
    for pattern, text in DESCRIPTIONS.items():
        if tag == pattern or fnmatch.fnmatchcase(tag, pattern):
            return text
    return ""


class PendingSummaries:
    """Scalars, texts, histograms and profiles held in memory until `write` (at the
    next checkpoint)."""

    def __init__(self):
        self._items = []  # (kind, tag, value, step)
        # Tags whose description is on disk already. TensorFlow writes a summary's
        # metadata with every event, and TensorBoard reads it from the first: a
        # description on every event made the event files 4x larger.
        self._described = set()

    def __len__(self):
        return len(self._items)

    def scalar(self, tag, value, step):
        self._items.append(("scalar", tag, float(value), int(step)))

    def text(self, tag, value, step):
        self._items.append(("text", tag, str(value), int(step)))

    def approx_bytes(self):
        """About how many bytes `write` adds to the event file."""
        return sum(len(str(value).encode("utf-8")) + len(tag) + 64
                   for _, tag, value, _ in self._items)

    def histogram(self, tag, values, step, bins=30):
        """A histogram of `values` (any array), e.g. a weight matrix; its buckets are
        counted here with NumPy (one write, not the ops of `tf.summary.histogram`)."""
        values = np.asarray(values, np.float64).ravel()
        counts, edges = np.histogram(values, bins=bins) if values.size else ([], [0.0])
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1) if values.size \
            else np.zeros((0, 3))
        self._items.append(("buckets", tag, buckets, int(step)))

    def profile(self, tag, values, step):
        """A curve over its index (e.g. a gradient norm per lag) as a histogram-plugin
        entry: bucket i spans [i, i + 1) with height values[i]."""
        values = np.asarray(values, np.float64)
        index = np.arange(len(values), dtype=np.float64)
        buckets = np.stack([index, index + 1, values], axis=1)
        self._items.append(("buckets", tag, buckets, int(step)))

    def discard(self):
        """Forgets what is pending: the steps it covers are being trained again."""
        self._items.clear()

    def write(self, writer):
        """Writes everything pending to `writer` and flushes it to disk."""
        with writer.as_default():
            for kind, tag, value, step in self._items:
                description = None if tag in self._described else describe(tag)
                if kind == "scalar":
                    tf.summary.scalar(tag, value, step=step, description=description)
                elif kind == "buckets":  # (k, 3) [left, right, count] rows
                    tf.summary.write(tag, value, step=step,
                                     metadata=_histogram_metadata(description))
                else:
                    tf.summary.text(tag, value, step=step, description=description)
                self._described.add(tag)
        writer.flush()
        self._items.clear()


def _histogram_metadata(description):
    return histogram_metadata.create_summary_metadata(display_name="",
                                                      description=description or "")


def purge_after(events_dir, step):
    """Drops every event with a step greater than `step` from the event files.

    Each file holding such events (or a truncated last record, left by a kill inside a
    write) is rewritten aside and renamed over itself, keeping its name and so its
    place in the order readers load files in. Returns the number of events dropped.
    """
    events_dir = pathlib.Path(events_dir)
    if not events_dir.is_dir():
        return 0
    dropped = 0
    for path in sorted(events_dir.iterdir()):
        if "tfevents" not in path.name or path.name.startswith(".") or not path.is_file():
            continue
        kept, changed = [], False
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                raw = record.numpy()
                if tf.compat.v1.Event.FromString(raw).step > step:
                    changed, dropped = True, dropped + 1
                else:
                    kept.append(raw)
        except tf.errors.DataLossError:  # a record cut short at the end of the file
            changed = True
        if changed:
            _rewrite(path, kept)
    return dropped


def _rewrite(path, records):
    # The temporary name holds no "tfevents": a TensorBoard watching the directory
    # must not load it as one more event file.
    fd, tmp = tempfile.mkstemp(prefix=".purge.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, files.umask_mode())  # the event file keeps a readable mode
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(tmp) as out:
            for raw in records:
                out.write(raw)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
