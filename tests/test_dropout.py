"""Dropout on the non-recurrent connection (config `dropout`): masks, math, training, resume."""

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config
from support import write_corpus

from tf_rnn import cli, models
from tf_rnn.base import config
from tf_rnn.engine import steps
from tf_rnn.run import reading

MODELS = {
    "arch1_concat": dict(combine="concat", activation="relu"),
    "arch1_sum": dict(combine="sum", activation="tanh"),
    "arch1_mul": dict(combine="mul", activation="tanh"),
    "elman": None,
}


def _model(name, dropout, alphabet=5, n=6):
    keras_seed = 7
    tf.keras.utils.set_random_seed(keras_seed)
    kwargs = dict(init="glorot", dropout=dropout, dtype="float64")
    if MODELS[name] is None:
        return models.ElmanModel(alphabet, n, **kwargs)
    return models.Arch1Model(alphabet, n, **MODELS[name], **kwargs)


def test_dropout_is_a_validated_config_field():
    assert config.Config().dropout == 0.0
    for bad in (-0.1, 1.0, 1.5, float("nan"), "0.3", True):
        with pytest.raises(ValueError, match="`dropout`"):
            config.Config(dropout=bad)
    with pytest.raises(ValueError, match="arch2"):
        config.Config(model="arch2", dropout=0.2)
    with pytest.raises(ValueError, match="Arch 2.*arch1, elman and indrnn"):
        models.Arch2Model(5, 4, dropout=0.2)
    with pytest.raises(ValueError, match="`dropout`"):
        models.Arch1Model(5, 4, dropout=1.0)
    # A config written before the field existed means no dropout.
    older = {k: v for k, v in config.Config(combine="mul").to_dict().items() if k != "dropout"}
    assert config.Config.from_dict(older).dropout == 0.0
    assert models.build_model(config.Config(dropout=0.3), 27).dropout == 0.3


@pytest.mark.parametrize("name", MODELS)
def test_get_config_round_trip_keeps_the_rate(name):
    model = _model(name, 0.35)
    again = type(model).from_config(model.get_config())
    assert again.dropout == 0.35


def test_masks_drop_the_rate_per_stream_for_the_whole_window():
    model = _model("arch1_sum", 0.3)
    ones = tf.ones([7, 64, 100], tf.float64)  # (T, B, n)
    seed = tf.constant([3, 11], tf.int64)
    out = model._dropped(ones, seed).numpy()
    scale = 1 / (1 - 0.3)
    values = np.unique(out)
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(scale)
    np.testing.assert_array_equal(out, np.broadcast_to(out[:1], out.shape))  # shared over T
    dropped = (out[0] == 0).mean()
    assert 0.27 < dropped < 0.33, dropped  # 6400 draws: 3 sigma is 0.017
    np.testing.assert_array_equal(model._dropped(ones, seed), out)  # a function of the seed
    other = model._dropped(ones, tf.constant([3, 12], tf.int64)).numpy()
    assert 0.4 < (other[0] != out[0]).mean() < 0.5  # independent: 2·0.3·0.7 = 0.42 differ
    assert model._dropped(ones, None) is ones  # evaluation: untouched
    assert _model("arch1_sum", 0.0)._dropped(ones, seed) is ones


@pytest.mark.parametrize("name", MODELS)
def test_dropout_reaches_only_what_the_output_layer_reads(name):
    """logits = (h ⊙ mask)·V + c with h the un-dropped hidden units; the carried state is h."""
    model, plain = _model(name, 0.4), _model(name, 0.0)
    plain.set_weights(model.get_weights())
    n = model.num_nodes
    ids = tf.constant(np.random.default_rng(1).integers(0, 5, (3, 8)))
    state = tf.constant(np.random.default_rng(2).normal(size=(3, model.state_size)) * 0.5)
    seed = tf.constant([5, 9], tf.int64)

    logits, new_state = model(ids, state)  # no seed: evaluation, the plain model
    ref_logits, ref_state = plain(ids, state)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-12)

    dropped, dropped_state = model(ids, state, dropout_seed=seed)
    np.testing.assert_allclose(dropped_state, ref_state, rtol=1e-12)  # h itself not dropped
    # The hidden units the output layer reads, from the cell-by-cell reference.
    hs, s = [], state
    for t in range(ids.shape[1]):
        _, s = plain.step(ids[:, t], s)
        hs.append(s[:, n:] if name == "arch1_concat" else s)
    h = tf.transpose(tf.stack(hs), [1, 0, 2])  # (B, T, n)
    mask = tf.transpose(model._dropped(tf.ones([ids.shape[1], 3, n], tf.float64), seed),
                        [1, 0, 2])
    out_weights = model.cell.W_hy if name == "elman" else model.cell.V[-n:]
    expected = ref_logits + tf.einsum("btn,na->bta", h * mask - h, out_weights)
    np.testing.assert_allclose(dropped, expected, rtol=1e-9, atol=1e-12)
    assert not np.allclose(dropped, ref_logits)


