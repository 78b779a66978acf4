"""The echo state network (`model=esn`): a fixed reservoir at its spectral radius, only the
readout trained, through the same loop, checkpoint and evaluation as every model."""

import numpy as np
import pytest
import tensorflow as tf
from support import run_cli, tiny

from tf_rnn.base import config
from tf_rnn.engine import steps
from tf_rnn.models import build_model
from tf_rnn.run import reading

A = 6


def esn(**fields):
    return build_model(config.Config(model="esn", num_nodes=12, init="glorot", **fields), A)


def radius(w):
    return float(np.abs(np.linalg.eigvals(np.asarray(w, np.float64))).max())


@pytest.mark.parametrize("esn_radius", [0.5, 0.9, 1.2])
def test_the_reservoir_starts_at_its_spectral_radius(esn_radius):
    model = esn(esn_radius=esn_radius)
    assert radius(model.cell.W_hh) == pytest.approx(esn_radius, rel=1e-5)


def test_only_the_readout_trains():
    model = esn()
    cell = model.cell
    assert {v.path for v in model.trainable_variables} == {cell.W_hy.path, cell.b_y.path}
    before = {v.path: v.numpy() for v in model.variables}
    cfg = config.Config(model="esn", optimizer="adam", learning_rate=0.1)
    train_step = steps.make_train_step(model, steps.make_optimizer(cfg), 1.25)
    ids = tf.constant(np.random.default_rng(0).integers(0, A, (2, 9)))
    train_step(ids[:, :-1], ids[:, 1:], model.zero_state(2))
    for fixed in (cell.W_xh, cell.W_hh, cell.b_h):
        np.testing.assert_array_equal(fixed.numpy(), before[fixed.path])
    assert not np.array_equal(cell.W_hy.numpy(), before[cell.W_hy.path])


def test_the_window_is_the_elman_step_by_step():
    model = esn()
    ids = tf.constant(np.random.default_rng(1).integers(0, A, (3, 7)))
    logits, state = model(ids)
    want, want_state = model.call_reference(ids, model.zero_state(3))
    np.testing.assert_allclose(logits, want, atol=1e-5)
    np.testing.assert_allclose(state, want_state, atol=1e-5)


def test_esn_radius_is_refused_elsewhere_and_esn_does_not_stack():
    with pytest.raises(ValueError, match="`esn_radius` applies only to model 'esn'"):
        config.Config(esn_radius=0.5)
    with pytest.raises(ValueError, match="model='esn', which does not stack"):
        config.Config(model="esn", num_layers=2)
    with pytest.raises(ValueError, match="esn_radius"):
        config.Config(model="esn", esn_radius=0.0)


def test_a_run_keeps_its_reservoir_through_a_checkpoint(tmp_path, capsys, corpus):
    workdir = tmp_path / "esn"
    code, result, err = run_cli(capsys, "train", "--data", corpus, "--workdir", workdir,
                                "--steps", "20", *tiny(), "--set", "model=esn",
                                "--set", "esn_radius=0.8", "--set", "optimizer=adam",
                                "--set", "learning_rate=0.05")
    assert code == 0 and result["loss"] < 3.3, err  # log(27) nats at the start: it learns
    loaded = reading.load_model(workdir)
    assert radius(loaded[0].cell.W_hh) == pytest.approx(0.8, rel=1e-5)
    code, ev, err = run_cli(capsys, "eval", "--workdir", workdir, "--split", "valid")
    assert code == 0 and 0 < ev["bpc"] < 4.8, err
