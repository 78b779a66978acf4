"""The training run's diagnostics and `tf-rnn diagnose`: `tf_rnn.inspect.probes`'s figures of
a window (gradient flow through time, unit activity, the recurrent spectrum, weight
gradient norms, per layer for a stack) measured during training and on demand.

`TrainingDiagnostics` measures the window about to be trained every `diag_every` steps;
a model without the probe protocol trains without them (stderr says so), since they run
by default. `write` puts a measurement in the training loop's pending summaries
(TensorBoard): scalars under `diag/`, the per-lag profile as a histogram-plugin entry
whose buckets are the lags (TensorBoard's histogram dashboard then shows the profile
over training, on a linear scale), the same profile's log10 at a few lags as scalars
(`diag/grad_by_lag/lag_005`: its orders of magnitude over training), each layer's
figures of a stack under `diag/layer_L/`, and one histogram per weight matrix under
`weights/`. `diagnose` measures a checkpoint on validation windows and prints `table`.
"""

import numpy as np

from tf_rnn import models
from tf_rnn.base import logs
from tf_rnn.base.checks import positive_integer
from tf_rnn.base.errors import ArgumentError
from tf_rnn.engine import distribute
from tf_rnn.inspect import plots, probes
from tf_rnn.run import reading
from tf_rnn.run.directory import Workdir


def table_lags(steps):
    """The lags shown of a profile over `steps` lags: 0, 1, 2, 5, 10, 20, 50, ... and
    the last (a few, on a log-like grid, so that a long window stays readable)."""
    grid = {0, steps - 1}
    for decade in (1, 10, 100, 1000):
        grid |= {decade, 2 * decade, 5 * decade}
    return sorted(k for k in grid if 0 <= k < steps)


LOG10_ZERO = -30.0  # what the log10 scalars write for an exact zero (float32 norms > 1e-30)


def _log10(value):
    return float(np.log10(value)) if value > 0 else LOG10_ZERO


# Scalars written under diag/: every number of a measurement but the profiles.
SCALARS = ("loss", "grad_ratio", "grad_ratio_last", "sigma_max", "spectral_radius",
           "active_fraction", "dead_fraction", "recurrent_active_fraction",
           "recurrent_dead_fraction", "saturated_fraction", "stuck_fraction")


# A stacked model's figures per layer, under diag/layer_L/.
LAYER_SCALARS = ("grad_ratio", "active_fraction", "dead_fraction", "saturated_fraction",
                 "stuck_fraction", "sigma_max", "spectral_radius")


def write(pending, figures, model, step):
    """Adds one measurement to `pending` (`summaries.PendingSummaries`) at `step`."""
    for key in SCALARS:
        value = figures.get(key)
        if value is not None:
            pending.scalar(f"diag/{key}", value, step)
    flow = figures["grad_by_lag"]
    pending.scalar("diag/grad_lag0", flow[0], step)
    pending.scalar("diag/grad_lag_last", flow[-1], step)
    for name, norm in figures["grad_norms"].items():
        pending.scalar(f"diag/grad_norm/{name}", norm, step)
    pending.profile("diag/grad_by_lag", flow, step)
    pending.profile("diag/grad_by_lag_last", figures["grad_by_lag_last"], step)
    # The histogram dashboard draws those profiles on a linear scale, where every lag
    # past the first few looks like zero; their log10 at a few lags shows the scale.
    for key in ("grad_by_lag", "grad_by_lag_last"):
        for k in table_lags(len(flow)):
            value = figures[key][k]
            if np.isfinite(value):  # a NaN norm has no log; diag/loss already says why
                pending.scalar(f"diag/{key}/lag_{k:03d}", _log10(value), step)
    pending.histogram("diag/unit_rate", figures["unit_rate"], step)
    for row in figures.get("layers", ()):
        prefix = f"diag/layer_{row['layer']}"
        pending.profile(f"{prefix}/grad_by_lag", row["grad_by_lag"], step)
        for key in LAYER_SCALARS:
            if row.get(key) is not None:
                pending.scalar(f"{prefix}/{key}", row[key], step)
    variables = model.trainable_variables
    for name, v in zip(probes.weight_names(variables), variables):
        pending.histogram(f"weights/{name}", v.numpy(), step)


