"""tf.distribute for the training loop: strategies by name, the global batch split over
replicas, a distributed train step, and chief-only checkpoints and summaries.

The global batch of B cursor rows is split into R contiguous blocks: replica r (global
replica id, counting across workers) owns rows [r·B/R, (r+1)·B/R) of every window and of
the carried state, so each row's text and state stay continuous exactly as on one
device. Each replica scales its mean loss by 1/R, so the all-reduced (summed) loss and
gradients are those of the global mean; clipping runs on the all-reduced gradients,
hence the update equals the single-device one up to float summation order.

Keras 3 (TensorFlow backend) notes, checked against keras 3.15 / TF 2.21:
  * `optimizer.apply` in a replica context always all-reduces (SUMs) the gradients it
    receives (`TFOptimizer._backend_update_step`); there is no switch to skip it, and its
    own `clipnorm`/`global_clipnorm` clip *before* that all-reduce, per replica. So the
    step all-reduces first (needed for the global-norm clip), clips, and hands the
    optimizer the clipped gradient divided by R: its SUM gives back the clipped global
    gradient (exactly for R a power of two). The cost is a second all-reduce of a
    weight-sized tensor per step: ~100 kB for the text8 presets.
  * Called in a cross-replica context with per-replica gradients it fails ("Type
    PerReplica is not supported as a gradient source or gradient target"), and called
    inside a `tf.cond` *within* `strategy.run` it fails under MirroredStrategy on CPUs
    ("`merge_call` called while defining a new graph or a tf.function ..."). So the
    divergence guard's `tf.cond` sits in the cross-replica context and runs a second
    `strategy.run` that applies the update.
"""

import os
import shutil
import tempfile
import weakref

import tensorflow as tf

from tf_rnn.base.config import STRATEGIES
from tf_rnn.base.errors import ConfigError
from tf_rnn.engine import steps as steps_lib

CPU_DEVICES_ENV = "TF_RNN_CPU_DEVICES"  # mirrored without a GPU: this many logical CPUs
# One strategy per kind and devices in a process: each instance numbers its collectives
# from the same start, so a second MirroredStrategy over the same devices collides with
# the first ("Collective instance 112 expected type 2 and data_type 3 but got type 0 and
# data_type 1"), e.g. when a program calls `train` twice.
_STRATEGIES = {}


def make_strategy(name="default", cpu_devices=None):
    """The `tf.distribute.Strategy` called `name`.

    Args:
      name: "default" — `tf.distribute.get_strategy()` (one device, or the strategy whose
        scope the caller is in); "mirrored" — `MirroredStrategy` over every visible GPU,
        or, with no GPU, over `cpu_devices` logical CPU devices (one CPU when 0/None);
        "multiworker" — `MultiWorkerMirroredStrategy` of the cluster in `TF_CONFIG`.
      cpu_devices: logical CPU devices for "mirrored" on a machine without GPUs; None
        reads the environment variable TF_RNN_CPU_DEVICES (unset: 0).

    Raises:
      ValueError: an unknown name, or a strategy that can no longer be set up because
        TensorFlow already initialised its devices in this process.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"Received an invalid value for `strategy`, expected one of "
                          f"{list(STRATEGIES)}, got {name!r}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        key, make = (name,), tf.distribute.MultiWorkerMirroredStrategy
    elif tf.config.list_physical_devices("GPU"):
        key, make = (name, "gpus"), tf.distribute.MirroredStrategy  # all visible GPUs
    else:
        if cpu_devices is None:
            cpu_devices = _env_int(CPU_DEVICES_ENV)
        devices = _logical_cpus(cpu_devices) if cpu_devices and cpu_devices > 1 else ["/cpu:0"]
        key, make = (name, *devices), lambda: tf.distribute.MirroredStrategy(devices)
    if key not in _STRATEGIES:
        try:
            _STRATEGIES[key] = make()
        except (RuntimeError, ValueError) as err:
            hint = (" (MultiWorkerMirroredStrategy must be created before TensorFlow runs "
                    "anything in the process; its cluster comes from TF_CONFIG)"
                    if name == "multiworker" else "")
            raise ConfigError(f"Cannot start the {name!r} strategy{hint}: {err}") from None
    return _STRATEGIES[key]


def strategy_for(config):
    """`make_strategy(config.strategy)`, checked against `config.batch_size`.

    Raises:
      ValueError: the global batch does not split evenly over the replicas.
    """
    strategy = make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(f"Received an invalid value for config field `batch_size`: the "
                          f"global batch of {config.batch_size} rows does not split evenly "
                          f"over {replicas} replicas; use a multiple of {replicas}.")
    return strategy


def _env_int(name):
    text = os.environ.get(name, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ConfigError(f"Environment variable {name} must be a non-negative integer, "
                          f"got {text!r}.")
    return int(text)


def _logical_cpus(count):
    """Splits the first physical CPU into `count` logical devices; returns their names."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:  # devices already initialised: fine only if they match
        pass
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) != count:
        raise ConfigError(f"Asked for {count} logical CPU devices ({CPU_DEVICES_ENV}), but "
                          f"TensorFlow already initialised {len(devices)} in this process; "
                          f"set it before TensorFlow starts (a fresh process).")
    return devices


