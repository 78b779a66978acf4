"""Checks that a work directory's files agree before a command uses them.

A hand-edited `config.json`, `vocab.json` or `run.json` must stop `train`, `eval`,
`sample` and `export` with one line naming the file and the problem, before anything is
written. The JSON files check themselves when read (`Workdir.load_*`); what no single
file can tell is whether the vocabulary and the model settings still fit the checkpoint,
which `check_against_checkpoint` compares by variable shapes.
"""

import collections

import tensorflow as tf

from tf_rnn import models
from tf_rnn.base.errors import WorkdirError


def check_files(workdir):
    """Reads config.json, vocab.json and run.json of `workdir` (those present).

    Raises:
      WorkdirError / DataError: one of them is unreadable, naming it and the problem.
    """
    if workdir.config_path.is_file():
        workdir.load_config()
    workdir.load_vocab()
    workdir.load_run_info()


def _checkpoint_shapes(directory):
    """Sorted shapes of the model variables of the newest checkpoint (None: unreadable)."""
    try:
        path = tf.train.latest_checkpoint(str(directory))
        if path is None:
            return None, None
        shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):  # a damaged checkpoint: restore reports it
        return None, None
    return path, collections.Counter(
        tuple(shape) for name, shape in shapes.items()
        if name.startswith("model/") and name.endswith("/.ATTRIBUTES/VARIABLE_VALUE"))


def _model_shapes(config, alphabet_size):
    model = models.build_model(config, alphabet_size)
    # Its weights, as the checkpoint holds them: not the state of a Keras cell's random
    # seed generator (`keras_cell`), which is no weight and is not saved.
    return collections.Counter(tuple(v.shape) for v in model.weights)


def check_against_checkpoint(workdir, config, vocab):
    """Raises WorkdirError if a model of `config` over `vocab` cannot hold the newest
    checkpoint's weights, naming vocab.json (a vocabulary of another size) or
    config.json (other model settings)."""
    path, saved = _checkpoint_shapes(workdir.checkpoint_dir)
    if not saved or vocab is None or _model_shapes(config, vocab.size) == saved:
        return
    name = path.rsplit("/", 1)[-1]
    dims = sorted({d for shape in saved for d in shape if d != vocab.size})
    for size in dims:
        if _model_shapes(config, size) == saved:
            raise WorkdirError(
                f"{str(workdir.vocab_path)!r} disagrees with the checkpoint: it holds "
                f"{vocab.size} characters, but {name} was trained on {size}. The file was "
                f"edited or replaced: put back the run's vocabulary, or use another "
                f"--workdir. Nothing was changed.")
    raise WorkdirError(
        f"{str(workdir.config_path)!r} disagrees with the checkpoint: a {config.model!r} "
        f"model with num_nodes={config.num_nodes} over {vocab.size} characters cannot hold "
        f"the weights of {name}. The file was edited: put back the run's settings, or use "
        f"another --workdir. Nothing was changed.")
