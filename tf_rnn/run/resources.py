"""Will a run fit? The memory a training run needs, estimated before anything is built.

`--set num_nodes=100000` would otherwise end in a TensorFlow `ResourceExhaustedError`
traceback after minutes, or (on a CPU) allocate until the machine runs out of memory.
The estimate counts, in the model's float32:

- the weights, their gradients, one temporary of their size (clipping), and the
  optimizer's slots (Adam and Adadelta 2 per weight, Adagrad 1, SGD 0);
- the activations of one training window kept for the backward pass: per time step and
  stream the state and its pre-activation, the logits, their softmax and gradient.

The parameter count and state width come from the model itself, built at three tiny
widths: both are polynomials of degree two in `num_nodes` for every model here (weight
matrices n×n, n×A and vectors of n), so three points give them exactly at any width,
and a new model class needs nothing added here.
"""

import os

import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import model_table
from tf_rnn.base.errors import WorkdirError

GIB = 2**30
OPTIMIZER_SLOTS = {"adam": 2, "adadelta": 2, "adagrad": 1, "sgd": 0}
_PROBE_WIDTHS = (4, 5, 6)


class ModelTooLarge(WorkdirError):
    """The run would need more memory than the machine has."""


def _quadratic_at(xs, ys, x):
    """The degree-2 polynomial through the three points (xs, ys), at x (Lagrange)."""
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    return (y0 * (x - x1) * (x - x2) / ((x0 - x1) * (x0 - x2))
            + y1 * (x - x0) * (x - x2) / ((x1 - x0) * (x1 - x2))
            + y2 * (x - x0) * (x - x1) / ((x2 - x0) * (x2 - x1)))


def _size(model):
    return (sum(int(v.shape.num_elements()) for v in model.trainable_variables),
            int(model.state_size))


def model_size(config, alphabet_size):
    """(parameters, state width) of `config`'s model at its num_nodes, without building it
    (a model whose width is its own, not `num_nodes`'s, is built once: `keras_cell`)."""
    if "num_nodes" in model_table.MODELS[config.model].ignores:
        return _size(models.build_model(config, alphabet_size))
    params, widths = zip(*(_size(models.build_model(config.replace(num_nodes=n), alphabet_size))
                           for n in _PROBE_WIDTHS))
    n = config.num_nodes
    return (round(_quadratic_at(_PROBE_WIDTHS, params, n)),
            round(_quadratic_at(_PROBE_WIDTHS, widths, n)))


def training_bytes(config, alphabet_size, bytes_per_value=4, size=None):
    """Estimated peak memory (bytes) of training `config` on one device (`size`: its
    `model_size`, if known)."""
    params, width = size or model_size(config, alphabet_size)
    weights = params * (3 + OPTIMIZER_SLOTS.get(config.optimizer, 2))
    window = config.batch_size * config.num_unrollings * (2 * width + 3 * alphabet_size)
    return (weights + window) * bytes_per_value


def available_bytes():
    """Memory this process can still allocate on the host (None: not known here)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(config, alphabet_size, available=None):
    """Raises ModelTooLarge when training `config` cannot fit in the host's memory.

    On a GPU the weights live in the device's memory, which TensorFlow does not report
    before allocating: there the check is skipped and an allocation failure is reported
    as one line by the CLI.
    """
    if available is None:
        if tf.config.list_physical_devices("GPU"):
            return
        available = available_bytes()
        if available is None:
            return
    size = model_size(config, alphabet_size)
    needed = training_bytes(config, alphabet_size, size=size)
    if needed > available:
        params, _ = size
        raise ModelTooLarge(
            f"The {config.model!r} model with num_nodes={config.num_nodes} ({params:,} "
            f"weights) and batch_size={config.batch_size} x num_unrollings="
            f"{config.num_unrollings} needs about {needed / GIB:.1f} GiB to train (weights, "
            f"gradients, {config.optimizer} slots, one window's activations), "
            f"{available / GIB:.1f} GiB available. Lower --set num_nodes (or batch_size); "
            f"nothing was built or written.")
