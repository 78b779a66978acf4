"""Pictures of a run (matplotlib, the optional `plot` extra: pip install 'tf_rnn[plot]').

Nothing else in tf_rnn imports matplotlib; a command asked for a picture without it
gets one `PlotError` naming the extra.
"""

import numpy as np

from tf_rnn.base.errors import UserError


class PlotError(UserError):
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


DPI = 100  # with the sizes below, pictures 1100-1500 px wide: 10-pt text reads at 100%
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = "osD^v<>ph*"


def _save(fig, path):
    fig.savefig(path, dpi=DPI)
    require_matplotlib().close(fig)
    return str(path)


def style(i):
    """The i-th of 40 distinguishable curve styles: 10 colours, then the next line style."""
    require_matplotlib()
    import matplotlib

    colors = matplotlib.colormaps["tab10"].colors
    return {"color": colors[i % 10], "linestyle": LINESTYLES[i // 10 % len(LINESTYLES)]}


def diagnostics_figure(path, runs, title=None):
    """`make_diagnostics_figure` written to the PNG `path`; returns the path."""
    return _save(make_diagnostics_figure(runs, title), path)


def make_diagnostics_figure(runs, title=None):
    """Gradient against lag (log scale) for the window's loss and for the last step's
    loss alone, and the activity histogram of the units that feed back.

    Every run has its colour and marker; earlier runs are drawn wider and below the
    later ones, so curves that coincide all stay visible, and a gradient that is
    exactly zero (a log scale has no zero) shows as ▼ marks on the axis floor.

    Args:
      runs: {label: figures of `tf_rnn.inspect.diagnostics` (a measurement or `diagnose`)}.
      title: optional title of the whole figure.

    Returns:
      The matplotlib figure.
    """
    plt = require_matplotlib()
    fig, (whole, last, hist) = plt.subplots(1, 3, figsize=(15, 5.2), layout="constrained")
    count = len(runs)
    for i, (label, figures) in enumerate(runs.items()):
        look = {"color": style(i)["color"], "marker": MARKERS[i % len(MARKERS)],
                "linewidth": 1.5 + 3.0 * (count - 1 - i) / max(1, count - 1),
                "markersize": 5 + 3.0 * (count - 1 - i) / max(1, count - 1),
                "zorder": 2 + i}
        for ax, key in ((whole, "grad_by_lag"), (last, "grad_by_lag_last")):
            _profile(ax, figures[key], label, look)
    for ax, name, what in ((whole, "L", "the window's loss L (all its steps)"),
                           (last, "L_T", "the last step's loss $L_T$ alone")):
        ax.set_yscale("log")
        ax.set_xlabel("lag k (steps back from the window's end)")
        ax.set_ylabel(rf"$\|\partial {name}/\partial h_{{T-k}}\|$")
        ax.set_title(f"gradient of {what}\nreaching the hidden state k steps back",
                     fontsize=10)
        ax.legend(fontsize=8)
    _activity_histogram(hist, runs)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def _profile(ax, values, label, look):
    """One gradient-by-lag curve on a log axis; exact zeros as ▼ on the axis floor."""
    profile = np.array([np.nan if v is None else v for v in values], np.float64)
    lags = np.arange(len(profile))
    every = max(1, len(profile) // 20)
    shown, zero = profile > 0, profile == 0
    if not np.isfinite(profile).any():
        label += " (not finite: nothing to draw)"
    ax.plot(lags[shown], profile[shown], label=label, markevery=every, **look)
    if zero.any():
        floor = ax.get_xaxis_transform()  # x in data, y in axes fractions: the floor
        ax.plot(lags[zero], np.full(zero.sum(), 0.0), transform=floor, clip_on=False,
                linestyle="none", marker="v", markersize=look["markersize"] + 2,
                color=look["color"], zorder=look["zorder"] + 10,
                label=f"{label}: exactly 0 from lag {int(lags[zero][0])} (▼)")


def _activity_histogram(ax, runs):
    """Grouped bars: how many units (the recurrent ones where only some feed back)
    spend each share of the window active (relu) or saturated (tanh, sigmoid)."""
    rates, labels, colors = [], [], []
    for i, (label, figures) in enumerate(runs.items()):
        part = figures.get("recurrent_unit_rate")
        rates.append(np.asarray(figures["unit_rate"] if part is None else part, np.float64))
        labels.append(_activity_label(label, figures))
        colors.append(style(i)["color"])
    ax.hist(rates, bins=np.linspace(0, 1, 11), color=colors, label=labels)
    some = next(iter(runs.values()))
    what = "active (h > 0)" if some["activation"] == "relu" else "saturated"
    recurrent = some.get("recurrent_unit_rate") is not None
    units = (f"recurrent units h{some['recurrent_units']}, the ones that feed back"
             if recurrent else "hidden units")
    ax.set_xlabel(f"share of the window each unit is {what}")
    ax.set_ylabel(f"{units} ({len(rates[0])} in all)")
    ax.set_title(f"activity of the {'recurrent ' if recurrent else ''}units", fontsize=10)
    ax.legend(fontsize=8)


def _activity_label(label, figures):
    if figures["activation"] == "relu":
        dead = figures.get("recurrent_dead_fraction", figures["dead_fraction"])
        part = "recurrent " if "recurrent_dead_fraction" in figures else ""
        return f"{label}: {dead:.0%} of {part}units dead"
    return f"{label}: {figures['saturated_fraction']:.0%} saturated"


def curves_figure(path, x, curves, xlabel, ylabel, title=None, logy=False, marks=None):
    """`make_curves_figure` written to the PNG `path`; returns the path."""
    return _save(make_curves_figure(x, curves, xlabel, ylabel, title, logy, marks), path)


def make_curves_figure(x, curves, xlabel, ylabel, title=None, logy=False, marks=None):
    """Curves over one x axis, e.g. a loss over steps, one legend entry each.

    Args:
      x: (N,) or {label: (N_i,)} x values (one per curve when a dict).
      curves: {label: (N,) values}, each in its own `style`.
      marks: optional {label: x value} drawn as a vertical dotted line.

    Returns:
      The matplotlib figure.
    """
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
    _curves(ax, x, curves, logy)
    for label, value in (marks or {}).items():
        ax.axvline(value, linestyle=":", color="gray", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=11)
    _legend(ax, len(curves) + len(marks or {}))
    return fig


def _curves(ax, x, curves, logy=False):
    for i, (label, y) in enumerate(curves.items()):
        xs = x[label] if isinstance(x, dict) else x
        ax.plot(xs, y, linewidth=1.8, label=label, **style(i))
    if logy:
        ax.set_yscale("log")


def _legend(ax, entries):
    """A legend inside for a few entries, beside the axes in columns for many."""
    if entries <= 8:
        ax.legend(fontsize=9)
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  ncol=1 + (entries - 1) // 20)


def sweep_figure(path, offsets, sweeps, title=None):
    """`make_sweep_figure` written to the PNG `path`; returns the path."""
    return _save(make_sweep_figure(offsets, sweeps, title), path)


def make_sweep_figure(offsets, sweeps, title=None):
    """The cost along each context weight W_hh[i, j], one small panel per weight laid
    out as the matrix (row i: context unit, column j: hidden unit), one curve per
    network swept.

    Args:
      offsets: (P,) offsets from the trained value (the x axis).
      sweeps: {network label: {(i, j): (P,) costs}}.

    Returns:
      The matplotlib figure.
    """
    plt = require_matplotlib()
    cells = sorted({ij for curves in sweeps.values() for ij in curves})
    rows, cols = max(i for i, _ in cells) + 1, max(j for _, j in cells) + 1
    size = (max(11.0, 1.0 + 3.0 * cols), 1.8 + 2.3 * rows)  # >= 1100 px wide
    fig, axes = plt.subplots(rows, cols, figsize=size, sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    for s, (label, curves) in enumerate(sweeps.items()):
        for (i, j), costs in curves.items():
            axes[i, j].plot(offsets, costs, linewidth=2.0 if s == 0 else 1.6,
                            label=label if (i, j) == cells[0] else None, **style(s))
    for i, j in np.ndindex(rows, cols):
        ax = axes[i, j]
        ax.axvline(0.0, linestyle=":", color="gray",
                   label="trained value (offset 0)" if (i, j) == cells[0] else None)
        ax.set_title(f"W_hh[{i}, {j}]: context {i} → hidden {j}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("offset from the trained value")
    fig.supylabel("cost (cross-entropy on the training streams)")
    handles, labels = axes[cells[0]].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)),
               fontsize=9, title="one weight moved, the others at their trained values")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def hello_figure(path, steps, losses, right, columns, rows, title=None):
    """`make_hello_figure` written to the PNG `path`; returns the path."""
    return _save(make_hello_figure(steps, losses, right, columns, rows, title), path)


def make_hello_figure(steps, losses, right, columns, rows, title=None):
    """Loss per seed over training, and each seed's final teacher-forced predictions.

    Args:
      steps: (N,) training steps of the loss points.
      losses: {seed label: (N,) loss}.
      right: (K, L-1) the probability each seed gives the right next symbol.
      columns: L-1 labels of the predictions, e.g. "h→e".
      rows: K labels of the seeds, e.g. "seed 0: 'hello' ✓".

    Returns:
      The matplotlib figure.
    """
    plt = require_matplotlib()
    right = np.asarray(right, np.float64)
    height = max(5.5, 1.5 + 0.32 * len(rows))
    fig, (curve, grid) = plt.subplots(1, 2, figsize=(14, height), layout="constrained",
                                      gridspec_kw={"width_ratios": (1.0, 0.6 + 0.1 * len(columns))})
    _curves(curve, steps, losses, logy=True)
    curve.set_xlabel("training step (full batch)")
    curve.set_ylabel("loss (cross-entropy, nats per symbol)")
    curve.set_title("loss per seed", fontsize=10)
    curve.legend(fontsize=8, ncol=1 + (len(losses) - 1) // 10)
    image = grid.imshow(right, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for (k, t), p in np.ndenumerate(right if len(columns) <= 12 else []):  # room to write
        grid.text(t, k, f"{p:.2f}", ha="center", va="center", fontsize=8,
                  color="black" if p > 0.5 else "white")
    grid.set_xticks(range(len(columns)), columns)
    grid.set_yticks(range(len(rows)), rows, fontsize=8)
    grid.set_xlabel("symbol read → symbol to predict (teacher forced)")
    grid.set_title("after training: probability of the right next symbol", fontsize=10)
    fig.colorbar(image, ax=grid, label="probability", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def addition_figure(path, samples, losses, exact, needed, title=None):
    """`make_addition_figure` written to the PNG `path`; returns the path."""
    return _save(make_addition_figure(samples, losses, exact, needed, title), path)


def make_addition_figure(samples, losses, exact, needed, title=None):
    """Binary addition: each seed's loss and share of exact sums while it trains.

    Args:
      samples: (N,) training samples seen at each check.
      losses: {seed label: (N,) mean loss over all the checked additions}.
      exact: {seed label: (N,) share of those additions with every bit right}.
      needed: {seed label: samples before its first all-exact check, or None}.

    Returns:
      The matplotlib figure.
    """
    plt = require_matplotlib()
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    _curves(left, samples, losses, logy=True)
    left.set_ylabel("loss, mean over all the checked additions")
    left.set_title("loss per seed", fontsize=10)
    _curves(right, samples, exact)
    for i, (label, first) in enumerate(needed.items()):
        if first is not None:
            right.axvline(first, linewidth=1.0, color=style(i)["color"], linestyle=":")
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("share of the additions with every bit right")
    right.set_title("exactness per seed (dotted: first all-exact check)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("training samples (one addition per update)")
        ax.grid(alpha=0.3)
    _legend(right, len(exact))
    if len(exact) <= 8:
        left.legend(fontsize=9)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


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
