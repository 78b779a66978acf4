"""Pure, compiled steps of training and evaluation, and the optimizer of a config.

`make_train_step` is the one optimisation step of the project: the text trainer
(`tf_rnn.train.training`) and the toy experiments both call it.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from tf_rnn.base import logs
from tf_rnn.base.config import SCHEDULES
from tf_rnn.base.errors import DataError

LN2 = math.log(2.0)


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = scale · initial · shape(step), the shape by `kind`:

    - "step": decay_rate^floor(step / decay_steps), the seeds' staircase;
    - "linear": 1 − step/total, to (near) zero at the last step (Li, Yumer & Ramanan,
      "Budgeted Training", ICLR 2020);
    - "cooldown": 1 until the last `cooldown_fraction` of the steps, then linear to zero
      (Hägele et al., 2024: constant, then a cooldown).

    `total` is an int64 variable: the run's last step (`--steps`; 0: none, the rate held
    by the steps). `progress`, a float32 variable, is the fraction of a time budget spent
    (`tf_rnn.train.budget`): with it, "linear" and "cooldown" run over whichever is further
    along, the steps or the budget's clock, so a budget run ends at its final rate
    whatever its pace. `scale` lets the divergence guard lower the rate of a running
    schedule. `scale` and `total` are saved in checkpoints with the rest of the run.
    """

    def __init__(self, kind, initial, decay_steps, decay_rate, scale, total,
                 cooldown_fraction=0.2, progress=None):
        if kind not in SCHEDULES:
            raise ValueError(f"Received an invalid value for `schedule`, expected one of "
                             f"{list(SCHEDULES)}, got {kind!r}.")
        self.kind, self.initial = kind, initial
        self.decay_steps, self.decay_rate = decay_steps, decay_rate
        self.cooldown_fraction = cooldown_fraction
        self.scale, self.total, self.progress = scale, total, progress

    def shape(self, step):
        """The factor on the initial rate at `step` (a float32 scalar)."""
        step = tf.cast(step, tf.float32)
        if self.kind == "step":
            return tf.pow(tf.constant(self.decay_rate, tf.float32),
                          tf.floor(step / self.decay_steps))
        total = tf.cast(self.total, tf.float32)
        left = tf.where(total > 0, tf.clip_by_value((total - step) / tf.maximum(total, 1.0),
                                                    0.0, 1.0), 1.0)
        if self.progress is not None:  # a time budget: what is left of its clock
            left = tf.minimum(left, tf.clip_by_value(1.0 - self.progress, 0.0, 1.0))
        if self.kind == "cooldown":  # 1 until the cooldown starts, then linear to 0
            left = tf.minimum(1.0, left / self.cooldown_fraction)
        return left

    def __call__(self, step):
        # scale · (initial · shape): the order of Keras's ExponentialDecay under a scale,
        # so that runs from before the other shapes keep their rates to the bit.
        initial = tf.constant(self.initial, tf.float32)
        return tf.cast(self.scale, tf.float32) * (initial * self.shape(step))

    def get_config(self):
        return {"kind": self.kind, "initial": self.initial, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "cooldown_fraction": self.cooldown_fraction,
                "scale": float(self.scale.numpy()), "total": int(self.total.numpy())}


def make_schedule(config, lr_scale=None, total_steps=None, progress=None):
    """The learning-rate schedule of `config` (see `Schedule`).

    Args:
      config: a `tf_rnn.base.config.Config`.
      lr_scale: optional float32 tf.Variable multiplying the schedule (created if None).
      total_steps: optional int64 tf.Variable, the run's last step (created if None:
        `config.steps`).
      progress: the float32 tf.Variable of a time budget (`budget_progress`), or None.
    """
    if lr_scale is None:
        lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
    if total_steps is None:
        total_steps = tf.Variable(config.steps, dtype=tf.int64, trainable=False,
                                  name="total_steps")
    return Schedule(config.schedule, config.learning_rate, config.decay_steps,
                    config.decay_rate, lr_scale, total_steps, config.cooldown_fraction,
                    progress)