def is_default(strategy):
    """True for TensorFlow's default (no-op, single-device) strategy."""
    with strategy.scope():
        return not tf.distribute.has_strategy()


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on a non-chief worker
    of a multi-worker cluster (task "chief", else "worker" 0, is the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def describe(strategy):
    """One line: the strategy, its replicas and this process's role."""
    resolver = getattr(strategy, "cluster_resolver", None)
    role = ""
    if resolver is not None and resolver.task_type:
        role = (f", task {resolver.task_type}:{resolver.task_id}"
                f"{' (chief)' if is_chief(strategy) else ''}")
    name = ("MultiWorkerMirroredStrategy"
            if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            else type(strategy).__name__)
    return f"{name}: {strategy.num_replicas_in_sync} replica(s) in sync{role}"


def split_rows(strategy, value):
    """Gives replica r rows [r·B/R, (r+1)·B/R) of `value` (B, ...); identity on one device.

    Raises:
      ValueError: B does not divide by the number of replicas R.
    """
    if is_default(strategy):
        return value
    replicas = strategy.num_replicas_in_sync
    batch = int(value.shape[0])
    if batch % replicas:
        raise ConfigError(f"Received an invalid value for config field `batch_size`: the "
                          f"global batch of {batch} rows does not split evenly over "
                          f"{replicas} replicas; use a multiple of {replicas}.")
    rows = batch // replicas

    def rows_of(context):
        r = context.replica_id_in_sync_group
        return value[r * rows:(r + 1) * rows]

    return strategy.experimental_distribute_values_from_function(rows_of)


class ReplicaRows:
    """The carried state as the replicas hold it: replica r's rows [r·B/R, (r+1)·B/R).

    `value` is what `strategy.run` returned: a PerReplica value, or a plain tensor when
    this process has a single replica (hence the wrapper: the type alone cannot tell a
    replica's rows from a global batch). `gather_rows` makes it global again.
    """

    def __init__(self, value):
        self.value = value


def gather_rows(strategy, value):
    """The global (B, ...) tensor of `ReplicaRows` (the inverse of the split); any other
    value (a global tensor or variable) comes back as a tensor.

    Under MultiWorkerMirroredStrategy this is a collective: every worker must call it.
    """
    if isinstance(value, ReplicaRows):
        return strategy.gather(value.value, axis=0)
    return tf.convert_to_tensor(value)


def make_train_step(strategy, model, optimizer, clip_norm=0.0, clip_value=0.0,
                    loss_fn=steps_lib.lm_loss, jit_compile=False, seed=0):
    """`steps.make_train_step` under `strategy`; the same contract.

    train_step(inputs (B, T), targets (B, T), state) -> (metrics, new_state), with
    inputs/targets the *global* batch (NumPy or tensors; each replica takes its rows)
    and `state` either global (B, S) — split on the way in — or the `ReplicaRows` a
    previous call returned (kept on the replicas' devices; `gather_rows` makes them
    global). Metrics are global: the loss is the mean over all B·T predictions and
    grad_norm the norm of the all-reduced gradient before clipping, on every replica and
    worker alike. The model and optimizer must have been created in `strategy.scope()`.

    On the default strategy this is `steps.make_train_step` itself.
    """
    if is_default(strategy):
        return steps_lib.make_train_step(model, optimizer, clip_norm, clip_value, loss_fn,
                                         jit_compile=jit_compile, seed=seed)
    replicas = strategy.num_replicas_in_sync
    variables = model.trainable_variables
    if not optimizer.built:
        with strategy.scope():
            optimizer.build(variables)
    sum_ = tf.distribute.ReduceOp.SUM

    def local_gradients(inputs, targets, state, replica):
        with tf.GradientTape() as tape:
            outputs, new_state = model(inputs, state, **steps_lib.dropout_kwargs(
                model, optimizer, seed, replica, replicas))
            loss = loss_fn(outputs, targets) / replicas  # summed over replicas: global mean
        return loss, tape.gradient(loss, variables), new_state

    if jit_compile:  # the replica's own work only: no collective inside XLA
        local_gradients = tf.function(local_gradients, jit_compile=True)

    def replica_gradients(inputs, targets, state):
        context = tf.distribute.get_replica_context()
        loss, grads, new_state = local_gradients(
            inputs, targets, state, tf.cast(context.replica_id_in_sync_group, tf.int64))
        # One collective for the loss and every gradient: the same values everywhere,
        # so every replica and worker takes the same branch of the guard below.
        loss, *grads = context.all_reduce(sum_, [loss, *grads])
        grads, grad_norm = steps_lib.clip_gradients(grads, clip_norm, clip_value)
        metrics = steps_lib.guarded_metrics(loss, grad_norm, clip_norm)
        return metrics, [g / replicas for g in grads], new_state  # the optimizer SUMs

    def replica_apply(grads):
        optimizer.apply(grads, variables)

    @tf.function
    def distributed_step(inputs, targets, state):
        metrics, grads, new_state = strategy.run(replica_gradients,
                                                 args=(inputs, targets, state))
        # Already reduced: every replica holds the same values; take the first local one.
        metrics = {k: strategy.experimental_local_results(v)[0] for k, v in metrics.items()}

        def apply():
            strategy.run(replica_apply, args=(grads,))
            return tf.constant(True)

        tf.cond(metrics["finite"], apply, lambda: tf.constant(False))
        return metrics, new_state

    def train_step(inputs, targets, state):
        if isinstance(state, ReplicaRows):
            state = state.value
        else:  # a global state: split, each block on its replica's device like the
            # states the step returns (else the next call re-instantiates the function)
            state = strategy.run(tf.identity, args=(split_rows(strategy, state),))
        metrics, new_state = distributed_step(
            split_rows(strategy, inputs), split_rows(strategy, targets), state)
        return metrics, ReplicaRows(new_state)

    return steps_lib.StepFunction(train_step, xla=jit_compile)  # XLA: the local part


class WorkerCheckpointManager:
    """The checkpoint manager of a non-chief worker.

    Every worker takes part in each save (the pattern of TensorFlow's multi-worker guide:
    saving distributed variables may involve collectives), but only the chief's files are
    kept: this one writes into a fresh temporary directory and deletes it at once. It
    restores from the chief's directory, which must therefore be reachable (a shared
    filesystem) for a restart.
    """

    def __init__(self, checkpoint, directory, task_id=None):
        self.checkpoint = checkpoint
        self.directory = str(directory)
        self._prefix = f"tf_rnn-worker{task_id if task_id is not None else ''}-"

    @property
    def latest_checkpoint(self):
        return tf.train.latest_checkpoint(self.directory)

    def save(self, checkpoint_number=None):
        """Saves aside and discards; returns the path the chief writes this save to."""
        scratch = tempfile.mkdtemp(prefix=self._prefix)
        try:
            path = tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save(
                checkpoint_number=checkpoint_number)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return os.path.join(self.directory, os.path.basename(path))


def checkpoint_manager(strategy, checkpoint, directory, max_to_keep):
    """A `tf.train.CheckpointManager` on the chief, a `WorkerCheckpointManager` elsewhere."""
    if is_chief(strategy):
        return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=max_to_keep)
    return WorkerCheckpointManager(checkpoint, directory, strategy.cluster_resolver.task_id)


def summary_writer(strategy, logdir):
    """The chief's TensorBoard event writer; a no-op writer on the other workers."""
    if is_chief(strategy):
        return tf.summary.create_file_writer(str(logdir))
    return tf.summary.create_noop_writer()


def preemption_handler(strategy, save_fn, exit_fn):
    """TensorFlow's `PreemptionCheckpointHandler` for a multi-worker cluster, else None.

    A SIGTERM on any worker makes every worker save at the same step: each calls
    `handler.save_checkpoint_if_preempted()` once per step; when the cluster has agreed
    on the step, it calls `save_fn()` (our checkpoint, at the current step) and then
    `exit_fn()`. The handler's own checkpoint holds only its step counter, in a scratch
    directory removed with it: the run's checkpoints stay ours.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if (not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            or resolver is None or not resolver.cluster_spec().jobs):
        return None
    scratch = tempfile.mkdtemp(prefix="tf_rnn-preemption-")
    handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, tf.train.Checkpoint(), os.path.join(scratch, "counter"),
        tf.distribute.experimental.TerminationConfig(exit_fn=exit_fn, save_fn=save_fn))
    weakref.finalize(handler, shutil.rmtree, scratch, True)
    return handler
