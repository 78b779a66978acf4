"""Shrunk end-to-end runs of the seed experiments (S1 XOR, S2 hello, S6 binary addition,
S3 char-RNN with Adagrad), and checks that the S3 seed's four bugs stay fixed."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import binary_addition, charrnn_adagrad, hello, xor_elman
from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.data import textio
from tf_rnn.engine import sampling, steps
from tf_rnn.run import reading
from tf_rnn.run.directory import Workdir
from tf_rnn.train import training


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _png_width(path):
    from matplotlib import image

    return image.imread(path).shape[1]


def _scalars(events_dir, prefix):
    """{tag: [(step, value), ...]} of the scalar/text summaries under events_dir."""
    out = {}
    for path in sorted(events_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.startswith(prefix):
                    out.setdefault(value.tag, []).append(
                        (event.step, tf.make_ndarray(value.tensor)))
    return out


# --- S1, S2, S6 ---------------------------------------------------------------------


@pytest.mark.slow
def test_xor_elman_learns_and_writes_the_sweep(tmp_path, capsys):
    assert xor_elman.main(["--seeds", "3", "--steps", "800", "--sweep-points", "11",
                           "--workdir", str(tmp_path), "--no-progress",
                           "--plot", str(tmp_path / "cost.png")]) == 0
    result = _json(capsys)
    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"  # the seed's picture
    assert _png_width(tmp_path / "cost.png") >= 1000
    assert result["diag"]["sigma_max"] > 0 and 0 <= result["diag"]["saturated_fraction"] <= 1
    assert "diag/grad_ratio_last" in _scalars(tmp_path / "events", "diag/")
    assert result["seeds"] == 3 and result["converged"] == 3
    assert result["accuracy_min"] == 1.0  # a fresh random stream of 1000 bits
    sweep = _scalars(tmp_path / "events", "sweep/")
    # All 3 converged: the first is swept (the JSON and the picture's title say so).
    assert result["sweep"]["seeds"] == [0]
    curves = [tag for tag in sweep if tag.startswith("sweep/seed_0/W_hh_")]
    assert len(curves) == 16 and all(len(sweep[tag]) == 11 for tag in curves)
    assert len(sweep["sweep/offset"]) == 11 and "sweep/about" in sweep
    costs = np.loadtxt(tmp_path / "sweep.csv", delimiter=",", skiprows=1)
    assert costs.shape == (11, 17) and np.isfinite(costs).all()
    assert len(_scalars(tmp_path / "events", "train/loss")["train/loss"]) >= 4
    assert keras.saving.load_model(tmp_path / "model.keras").members == 3


@pytest.mark.slow
def test_hello_generates_the_word_from_its_first_letter(tmp_path, capsys):
    assert hello.main(["--seeds", "3", "--steps", "200", "--workdir", str(tmp_path),
                       "--no-progress", "--plot", str(tmp_path / "hello.png")]) == 0
    result = _json(capsys)
    assert result["plot"] == str(tmp_path / "hello.png")
    assert _png_width(tmp_path / "hello.png") >= 1000
    assert result["succeeded"] == 3 and result["generated"] == ["hello"] * 3
    assert result["teacher_forced_ok"] == 3


def test_hello_rejects_text_outside_its_alphabet(tmp_path, capsys):
    assert hello.main(["--text", "hex", "--alphabet", "hel", "--workdir", str(tmp_path),
                       "--seeds", "1", "--steps", "1", "--no-progress"]) == 2
    assert "'x'" in capsys.readouterr().err


@pytest.mark.slow
def test_binary_addition_learns_to_carry(tmp_path, capsys):
    assert binary_addition.main(["--samples", "3000", "--seeds", "2", "--check-every", "500",
                                 "--print-every", "2000", "--test-count", "1000",
                                 "--workdir", str(tmp_path), "--no-progress",
                                 "--plot", str(tmp_path / "add.png")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert _png_width(tmp_path / "add.png") >= 1000
    assert result["converged"] == 2 and result["samples_needed"] <= 3000
    assert result["exact_8bit"] == 1.0 and result["exact_32bit"] == 1.0
    assert "Pred:" in captured.err and "True:" in captured.err  # the seed's progress lines


# --- S3 ------------------------------------------------------------------------------


def _corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog; " * 60, encoding="utf-8")
    return path


def test_charrnn_preset_has_the_seed_settings():
    config = config_lib.get_preset("charrnn_adagrad")
    assert (config.model, config.num_nodes, config.num_unrollings, config.batch_size) == \
        ("elman", 75, 20, 1)
    assert (config.optimizer, config.learning_rate, config.epsilon) == ("adagrad", 1e-2, 1e-8)
    assert (config.clip_value, config.clip_norm, config.vocab) == (5.0, 0.0, "corpus")
    model = models.build_model(config, 30)
    np.testing.assert_allclose(model.cell.W_hh.numpy(), 0.01 * np.eye(75))
    assert abs(float(np.std(model.cell.W_xh.numpy())) - 0.01) < 0.002
    optimizer = steps.make_optimizer(config)
    assert optimizer.initial_accumulator_value == 0.0


@pytest.mark.slow
def test_charrnn_adagrad_trains_with_a_loss_curve_and_samples(tmp_path, capsys):
    argv = ["--data", str(_corpus(tmp_path)), "--workdir", str(tmp_path / "run"),
            "--steps", "60", "--no-progress", "--set", "log_every=10",
            "--set", "sample_every=30", "--set", "sample_length=25",
            "--set", "eval_every=0", "--set", "checkpoint_every=30",
            "--plot", str(tmp_path / "loss.png")]
    assert charrnn_adagrad.main(argv) == 0
    result = _json(capsys)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"  # the seed's loss curve
    assert result["step"] == 60 and isinstance(result["sample"], str)
    assert len(result["sample"]) >= 25
    curve = _scalars(tmp_path / "run" / "events", "train/loss")["train/loss"]
    assert [s for s, _ in curve] == [10, 20, 30, 40, 50, 60]  # a curve, not one number
    assert float(curve[-1][1]) < float(curve[0][1])
    assert len(_scalars(tmp_path / "run" / "events", "samples/")["samples/text"]) >= 2


def test_charrnn_gradients_are_fresh_at_every_step():
    """The seed added every step's gradients to the last ones; ours starts anew."""
    config = config_lib.get_preset("charrnn_adagrad").replace(num_nodes=8, init="glorot")
    keras.utils.set_random_seed(0)
    model = models.build_model(config, 5)
    lr = 0.1
    train_step = steps.make_train_step(model, keras.optimizers.SGD(lr),
                                       clip_value=config.clip_value)
    window = np.random.default_rng(0).integers(0, 5, (1, 21)).astype(np.int32)
    x, y, h0 = window[:, :-1], window[:, 1:], model.zero_state(1)

    def gradient():
        with tf.GradientTape() as tape:
            loss = steps.lm_loss(model(x, h0)[0], y)
        return tf.clip_by_value(tape.gradient(loss, model.cell.W_hh), -5, 5).numpy()

    for _ in range(2):
        expected = model.cell.W_hh.numpy() - lr * gradient()
        train_step(x, y, h0)
        np.testing.assert_allclose(model.cell.W_hh.numpy(), expected, atol=1e-6)


