"""Pictures of a run (matplotlib, the optional `plot` extra: pip install 'tf_rnn[plot]').

Nothing else in tf_rnn imports matplotlib; a command asked for a picture without it
gets one `PlotError` naming the extra.
"""

import numpy as np


class PlotError(ValueError):
    """A picture was asked for and cannot be drawn (matplotlib is missing)."""


def require_matplotlib():
    """matplotlib.pyplot on the file-only Agg backend, or PlotError naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError("Drawing a picture needs matplotlib, which is not installed: "
                        "install the optional `plot` extra (pip install 'tf_rnn[plot]', "
                        "or pip install matplotlib).") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    require_matplotlib().close(fig)
    return str(path)


def diagnostics_figure(path, runs, title=None):
    """Gradient norm against lag (log scale) and the unit-activity histogram, side by side.

    Args:
      path: the PNG to write.
      runs: {label: figures of `tf_rnn.diagnostics` (a measurement or `diagnose`)}.
      title: optional title of the whole figure.

    Returns:
      The path written.
    """
    plt = require_matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, fig_) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        for key, style, what in (("grad_by_lag", "-", "window loss"),
                                 ("grad_by_lag_last", "--.", "last step's loss")):
            profile = np.asarray(fig_[key], np.float64)
            lags = np.arange(len(profile))
            shown = profile > 0  # a log scale has no zero: a curve that vanishes stops
            left.plot(lags[shown], profile[shown], style, color=color,
                      label=f"{label}: {what}")
        rate = np.asarray(fig_["unit_rate"], np.float64)
        right.hist(rate, bins=np.linspace(0, 1, 21), histtype="step", color=color,
                   linewidth=1.5, label=_activity_label(label, fig_))
    left.set_yscale("log")
    left.set_xlabel("lag k (steps back from the window's end)")
    left.set_ylabel("||dL/dh_{T-k}||")
    left.set_title("gradient reaching the hidden state")
    left.legend(fontsize=7)
    some = next(iter(runs.values()))
    what = "active (h > 0)" if some["activation"] == "relu" else "saturated"
    right.set_xlabel(f"fraction of the window each unit is {what}")
    right.set_ylabel("units")
    right.set_title("unit activity")
    right.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _activity_label(label, figures):
    if figures["activation"] == "relu":
        dead = figures.get("recurrent_dead_fraction", figures["dead_fraction"])
        part = "recurrent " if "recurrent_dead_fraction" in figures else ""
        return f"{label}: {dead:.0%} of {part}units dead"
    return f"{label}: {figures['saturated_fraction']:.0%} saturated"


def curves_figure(path, x, curves, xlabel, ylabel, title=None, logy=False, marks=None):
    """Curves over one x axis, e.g. a cost along a weight or a loss over steps.

    Args:
      x: (N,) or {label: (N_i,)} x values (one per curve when a dict).
      curves: {label: (N,) values}.
      marks: optional {label: x value} drawn as a vertical dotted line.

    Returns:
      The path written.
    """
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    many = len(curves) > 8
    for label, y in curves.items():
        xs = x[label] if isinstance(x, dict) else x
        ax.plot(xs, y, linewidth=1.0 if many else 1.5, label=None if many else label)
    for label, value in (marks or {}).items():
        ax.axvline(value, linestyle=":", color="gray", label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if not many or marks:
        ax.legend(fontsize=8)
    return _save(fig, path)


def read_scalars(events_dir, tags):
    """{tag: (steps array, values array)} of the scalar summaries in an events directory."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(events_dir), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    out = {}
    for tag in tags:
        if tag in acc.Tags()["tensors"]:
            events = acc.Tensors(tag)
            out[tag] = (np.array([e.step for e in events]),
                        np.array([float(tf.make_ndarray(e.tensor_proto)) for e in events]))
    return out


def training_curves(path, events_dir, title=None):
    """The loss curve of a run, train and validation BPC against step, from its events."""
    require_matplotlib()
    series = read_scalars(events_dir, ("train/bpc", "valid/bpc"))
    if not series:
        raise PlotError(f"No train/bpc or valid/bpc summaries in {str(events_dir)!r} to "
                        f"plot.")
    return curves_figure(path, {k: v[0] for k, v in series.items()},
                         {k: v[1] for k, v in series.items()}, "step",
                         "bits per character", title)
