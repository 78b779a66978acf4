"""The training loop shared by every character model.

`train(config, workdir, data)` checks and locks the run's directory, loads the corpus
and hands the run to a `tf_rnn.train.trainer.Trainer`, which builds (or resumes) it and trains
it; `opened` is the same without the training, for a caller that trains several runs in
turns (`experiments.quality`).
"""

import contextlib

from tf_rnn.base import logs
from tf_rnn.engine import distribute
from tf_rnn.run import integrity, preemption, resources
from tf_rnn.run.directory import Workdir
from tf_rnn.run.reading import load_corpus_for, training_data
from tf_rnn.train.trainer import Trainer


def _log(message):
    logs.note(message)


def train(config, workdir, data=None, *, allow_new_corpus=False, cache_dir=None,
          download_kwargs=None, progress=True):
    """Trains (or resumes) the run in `workdir`, holding its lock; its final figures.

    Args:
      config: a validated `Config`.
      workdir: the run's directory; a checkpoint there is resumed.
      data: a corpus path. None: a resumed run's own corpus (recorded in its run.json),
        for a new run text8 (downloaded into `cache_dir` if absent).
      allow_new_corpus: resume on `data` even if it is another corpus than the run's.
      cache_dir, download_kwargs: where and how text8 is fetched (`data.load_corpus`).
      progress: a tqdm bar on stderr; False: one log line every `log_every` steps.

    Returns:
      {"step", "loss", "train_bpc", "valid_bpc", "chars_per_sec" (the train step's
       alone, over this process's steps but its first), "elapsed_sec", "recoveries",
       "sample", "workdir", "jit_compile" (whether XLA ran the step),
       "first_step_sec" (mostly tracing and compiling; None if no step ran)}.

    Raises:
      WorkdirError: `data` is another corpus than the run's (`runs.training_data`), the
        run is past the steps asked, or its files conflict with `config`.
      ModelTooLarge: the model cannot fit in this machine's memory (`tf_rnn.run.resources`).
      WorkdirBusy: another live process trains (or exports) in `workdir`.
      Preempted: SIGTERM or SIGINT stopped the run after a checkpoint at its step.
      WriteFailed: a file of the run could not be written (a full disk); the previous
        checkpoint is intact.
      TrainingDiverged: the loss stayed non-finite after every allowed recovery.
    """
    with opened(config, workdir, data, allow_new_corpus=allow_new_corpus,
                cache_dir=cache_dir, download_kwargs=download_kwargs,
                progress=progress) as trainer:
        return trainer.train()


@contextlib.contextmanager
def opened(config, workdir, data=None, *, allow_new_corpus=False, cache_dir=None,
           download_kwargs=None, progress=True, timer=None):
    """The run's `Trainer`, its workdir checked and locked while it is open (`train`'s
    arguments; `timer`: the budget's clock, `TimeBudget`'s). `train` trains it at once;
    `experiments.quality` trains several in turns (`Trainer.train_while`)."""
    workdir = Workdir(workdir)
    integrity.check_files(workdir)
    workdir.check_compatible(config)
    strategy = distribute.strategy_for(config)  # before anything else runs TensorFlow
    # (after the strategy: MultiWorkerMirroredStrategy must come before any TF op)
    integrity.check_against_checkpoint(workdir, config, workdir.load_vocab())
    data = training_data(workdir, data, allow_new_corpus)
    if config.strategy != "default":
        _log(distribute.describe(strategy))
    lock = (preemption.WorkdirLock(workdir.path, "training")
            if distribute.is_chief(strategy)  # the others write nothing
            else contextlib.nullcontext())
    with lock:
        corpus = load_corpus_for(config, workdir, data, cache_dir, download_kwargs,
                                 progress, same_vocab=True)
        resources.check_fits(config, corpus.vocab.size)  # before the model is built
        yield Trainer(config, workdir, data, corpus, strategy, progress, timer)