@pytest.mark.slow
def test_charrnn_trainer_carries_the_state_from_window_to_window(tmp_path):
    """The seed restarted every window from h0; the saved state must be the state after
    all the text so far. A vanishing learning rate keeps the weights as initialised."""
    config = config_lib.get_preset("charrnn_adagrad").replace(
        num_nodes=16, init="glorot", learning_rate=1e-30, steps=4, epochs=0.0,
        eval_every=0, sample_every=0, log_every=1, checkpoint_every=4)
    workdir = Workdir(tmp_path / "run")
    training.train(config, workdir.path, str(_corpus(tmp_path)), progress=False)
    model, vocab, _ = reading.load_model(workdir.path)
    saved = tf.Variable(model.zero_state(1))
    tf.train.Checkpoint(state=saved).restore(
        tf.train.latest_checkpoint(str(workdir.checkpoint_dir))).expect_partial()
    text = textio.load_text(_corpus(tmp_path))
    ids = vocab.encode(text)[None, :4 * 20]  # the 4 windows of 20 characters seen
    _, carried = model(ids, model.zero_state(1))
    _, restarted = model(ids[:, -20:], model.zero_state(1))
    np.testing.assert_allclose(saved.numpy(), carried.numpy(), atol=1e-5)
    assert np.abs(carried.numpy() - restarted.numpy()).max() > 1e-3


def test_charrnn_sampler_carries_the_state_from_character_to_character():
    """The seed fed h0 at every sampled character; the sampler must carry its state."""
    config = config_lib.get_preset("charrnn_adagrad").replace(num_nodes=16, init="glorot")
    keras.utils.set_random_seed(3)
    model = models.build_model(config, 6)
    for variable in model.trainable_variables:  # strong weights: the state matters
        variable.assign(variable * 4.0)
    generator = sampling.make_generator(model.step, jit_compile=False)
    ids, _ = generator(tf.constant([2]), model.zero_state(1), tf.constant(12),
                       tf.constant(0.0), tf.constant(0), tf.constant(0))
    carried, restarted = [], []
    for out, keep in ((carried, True), (restarted, False)):
        last, state = 2, model.zero_state(1)
        for _ in range(12):
            logits, new_state = model.step(tf.constant([last]), state)
            state = new_state if keep else model.zero_state(1)
            last = int(tf.argmax(logits[0]))
            out.append(last)
    assert ids.numpy()[0].tolist() == carried
    assert carried != restarted