def budget_progress(config):
    """The fraction of the time budget spent, a float32 variable the schedule reads
    (`tf_rnn.train.budget.TimeBudget.update` sets it); None for a run without a budget."""
    if config.budget_minutes <= 0:
        return None
    return tf.Variable(0.0, dtype=tf.float32, trainable=False, name="budget_progress")


def make_optimizer(config, lr_scale=None, total_steps=None, progress=None):
    """The Keras optimizer of `config`, on its learning-rate schedule (`make_schedule`)."""
    lr = make_schedule(config, lr_scale, total_steps, progress)
    if config.optimizer == "adadelta":
        return keras.optimizers.Adadelta(lr, rho=0.95, epsilon=config.epsilon)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr)
    if config.optimizer == "adagrad":
        # The seed's Adagrad: accumulators start at zero, lr·g / sqrt(sum g² + eps).
        return keras.optimizers.Adagrad(lr, initial_accumulator_value=0.0,
                                        epsilon=config.epsilon)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, epsilon=config.epsilon)
    raise ValueError(f"Received an invalid value for `optimizer`, got {config.optimizer!r}.")


def current_learning_rate(optimizer):
    """The learning rate the next update will use, as a Python float."""
    return float(optimizer.learning_rate)  # Keras 3 evaluates the schedule at `iterations`


