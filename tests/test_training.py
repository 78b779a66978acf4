"""The training loop (`tf_rnn.train.training.train`): what its checkpoints hold."""

import numpy as np
import pytest
import tensorflow as tf
from support import write_corpus

from tf_rnn import data as data_lib, models
from tf_rnn.base import config as config_lib
from tf_rnn.run import reading
from tf_rnn.run.directory import Workdir
from tf_rnn.train import training

STEPS = 5


def saved(checkpoint, name):
    return tf.train.load_checkpoint(str(checkpoint)).get_tensor(
        f"{name}/.ATTRIBUTES/VARIABLE_VALUE")


# Arch 1 and the S3 Elman char-RNN with a Glorot/orthogonal start (the seed inits leave
# most relus off, or W_hh = 0.01·I forgets at once) and short windows: the state after a
# window then depends on the state it was entered with. (Arch 2's state is the window's
# last character, the same however the window was entered.)
@pytest.mark.slow
@pytest.mark.parametrize("preset,changes", [("text8_arch1", {}),
                                            ("charrnn_adagrad", {"epochs": 0.0})])
def test_saved_state_is_the_model_run_over_the_windows_seen(tmp_path, preset, changes):
    """After each of STEPS steps the checkpoint's carried state is what the model, with the
    weights of the step before, gives over exactly the windows trained on so far, each
    entered with the state the previous one left: truncated BPTT over one text."""
    config = config_lib.get_preset(preset).replace(
        num_nodes=8, batch_size=4, num_unrollings=3, steps=STEPS, init="glorot", checkpoint_every=1,
        keep_checkpoints=STEPS + 1, log_every=1, eval_every=0, sample_every=0,
        sample_length=5, **changes)
    corpus_path = write_corpus(tmp_path / "corpus.txt", 6000)
    training.train(config, tmp_path / "run", str(corpus_path), progress=False)

    workdir = Workdir(tmp_path / "run")
    corpus = reading.load_corpus_for(config, workdir, str(corpus_path))
    cursors = data_lib.BatchCursors(corpus.train, config.batch_size, config.num_unrollings)
    model = models.build_model(config, corpus.vocab.size)
    ckpt = tf.train.Checkpoint(model=model)
    state = model.zero_state(config.batch_size)
    assert not saved(workdir.checkpoint_dir / "ckpt-0", "state").any()
    for k in range(1, STEPS + 1):
        ckpt.restore(str(workdir.checkpoint_dir / f"ckpt-{k - 1}")).expect_partial()
        window = cursors.next()  # (B, T + 1), the k-th window the run trained on
        _, state = model(tf.constant(window[:, :-1]), state)
        _, fresh = model(tf.constant(window[:, :-1]), model.zero_state(config.batch_size))
        got = saved(workdir.checkpoint_dir / f"ckpt-{k}", "state")
        np.testing.assert_array_equal(saved(workdir.checkpoint_dir / f"ckpt-{k}", "cursors"),
                                      cursors.get_state())
        np.testing.assert_allclose(got, state.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
        assert np.all(np.abs(got).max(axis=1) > 0.01), k  # every stream's state is alive
        if k > 1:  # the carried state is not the window's own from zero
            assert np.abs(got - fresh.numpy()).max() > 0.01, k
