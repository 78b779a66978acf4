"""The training loop shared by every character model.

`train(config, workdir, data)` loads the corpus, builds (or resumes) the run, and
loops over compiled truncated-BPTT steps with tqdm progress, TensorBoard summaries,
periodic validation and samples, checkpoints, and a divergence guard.
"""

import math
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tqdm

from tf_rnn import data as data_lib
from tf_rnn import distribute
from tf_rnn import models
from tf_rnn import sampling
from tf_rnn import steps as steps_lib
from tf_rnn.workdir import Workdir


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
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step,
            recoveries=self.recoveries, cursors=self.cursors, state=self.state,
            lr_scale=self.lr_scale, rng=self.rng)
        self.manager = distribute.checkpoint_manager(  # only the chief keeps its files
            self.strategy, self.checkpoint, workdir.checkpoint_dir, config.keep_checkpoints)

    def restore(self):
        """Restores the latest checkpoint; returns its path (None when there is none)."""
        path = self.manager.latest_checkpoint
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step, cursor_positions, state):
        self.step.assign(step)
        self.cursors.assign(cursor_positions)
        self.state.assign(distribute.gather_rows(self.strategy, state))  # (B, S), global
        return self.manager.save(checkpoint_number=step)


def load_model(workdir):
    """The model of a work directory with its latest weights, and its vocab and config."""
    workdir = Workdir(workdir)
    config = workdir.load_config()
    vocab = workdir.load_vocab()
    if vocab is None or not workdir.has_checkpoint():
        raise data_lib.DataError(f"No checkpoint in {str(workdir.path)!r}: train first "
                                 f"(`tf-rnn train --workdir {workdir.path}`).")
    model = models.build_model(config, vocab.size)
    path = tf.train.latest_checkpoint(str(workdir.checkpoint_dir))
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model, vocab, config


def load_corpus_for(config, workdir, data=None, cache_dir=None, download_kwargs=None,
                    progress=True):
    """The corpus of a run, encoded with the work directory's vocabulary if it has one."""
    vocab = workdir.load_vocab() or config.vocab
    return data_lib.load_corpus(data, cache_dir=cache_dir, vocab=vocab,
                                normalize=config.normalize, unknown=config.unknown,
                                download_kwargs=download_kwargs, progress=progress)


def total_steps(config, cursors):
    if config.epochs > 0:
        return max(1, math.ceil(config.epochs * cursors.steps_per_epoch))
    return config.steps


def _log(message):
    tqdm.tqdm.write(message, file=sys.stderr)