def _train_losses(dropout, seed, jit, count=4):
    cfg = config.Config(combine="mul", activation="tanh", num_nodes=16, init="glorot",
                        optimizer="adam", learning_rate=1e-2, dropout=dropout, seed=seed)
    tf.keras.utils.set_random_seed(0)  # the same initial weights for every call
    model = models.build_model(cfg, 5)
    step = steps.make_train_step(model, steps.make_optimizer(cfg), cfg.clip_norm,
                                 jit_compile=jit, seed=cfg.seed)
    ids = np.random.default_rng(0).integers(0, 5, (4, 11))
    state, losses = model.zero_state(4), []
    for _ in range(count):
        metrics, state = step(ids[:, :-1], ids[:, 1:], state)
        losses.append(float(metrics["loss"]))
    return losses


@pytest.mark.slow
def test_train_step_draws_masks_from_the_seed_and_the_step():
    plain = _train_losses(0.0, 0, jit=False)
    dropped = _train_losses(0.5, 0, jit=False)
    assert _train_losses(0.5, 0, jit=False) == dropped  # a function of (seed, step)
    assert dropped[0] != plain[0]
    assert _train_losses(0.5, 1, jit=False)[0] != dropped[0]  # the run's seed matters
    # Same window each step, weights moved by a tiny amount: only new masks change much.
    np.testing.assert_allclose(_train_losses(0.5, 0, jit=True), dropped, rtol=1e-4)
    replicas = [steps.dropout_kwargs(_model("arch1_sum", 0.5), _Iterations(3), 8, r, 2)
                for r in (0, 1)]
    assert [list(k["dropout_seed"].numpy()) for k in replicas] == [[8, 6], [8, 7]]
    assert steps.dropout_kwargs(_model("arch1_sum", 0.0), _Iterations(3), 8) == {}


class _Iterations:
    def __init__(self, value):
        self.iterations = tf.constant(value, tf.int64)


def _checkpoint(workdir):
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints"))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/", "state/", "cursors/"))}


@pytest.mark.slow
def test_a_resumed_run_draws_the_masks_of_the_uninterrupted_one(tmp_path, capsys):
    # With XLA (the default); the masks are the same without it (the train-step test above).
    corpus = write_corpus(tmp_path / "corpus.txt", 11000)
    argv = ["train", "--preset", "text8_best", "--data", str(corpus), "--no-progress",
            "--set", "num_nodes=24", "--set", "batch_size=4", "--set", "num_unrollings=10",
            "--set", "dropout=0.3", "--set", "checkpoint_every=10", "--set", "eval_every=0",
            "--set", "sample_every=0", "--set", "diag_every=0", "--set", "log_every=5",
            "--set", "deterministic=true"]
    was = tf_config.is_op_determinism_enabled()
    try:
        results = {}
        for name, legs in (("straight", [30]), ("resumed", [10, 30])):
            workdir = tmp_path / name
            for last in legs:
                assert cli.main([*argv, "--workdir", str(workdir), "--steps", str(last)]) == 0
                result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            results[name] = (result, _checkpoint(workdir))
        undropped = tmp_path / "undropped"
        assert cli.main([*argv, "--workdir", str(undropped), "--steps", "30",
                         "--set", "dropout=0"]) == 0
        capsys.readouterr()
    finally:
        if not was:
            tf_config.disable_op_determinism()
    (straight, ref), (resumed, mine) = results["straight"], results["resumed"]
    assert straight["loss"] == resumed["loss"]
    assert mine.keys() == ref.keys() and any(k.startswith("model/") for k in mine)
    for key in ref:
        np.testing.assert_array_equal(mine[key], ref[key], err_msg=key)
    # The masks changed training: the same run without dropout ends elsewhere.
    other = _checkpoint(undropped)
    assert any(not np.array_equal(other[k], ref[k]) for k in ref if k.startswith("model/"))
    assert reading.load_model(tmp_path / "resumed")[2].dropout == 0.3
