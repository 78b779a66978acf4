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
"""

import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata


class PendingSummaries:
    """Scalars, texts, histograms and profiles held in memory until `write` (at the
    next checkpoint)."""

    def __init__(self):
        self._items = []  # (kind, tag, value, step)

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
                if kind == "scalar":
                    tf.summary.scalar(tag, value, step=step)
                elif kind == "buckets":  # (k, 3) [left, right, count] rows
                    tf.summary.write(tag, value, step=step, metadata=_HISTOGRAM_METADATA)
                else:
                    tf.summary.text(tag, value, step=step)
        writer.flush()
        self._items.clear()


_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name="",
                                                                description="")


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