def train(config, workdir, data=None, *, cache_dir=None, download_kwargs=None,
          progress=True):
    """Trains (or resumes) the run in `workdir`; returns its final figures.

    Args:
      config: a validated `Config`.
      workdir: the run's directory; a checkpoint there is resumed.
      data: a corpus path, or None for text8 (downloaded into `cache_dir` if absent).

    Returns:
      {"step", "loss", "train_bpc", "valid_bpc", "chars_per_sec", "elapsed_sec",
       "recoveries", "sample", "workdir"}.
    """
    workdir = Workdir(workdir)
    workdir.check_compatible(config)
    strategy = distribute.strategy_for(config)  # before anything else runs TensorFlow
    if config.strategy != "default":
        _log(distribute.describe(strategy))
    corpus = load_corpus_for(config, workdir, data, cache_dir, download_kwargs, progress)
    cursors = data_lib.BatchCursors(corpus.train, config.batch_size, config.num_unrollings)
    workdir.create()
    workdir.save_vocab(corpus.vocab)
    workdir.save_config(config)
    workdir.save_run_info({"data": corpus.source if data is not None else None})

    run = Run(config, corpus.vocab.size, workdir, strategy)
    if run.restore():
        cursors.set_state(run.cursors.numpy())
        _log(f"Resumed {workdir.path} at step {int(run.step.numpy())}.")
    else:
        run.save(0, cursors.get_state(), run.state)
    step, state = int(run.step.numpy()), tf.convert_to_tensor(run.state)
    train_step = distribute.make_train_step(
        strategy, run.model, run.optimizer, config.clip_norm, config.clip_value,
        jit_compile=config.jit_compile)
    eval_step = steps_lib.make_eval_step(run.model)
    generator = sampling.make_generator(run.model.step)
    writer = distribute.summary_writer(strategy, workdir.events_dir)  # no-op off the chief
    last = total_steps(config, cursors)
    window_chars = config.batch_size * config.num_unrollings
    totals = _new_totals()
    result = {"step": step, "loss": None, "train_bpc": None, "valid_bpc": None,
              "chars_per_sec": None, "recoveries": int(run.recoveries.numpy()),
              "sample": None, "workdir": str(workdir.path)}
    run_chars, run_time, started, warm = 0, 0.0, time.perf_counter(), False

    def validate():
        ids = corpus.valid[:config.eval_chars] if config.eval_chars else corpus.valid
        if len(ids) < 2:
            return None
        return steps_lib.evaluate(run.model, ids, config.eval_batch_size,
                                  config.num_unrollings, eval_step)["bpc"]

    def draw_sample():
        seed = int(run.rng.uniform([], maxval=2**31 - 1, dtype=tf.int64))
        return sampling.sample(run.model, corpus.vocab, "", config.sample_length,
                               seed=seed, generator=generator)[0]

    bar = tqdm.tqdm(total=last, initial=step, disable=not progress, unit="step",
                    dynamic_ncols=True, file=sys.stderr, desc="train")
    with writer.as_default(), bar:
        while step < last:
            t0 = time.perf_counter()
            window = cursors.next()
            metrics, new_state = train_step(window[:, :-1], window[:, 1:], state)
            if not bool(metrics["finite"]):
                step, state = _recover(run, cursors, config, step)
                bar.n = step
                continue
            state = new_state
            step += 1
            loss = float(metrics["loss"])
            elapsed = time.perf_counter() - t0
            totals["loss"] += loss
            totals["grad_norm"] += float(metrics["grad_norm"])
            totals["clipped"] += int(metrics["clipped"])
            totals["n"] += 1
            totals["time"] += elapsed
            if warm:  # the first step of a process traces and compiles: not counted
                run_chars, run_time = run_chars + window_chars, run_time + elapsed
            warm = True
            bar.update(1)
            if step % config.log_every == 0 or step == last:
                n = totals["n"]
                mean_loss = totals["loss"] / n
                cps = window_chars * n / max(totals["time"], 1e-9)
                lr = steps_lib.current_learning_rate(run.optimizer)
                tf.summary.scalar("train/loss", mean_loss, step=step)
                tf.summary.scalar("train/bpc", mean_loss / steps_lib.LN2, step=step)
                tf.summary.scalar("train/learning_rate", lr, step=step)
                tf.summary.scalar("train/grad_norm", totals["grad_norm"] / n, step=step)
                tf.summary.scalar("train/clip_fraction", totals["clipped"] / n, step=step)
                tf.summary.scalar("train/chars_per_sec", cps, step=step)
                bar.set_postfix(loss=f"{mean_loss:.3f}", bpc=f"{mean_loss / steps_lib.LN2:.3f}",
                                chars_s=f"{cps:,.0f}", refresh=False)
                result.update(loss=mean_loss, train_bpc=mean_loss / steps_lib.LN2)
                totals = _new_totals()
            if config.eval_every and step % config.eval_every == 0 and step != last:
                bpc = validate()
                if bpc is not None:
                    tf.summary.scalar("valid/bpc", bpc, step=step)
                    _log(f"step {step}: valid bpc {bpc:.4f}")
            if config.sample_every and step % config.sample_every == 0 and step != last:
                text = draw_sample()
                tf.summary.text("samples/text", text, step=step)
                _log(f"step {step} sample: {text!r}")
            if step % config.checkpoint_every == 0 or step == last:
                run.save(step, cursors.get_state(), state)
        bpc = validate()
        if bpc is not None:
            tf.summary.scalar("valid/bpc", bpc, step=step)
        text = draw_sample()
        tf.summary.text("samples/text", text, step=step)
        writer.flush()
    result.update(step=step, valid_bpc=bpc, sample=text,
                  chars_per_sec=run_chars / run_time if run_time else None,
                  elapsed_sec=time.perf_counter() - started,
                  recoveries=int(run.recoveries.numpy()))
    return result


def _new_totals():
    """Sums over one logging interval."""
    return {"loss": 0.0, "grad_norm": 0.0, "clipped": 0, "n": 0, "time": 0.0}


def _recover(run, cursors, config, step):
    """Divergence guard: back to the last good checkpoint with a lower learning rate."""
    recoveries = int(run.recoveries.numpy()) + 1
    scale = float(run.lr_scale.numpy()) * config.recovery_lr_factor
    if recoveries > config.max_recoveries:
        raise TrainingDiverged(
            f"The loss became non-finite at step {step + 1} and stayed so after "
            f"{config.max_recoveries} restore(s) with the learning rate lowered by "
            f"{config.recovery_lr_factor} each time. The last good checkpoint is kept in "
            f"{run.manager.directory}; lower --set learning_rate=... and train again.")
    path = run.restore()
    run.recoveries.assign(recoveries)
    run.lr_scale.assign(scale)
    cursors.set_state(run.cursors.numpy())
    restored = int(run.step.numpy())
    _log(f"Non-finite loss or gradient at step {step + 1}: weights not updated; restored "
         f"{path} (step {restored}) and scaled the learning rate by {scale:g} "
         f"(recovery {recoveries}/{config.max_recoveries}).")
    return restored, tf.convert_to_tensor(run.state)
