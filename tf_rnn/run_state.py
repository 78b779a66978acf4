"""What a checkpoint of a training run holds (`Run`), writing it, and rolling it back.

A checkpoint holds the weights, the optimizer's slots and schedule position, the step,
the data cursors, the carried state, the learning-rate scale and recoveries of the
divergence guard, the RNG of the samples and the sums of the logging interval under way:
a killed run resumes as if it had never stopped. A write that fails (a full disk, a
file-size limit) becomes one `WriteFailed` error that says what is intact
(`save_checkpoint`, `write_events`).
"""

import os
import shutil

import keras
import tensorflow as tf

from tf_rnn import distribute
from tf_rnn import models
from tf_rnn import steps as steps_lib
from tf_rnn.runs import restore_newest
from tf_rnn.workdir import write_failed


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite after every allowed recovery."""


class Run:
    """Everything a checkpoint holds: weights, optimizer slots and schedule position,
    step, data cursors, carried state, learning-rate scale, recoveries and RNG state."""

    def __init__(self, config, alphabet_size, workdir, strategy=None):
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():  # model, optimizer and checkpoint live in its scope
            self._build(config, alphabet_size, workdir)

    def _build(self, config, alphabet_size, workdir):
        keras.utils.set_random_seed(config.seed)
        self.config = config
        self.model = models.build_model(config, alphabet_size)
        self.lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
        self.optimizer = steps_lib.make_optimizer(config, self.lr_scale)
        self.optimizer.build(self.model.trainable_variables)
        B = config.batch_size
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.recoveries = tf.Variable(0, dtype=tf.int64, trainable=False, name="recoveries")
        self.cursors = tf.Variable(tf.zeros([B], tf.int64), trainable=False, name="cursors")
        self.state = tf.Variable(self.model.zero_state(B), trainable=False, name="state")
        self.rng = tf.random.Generator.from_seed(config.seed)
        # Sums of the logging interval under way (loss, grad norm, clipped steps, steps):
        # the first interval after a resume then averages the same steps as without one.
        self.log_totals = tf.Variable(tf.zeros([4], tf.float64), trainable=False,
                                      name="log_totals")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step,
            recoveries=self.recoveries, cursors=self.cursors, state=self.state,
            lr_scale=self.lr_scale, rng=self.rng, log_totals=self.log_totals)
        self.manager = distribute.checkpoint_manager(  # only the chief keeps its files
            self.strategy, self.checkpoint, workdir.checkpoint_dir, config.keep_checkpoints)

    def restore(self):
        """Restores the newest checkpoint that loads; returns its path (None: there is none).

        Raises:
          WorkdirError: there are checkpoints, but none of them loads.
        """
        return restore_newest(self.checkpoint, self.manager.directory,
                              lambda status: status.assert_existing_objects_matched())

    def save(self, step, cursor_positions, state, log_totals=(0.0, 0.0, 0.0, 0.0)):
        self.step.assign(step)
        self.cursors.assign(cursor_positions)
        self.log_totals.assign(log_totals)
        self.state.assign(distribute.gather_rows(self.strategy, state))  # (B, S), global
        return save_checkpoint(self.manager, step)  # WriteFailed: disk full

    def roll_back(self, failed_step):
        """Restores the last good checkpoint and scales the learning rate by
        `recovery_lr_factor` (the divergence guard); returns the path restored.

        Raises:
          TrainingDiverged: `max_recoveries` roll-backs were already spent.
        """
        config = self.config
        recoveries = int(self.recoveries.numpy()) + 1
        scale = float(self.lr_scale.numpy()) * config.recovery_lr_factor
        if recoveries > config.max_recoveries:
            raise TrainingDiverged(
                f"The loss became non-finite at step {failed_step} and stayed so after "
                f"{config.max_recoveries} restore(s) of the last good checkpoint, the "
                f"learning rate scaled by {config.recovery_lr_factor:g} each time "
                f"(max_recoveries, recovery_lr_factor). That checkpoint is kept in "
                f"{self.manager.directory}: train again with a lower --set "
                f"learning_rate=... to continue from it.")
        path = self.restore()
        self.recoveries.assign(recoveries)
        self.lr_scale.assign(scale)
        return path


def _checkpoint_bytes(directory, path):
    """The size of the checkpoint `path`'s files (its .index and .data-*), or None."""
    if not path:
        return None
    prefix = os.path.basename(path)
    sizes = [os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
             if f.startswith(prefix + ".")]
    return sum(sizes) or None


def save_checkpoint(manager, step):
    """`manager.save(checkpoint_number=step)`; a failed write becomes one clear error.

    TensorFlow writes a checkpoint into `ckpt-N_temp/` and renames it into place before
    it names it in the index, so the previous checkpoint is untouched by a failure; the
    partial files are removed here to give the space back.

    Raises:
      WriteFailed: the checkpoint could not be written (a full disk, a size limit).
    """
    directory = str(manager.directory)
    previous = manager.latest_checkpoint
    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as err:
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.startswith(f"ckpt-{step}_temp") or name.startswith(f"ckpt-{step}."):
                    target = os.path.join(directory, name)
                    shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
        then = (f"The previous checkpoint {os.path.basename(previous)} is intact: free some "
                f"space and run the same command to resume from it." if previous else
                "No checkpoint was written: free some space and run the command again.")
        raise write_failed(f"checkpoint ckpt-{step} to", directory, err,
                           _checkpoint_bytes(directory, previous), then) from None


def write_events(pending, writer, events_dir, latest_checkpoint):
    """`pending.write(writer)`; a failed write becomes one clear error.

    Raises:
      WriteFailed: the event file could not be written. Events past the checkpoint the
        next run resumes from are dropped by that run (`summaries.purge_after`).
    """
    try:
        pending.write(writer)
    except (tf.errors.OpError, OSError) as err:
        then = (f"The last checkpoint {os.path.basename(latest_checkpoint)} is intact: "
                f"free some space and run the same command to resume from it."
                if latest_checkpoint else "")
        raise write_failed("TensorBoard events to", events_dir, err,
                           pending.approx_bytes(), then) from None