class TrainingDiagnostics:
    """The training loop's measurements: every `diag_every` steps (-1: every
    `eval_every`, with each validation; 0: never) and at the last step, on the window
    about to be trained, with the weights and state it is trained from.

    A model without the probe protocol trains without them: diagnostics run by default,
    and a model class of one's own must not fail before its first step (stderr says so).
    """

    def __init__(self, config, model, strategy=None):
        self.every = config.eval_every if config.diag_every == -1 else config.diag_every
        self.model, self.strategy = model, strategy
        missing = models.missing_probe_protocol(model)
        if self.every and missing:
            logs.note(f"tf_rnn: no diagnostics for {type(model).__name__}: it lacks "
                      f"{', '.join(missing)} of the probe protocol (tf_rnn.models).")
            self.every = 0
        self._measure = probes.make_measure(model) if self.every else None

    def measure(self, step, last, window, state):
        """The figures of `window` (B, T + 1) if the step it trains, `step`, is due."""
        if not self.every or (step % self.every and step != last):
            return None
        if self.strategy is not None:  # replicas' rows -> the global (B, S) state
            state = distribute.gather_rows(self.strategy, state)
        return self._measure(window[:, :-1], window[:, 1:], state)

    def write(self, pending, figures, step):
        if figures is not None:
            write(pending, figures, self.model, step)


def diagnose(workdir, data=None, windows=4, plot=None, cache_dir=None, out=print,
             checkpoint="latest"):
    """`tf-rnn diagnose`: a checkpoint (the latest) measured on a few validation windows.

    The validation split is cut into `batch_size` streams (the training shape), each
    starting from the zero state and carrying it across `windows` consecutive windows
    of `num_unrollings` characters; the figures are the means over the windows.

    Args:
      workdir: a run's directory.
      data: the corpus (default: the one the run trained on).
      plot: optional PNG path for `tf_rnn.inspect.plots.diagnostics_figure`.
      out: where the table's lines go (print: stdout, before the JSON line).
      checkpoint: "latest", "best" or "ckpt-N" (`reading.load_model`).

    Returns:
      The JSON-ready figures: scalars, "grad_by_lag", "grad_by_lag_last",
      "unit_rate" (lists), "grad_norms", "windows", and the checkpoint measured:
      "checkpoint" (its path), "step", "which", "best_valid_bpc".
    """
    positive_integer("windows", windows, ArgumentError)
    if plot is not None:
        plots.require_matplotlib()  # before any work: a missing extra fails at once
    workdir = Workdir(workdir)
    loaded = reading.load_model(workdir, checkpoint)
    model, _, config = loaded
    corpus = reading.load_corpus_for(config, workdir, reading.run_data(workdir, data), cache_dir)
    figures = probes.measure_text(model, corpus.valid, config.batch_size, config.num_unrollings,
                           windows)
    figures.update(loaded.checkpoint)
    for line in table(figures):
        out(line)
    if plot is not None:
        figures["plot"] = plots.diagnostics_figure(
            plot, {model_label(config): figures},
            title=f"{workdir.path.name}: {figures['checkpoint'].rsplit('/', 1)[-1]}")
    return figures


def model_label(config):
    """A run's model in a few words, from its config: "arch1 mul, tanh, init glorot"."""
    if config.model == "arch1":
        return f"arch1 {config.combine}, {config.activation}, init {config.init}"
    what = {"arch2": "arch2 (output feedback, tanh)", "elman": "elman (tanh)"}
    return f"{what.get(config.model, config.model)}, init {config.init}"


def table(figures):
    """Lines of a plain-text table of a `diagnose` result (None, a non-finite figure,
    shows as what it was: nan, inf)."""
    why = figures.get("nonfinite", {})

    def cell(value, name, width):
        text = (f"{value:.4g}" if value is not None
                else why.get(name, "n/a").split()[0].rstrip(":"))  # "nan", "inf"
        return f"{text:>{width}}"

    lines = [f"{'figure':<34}{'value':>12}"]
    for key in SCALARS:
        if figures.get(key) is not None or key in why:
            lines.append(f"{'diag/' + key:<34}{cell(figures[key], key, 12)}")
    lines.append(f"{'recurrent units':<34}{figures['recurrent_units']:>12}")
    for name, norm in figures["grad_norms"].items():
        lines.append(f"{'grad norm ' + name:<34}{cell(norm, 'grad_norms.' + name, 12)}")
    flow, last = figures["grad_by_lag"], figures["grad_by_lag_last"]
    lines.append(f"{'lag k':<10}{'||dL/dh_T-k||':>16}{'||dL_T/dh_T-k||':>18}")
    for k in table_lags(len(flow)):
        lines.append(f"{k:<10}{cell(flow[k], 'grad_by_lag', 16)}"
                     f"{cell(last[k], 'grad_by_lag_last', 18)}")
    for row in figures.get("layers", ()):
        shown = [key for key in LAYER_SCALARS if row.get(key) is not None]
        lines.append(f"layer {row['layer']}: " + ", ".join(
            f"{key} {row[key]:.4g}" for key in shown))
    if why:
        lines.append("not finite (None in the JSON line): " + ", ".join(
            f"{key} ({reason})" for key, reason in why.items()))
    return lines
