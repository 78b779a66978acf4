"""What a checkpoint of a training run holds (`Run`), and rolling it back.

A checkpoint holds the weights, the optimizer's slots and schedule position, the step,
the data cursors, the carried state, the learning-rate scale and recoveries of the
divergence guard, the RNG of the samples and the sums of the logging interval under way:
a killed run resumes as if it had never stopped.
"""

import keras
import tensorflow as tf

from tf_rnn import distribute
from tf_rnn import models
from tf_rnn import preemption
from tf_rnn import steps as steps_lib
from tf_rnn.runs import restore_newest


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
        return preemption.save_checkpoint(self.manager, step)  # WriteFailed: disk full

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