def lm_loss(logits, targets):
    """Mean next-character cross-entropy in nats. logits (B, T, A), targets (B, T)."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(targets, tf.int32), logits=logits))


def clip_gradients(grads, clip_norm=0.0, clip_value=0.0):
    """Element-wise clipping to [-clip_value, clip_value], then to the global norm clip_norm
    (each only when > 0). Returns the clipped gradients and the global norm before."""
    grad_norm = tf.linalg.global_norm(grads)
    if clip_value > 0:
        grads = [tf.clip_by_value(g, -clip_value, clip_value) for g in grads]
    if clip_norm > 0:
        norm = grad_norm if clip_value <= 0 else None  # else: measure the clipped values
        grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
    return grads, grad_norm


def guarded_metrics(loss, grad_norm, clip_norm):
    """The metrics of a train step, and its guard: {"loss", "grad_norm", "clipped",
    "finite"}, where "finite" (loss and gradient norm both finite) says whether the
    update may be applied; a non-finite one leaves the weights and optimizer untouched."""
    finite = tf.math.is_finite(loss) & tf.math.is_finite(grad_norm)
    clipped = grad_norm > clip_norm if clip_norm > 0 else tf.constant(False)
    return {"loss": loss, "grad_norm": grad_norm, "clipped": clipped, "finite": finite}


def dropout_kwargs(model, optimizer, seed, replica=0, replicas=1):
    """The keyword arguments a train step adds to `model(inputs, state)`.

    A model with `dropout` > 0 gets `dropout_seed` = (seed, step·replicas + replica): each
    step (and each replica of a step) draws its own masks, and they depend on the step
    alone, so a resumed run draws the masks the uninterrupted one would have.
    """
    if not getattr(model, "dropout", 0):
        return {}
    step = tf.cast(optimizer.iterations, tf.int64) * replicas + tf.cast(replica, tf.int64)
    return {"dropout_seed": tf.stack([tf.constant(seed, tf.int64), step])}


def make_train_step(model, optimizer, clip_norm=0.0, clip_value=0.0, loss_fn=lm_loss,
                    jit_compile=False, seed=0):
    """A compiled truncated-BPTT step: train_step(inputs, targets, state) -> metrics, state.

    The state after the window comes back (unchanged by the update) to be carried
    into the next window. A non-finite loss or gradient norm leaves the weights and
    the optimizer untouched; `metrics["finite"]` says so.

    Args:
      model: maps (inputs, state) -> (outputs, new_state).
      optimizer: a Keras optimizer; built here if it is not yet.
      clip_norm: > 0 clips the gradients to this global norm (`tf.clip_by_global_norm`).
      clip_value: > 0 clips each gradient element to [-clip_value, clip_value] first.
      loss_fn: (outputs, targets) -> scalar loss.
      seed: the run's seed, from which the model's dropout masks are drawn (if any).

    Returns:
      train_step(inputs, targets, state) -> ({"loss", "grad_norm", "clipped",
      "finite"}, new_state); grad_norm is measured before clipping.
      `train_step.uses_xla()` says whether XLA runs it.
    """
    variables = model.trainable_variables
    if not optimizer.built:
        optimizer.build(variables)

    def train_step(inputs, targets, state):
        with tf.GradientTape() as tape:
            outputs, new_state = model(inputs, state,
                                       **dropout_kwargs(model, optimizer, seed))
            loss = loss_fn(outputs, targets)
        grads = tape.gradient(loss, variables)
        grads, grad_norm = clip_gradients(grads, clip_norm, clip_value)
        metrics = guarded_metrics(loss, grad_norm, clip_norm)

        def apply():
            optimizer.apply(grads, variables)
            return tf.constant(True)

        tf.cond(metrics["finite"], apply, lambda: tf.constant(False))
        return metrics, new_state

    plain = _ShapeCachedFunction(tf.function(train_step))
    if not jit_compile:
        return plain
    return XlaOrFallback(
        _ShapeCachedFunction(tf.function(train_step, jit_compile=True), xla=True), plain,
        "the train step")


# Errors by which a first XLA call can fail to compile (an op without an XLA kernel on
# this device, ...). Compiling comes before running, so nothing has been updated yet.
_XLA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
               tf.errors.InternalError, tf.errors.NotFoundError)


class StepFunction:
    """A step function and whether XLA compiles it: `step(*args)`, `step.uses_xla()`."""

    def __init__(self, function, xla):
        self._function, self._xla = function, bool(xla)

    def __call__(self, *args):
        return self._function(*args)

    def uses_xla(self):
        return self._xla


class XlaOrFallback:
    """`compiled` (an XLA function), replaced by `plain` if its first call fails.

    Only the first call can fall back: if `plain` fails on the same arguments too, the
    error is not XLA's and `plain`'s is raised. The fallback is said on stderr once.
    `uses_xla()` says which one runs (False before the first call has decided).
    """

    def __init__(self, compiled, plain, what):
        self._compiled, self._plain, self._what = compiled, plain, what
        self._chosen = None

    def __call__(self, *args):
        if self._chosen is not None:
            return self._chosen(*args)
        try:
            result = self._compiled(*args)
            self._chosen = self._compiled
        except _XLA_ERRORS as err:
            result = self._plain(*args)  # raises the real error if it is not XLA's
            self._chosen = self._plain
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            logs.note(f"tf_rnn: XLA could not compile {self._what} ({reason}); running it "
                      f"without XLA (--set jit_compile=false skips the attempt).")
        return result

    def uses_xla(self):
        return self._chosen is not None and self._chosen is self._compiled


class _ShapeCachedFunction:
    """Calls a tf.function through its concrete functions, looked up by argument shapes.

    tf.function's own dispatch (binding the arguments, building their trace types,
    finding the trace) measured ~0.3 ms a call on this 2-core machine, 10-20% of a
    seed-shape training step; this lookup costs microseconds (seed-shape train step:
    +11% to +23% chars/s measured, with and without XLA). `.function` is the tf.function.
    """

    def __init__(self, function, xla=False):
        self.function = function
        self._xla = xla
        self._concrete = {}

    def uses_xla(self):
        return self._xla

    def __call__(self, *args):
        args = [tf.convert_to_tensor(a) for a in args]
        if any(a.shape.rank is None for a in args):
            return self.function(*args)
        key = tuple((a.dtype, tuple(a.shape)) for a in args)
        concrete = self._concrete.get(key)
        if concrete is None:
            concrete = self._concrete[key] = self.function.get_concrete_function(*args)
        return concrete(*args)


def make_eval_step(model, jit_compile=False):
    """eval_step(inputs, targets, state) -> (summed cross-entropy in nats, new state).

    jit_compile=True compiles it with XLA: about 1.2-1.4x the characters per second of
    `evaluate` at the seed shapes, for a second or two of compiling per window shape.
    """

    def eval_step(inputs, targets, state):
        logits, new_state = model(inputs, state)
        nats = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.int32), logits=logits)
        return tf.reduce_sum(tf.cast(nats, tf.float64)), new_state

    return tf.function(eval_step, reduce_retracing=True, jit_compile=jit_compile)


def scoring_streams(ids, batch_size):
    """The cut of a text into `batch_size` scoring streams: the one every score uses.

    Stream b holds characters b·L .. (b + 1)·L of `ids`, L = (len(ids) - 1) // B: it
    predicts characters b·L + 1 .. (b + 1)·L, and consecutive streams share one
    character (one's last target is the next one's first input), so the B streams
    score every character from 1 to B·L once; the last (len(ids) - 1) % B are not
    scored. Every contender of a quality comparison is scored on this cut, so that
    all of them predict the same characters from the same context.

    Args:
      ids: (N,) the text's ids, N >= batch_size + 1.
      batch_size: B, the number of streams.

    Returns:
      (B, L + 1) ids: row b is stream b.
    """
    ids = np.asarray(ids)
    if len(ids) < batch_size + 1:
        raise DataError(f"A text of {len(ids)} characters cannot be cut into {batch_size} "
                        f"streams of at least 2 characters.")
    length = (len(ids) - 1) // batch_size  # predictions per stream
    return ids[np.arange(batch_size)[:, None] * length + np.arange(length + 1)[None, :]]


def evaluate(model, ids, batch_size, num_unrollings, eval_step=None):
    """Bits per character of `model` over a whole id sequence, state carried throughout.

    The text is cut into `batch_size` contiguous streams scored in parallel; each
    stream starts from the zero state and carries its state across windows, so every
    scored character is conditioned on all the text before it in its stream. Stream b
    predicts characters b·L + 1 .. (b + 1)·L with L = (len(ids) - 1) // batch_size, so
    the result is the mean over the B slices, each scored alone; the last
    (len(ids) - 1) % batch_size characters are not scored (`scoring_streams`).
    batch_size is lowered to len(ids) - 1 when the text is shorter.

    Returns:
      {"bpc", "loss" (nats per character), "chars" (characters scored)}.
    """
    ids = np.asarray(ids)
    if len(ids) < 2:
        raise DataError(f"Cannot evaluate a text of {len(ids)} character(s); need >= 2.")
    batch_size = max(1, min(batch_size, len(ids) - 1))
    streams = scoring_streams(ids, batch_size)  # (B, length + 1)
    length = streams.shape[1] - 1  # predictions per stream
    eval_step = eval_step or make_eval_step(model)
    state = model.zero_state(batch_size)
    total = 0.0
    for start in range(0, length, num_unrollings):
        window = streams[:, start:start + num_unrollings + 1]
        nats, state = eval_step(window[:, :-1], window[:, 1:], state)
        total += float(nats)
    chars = batch_size * length
    loss = total / chars
    return {"bpc": loss / LN2, "loss": loss, "chars": int(chars)}


def evaluate_windows(model, ids, count, length=256, seed=0, batch_size=32, eval_step=None):
    """Nats and bits per character the way nanoGPT's `estimate_loss` scores: `count`
    windows of `length` + 1 characters at random offsets of `ids` (seeded), each read
    from the zero state, the loss averaged over every position of every window (a
    window's first characters have little context: the figure is higher than
    `evaluate`'s, which carries the state through the text).

    Returns:
      {"bpc", "loss" (nats per character), "chars" (predictions), "windows", "length"}.
    """
    ids = np.asarray(ids)
    if len(ids) < length + 1:
        raise DataError(f"Cannot draw windows of {length} + 1 characters from a text of "
                        f"{len(ids)}.")
    starts = np.random.default_rng(seed).integers(0, len(ids) - length, count)
    eval_step = eval_step or make_eval_step(model)
    total = 0.0
    for first in range(0, count, batch_size):
        rows = starts[first:first + batch_size]
        windows = ids[rows[:, None] + np.arange(length + 1)[None, :]]  # (b, length + 1)
        nats, _ = eval_step(windows[:, :-1], windows[:, 1:], model.zero_state(len(rows)))
        total += float(nats)
    loss = total / (count * length)
    return {"bpc": loss / LN2, "loss": loss, "chars": int(count * length),
            "windows": int(count), "length": int(length)}

