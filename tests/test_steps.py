"""The compiled train step, the optimizers and evaluation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import config
from tf_rnn.engine import steps


def _setup(name="arch1", **changes):
    keras.utils.set_random_seed(0)
    cfg = config.Config(model=name, num_nodes=8, batch_size=4, num_unrollings=6,
                        init="glorot", **changes)
    model = models.build_model(cfg, 5)
    optimizer = steps.make_optimizer(cfg)
    return cfg, model, optimizer


def _batch(seed=0):
    ids = np.random.default_rng(seed).integers(0, 5, (4, 7))
    return tf.constant(ids[:, :-1]), tf.constant(ids[:, 1:])


@pytest.mark.parametrize("name", ["arch1", "arch2", "elman"])
def test_train_step_learns_a_fixed_batch(name):
    cfg, model, optimizer = _setup(name, optimizer="adam", learning_rate=0.05)
    step = steps.make_train_step(model, optimizer, clip_norm=5.0)
    inputs, targets = _batch()
    first = None
    for _ in range(60):
        metrics, _ = step(inputs, targets, model.zero_state(4))
        first = first if first is not None else float(metrics["loss"])
    assert float(metrics["loss"]) < 0.7 * first  # Arch 2 is a bigram model: less to fit
    assert bool(metrics["finite"])


def test_non_finite_loss_leaves_weights_and_optimizer_untouched():
    cfg, model, optimizer = _setup()
    step = steps.make_train_step(model, optimizer, clip_norm=1.0)
    inputs, targets = _batch()
    step(inputs, targets, model.zero_state(4))
    before = [v.numpy().copy() for v in model.trainable_variables]
    iterations = int(optimizer.iterations.numpy())
    bad_state = tf.fill([4, model.state_size], np.nan)
    metrics, _ = step(inputs, targets, bad_state)
    assert not bool(metrics["finite"])
    for b, v in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())
    assert int(optimizer.iterations.numpy()) == iterations


def test_grad_norm_is_reported_before_clipping():
    cfg, model, optimizer = _setup(optimizer="sgd", learning_rate=1e-9)
    inputs, targets = _batch()
    with tf.GradientTape() as tape:
        logits, _ = model(inputs, model.zero_state(4))
        loss = steps.lm_loss(logits, targets)
    norm = float(tf.linalg.global_norm(tape.gradient(loss, model.trainable_variables)))
    step = steps.make_train_step(model, optimizer, clip_norm=norm / 10)
    metrics, _ = step(inputs, targets, model.zero_state(4))
    assert float(metrics["grad_norm"]) == pytest.approx(norm, rel=1e-5)
    assert bool(metrics["clipped"])


def test_sgd_update_is_clipped_to_the_global_norm():
    cfg, model, optimizer = _setup(optimizer="sgd", learning_rate=1.0, decay_rate=1.0)
    before = [v.numpy().copy() for v in model.trainable_variables]
    step = steps.make_train_step(model, optimizer, clip_norm=1e-3)
    step(*_batch(), model.zero_state(4))
    moved = math.sqrt(sum(np.sum((v.numpy() - b) ** 2)
                          for v, b in zip(model.trainable_variables, before)))
    assert moved == pytest.approx(1e-3, rel=1e-4)


def test_adagrad_matches_the_seed_update():
    """param -= lr * g / sqrt(sum of g^2 + 1e-8), accumulators from zero; clip ±5 first."""
    cfg, model, optimizer = _setup("elman", optimizer="adagrad", learning_rate=1e-2,
                                   decay_rate=1.0, clip_value=5.0, clip_norm=0.0)
    inputs, targets = _batch()
    accum = [np.zeros(v.shape) for v in model.trainable_variables]
    step = steps.make_train_step(model, optimizer, clip_value=5.0)
    for _ in range(3):
        with tf.GradientTape() as tape:
            logits, _ = model(inputs, model.zero_state(4))
            loss = steps.lm_loss(logits, targets)
        grads = [np.clip(g.numpy(), -5, 5)
                 for g in tape.gradient(loss, model.trainable_variables)]
        expected = []
        for a, g, v in zip(accum, grads, model.trainable_variables):
            a += g * g
            expected.append(v.numpy() - 1e-2 * g / np.sqrt(a + 1e-8))
        step(inputs, targets, model.zero_state(4))
        for e, v in zip(expected, model.trainable_variables):
            np.testing.assert_allclose(v.numpy(), e, rtol=2e-4, atol=1e-6)


def test_staircase_schedule_and_scale():
    scale = tf.Variable(1.0)
    total = tf.Variable(0, dtype=tf.int64)
    schedule = steps.Schedule("step", 2.5, 10, 0.5, scale, total)
    assert float(schedule(9)) == pytest.approx(2.5)
    assert float(schedule(10)) == pytest.approx(1.25)
    scale.assign(0.1)
    assert float(schedule(25)) == pytest.approx(0.0625)
    cfg = config.Config(learning_rate=2.5, decay_steps=10, decay_rate=0.5)
    optimizer = steps.make_optimizer(cfg)
    optimizer.iterations.assign(20)
    assert steps.current_learning_rate(optimizer) == pytest.approx(0.625)


def test_the_staircase_is_keras_exponential_decay_to_the_bit():
    """Runs from before the other shapes keep their rates exactly."""
    keras_decay = keras.optimizers.schedules.ExponentialDecay(2e-3, 3000, 0.5,
                                                              staircase=True)
    ours = steps.make_schedule(config.Config(learning_rate=2e-3, decay_steps=3000,
                                             decay_rate=0.5))
    for step in range(0, 40000, 977):
        assert float(ours(step)) == float(keras_decay(step)), step


def test_linear_and_cooldown_end_at_zero_on_the_last_step():
    linear = steps.make_schedule(config.Config(schedule="linear", steps=100,
                                               learning_rate=1.0))
    assert [float(linear(s)) for s in (0, 50, 100, 150)] == pytest.approx([1, 0.5, 0, 0])
    assert float(linear(99)) == pytest.approx(0.01)
    cooldown = steps.make_schedule(config.Config(schedule="cooldown", steps=100,
                                                 learning_rate=1.0, cooldown_fraction=0.2))
    assert [float(cooldown(s)) for s in (0, 80, 90, 100)] == pytest.approx([1, 1, 0.5, 0])
    assert float(cooldown(79)) == 1.0 and float(cooldown(81)) < 1.0


def test_a_budget_schedule_follows_its_clock():
    config_ = config.Config(schedule="linear", budget_minutes=3, learning_rate=1.0)
    progress = steps.budget_progress(config_)
    schedule = steps.make_schedule(config_, progress=progress)
    assert float(schedule(0)) == 1.0  # nothing of the budget spent
    progress.assign(0.25)
    assert float(schedule(50)) == pytest.approx(0.75)
    assert steps.budget_progress(config.Config()) is None  # no budget: no clock read


def test_schedule_settings_are_checked():
    with pytest.raises(ValueError, match="`schedule`.*'cosine'"):
        config.Config(schedule="cosine")
    with pytest.raises(ValueError, match="`cooldown_fraction`, expected a number in"):
        config.Config(schedule="cooldown", cooldown_fraction=0.0)
    with pytest.raises(ValueError, match="cooldown_fraction=0.5 for schedule='linear'"):
        config.Config(schedule="linear", cooldown_fraction=0.5)
    with pytest.raises(ValueError, match="`budget_minutes`, expected a non-negative"):
        config.Config(budget_minutes=-1.0)


def test_evaluate_uniform_model_scores_log2_of_alphabet():
    cfg, model, _ = _setup()
    for v in model.trainable_variables:
        v.assign(tf.zeros_like(v))  # all logits equal: uniform prediction
    ids = np.random.default_rng(0).integers(0, 5, 1001)
    out = steps.evaluate(model, ids, batch_size=8, num_unrollings=7)
    assert out["bpc"] == pytest.approx(math.log2(5), rel=1e-6)
    assert out["chars"] == 8 * (1000 // 8)


def test_evaluate_carries_state_like_one_long_window():
    cfg, model, _ = _setup()
    ids = np.random.default_rng(1).integers(0, 5, 61)
    windowed = steps.evaluate(model, ids, batch_size=1, num_unrollings=7)
    logits, _ = model(tf.constant(ids[None, :-1]), model.zero_state(1))
    whole = float(steps.lm_loss(logits, tf.constant(ids[None, 1:])))
    assert windowed["loss"] == pytest.approx(whole, rel=1e-5)
    assert windowed["chars"] == 60


def _markov_ids(length, seed):
    """Ids 0..4 where the next id is mostly 2·previous + 1 (mod 5): something to learn."""
    rng = np.random.default_rng(seed)
    ids = [0]
    for noise in rng.random(length - 1) < 0.3:
        ids.append(int(rng.integers(0, 5)) if noise else (2 * ids[-1] + 1) % 5)
    return np.array(ids)


def _trained(name):
    """A model of `name` after 40 Adam steps on `_markov_ids` text, carrying its state."""
    cfg, model, optimizer = _setup(name, optimizer="adam", learning_rate=0.03)
    step = steps.make_train_step(model, optimizer, clip_norm=5.0)
    ids = _markov_ids(4 * 40 * 6 + 1, seed=3).reshape(-1)
    streams = np.stack([ids[b * 240:b * 240 + 241] for b in range(4)])  # (4, 241)
    state = model.zero_state(4)
    for start in range(0, 240, 6):
        window = streams[:, start:start + 7]
        _, state = step(tf.constant(window[:, :-1]), tf.constant(window[:, 1:]), state)
    return model


@pytest.mark.parametrize("name", ["arch1", "arch2", "elman"])
def test_evaluate_with_many_streams_is_the_mean_over_its_slices(name):
    """B streams = the text cut into B contiguous slices of (len - 1) // B predictions,
    each scored from the zero state; the last (len - 1) % B predictions are not scored."""
    model = _trained(name)
    B, length, rest = 8, 37, 5
    ids = _markov_ids(B * length + 1 + rest, seed=4)
    eval_step = steps.make_eval_step(model)  # one trace per batch size, not per call
    out = steps.evaluate(model, ids, batch_size=B, num_unrollings=7, eval_step=eval_step)
    slices = [steps.evaluate(model, ids[b * length:(b + 1) * length + 1], batch_size=1,
                             num_unrollings=7, eval_step=eval_step) for b in range(B)]
    assert all(s["chars"] == length for s in slices)
    assert out["chars"] == B * length
    assert out["loss"] == pytest.approx(np.mean([s["loss"] for s in slices]), rel=1e-5)
    assert out["bpc"] == pytest.approx(np.mean([s["bpc"] for s in slices]), rel=1e-5)
    # The slices score differently, so a wrong cut (every stream at the start, overlapping
    # streams, the remainder scored) changes the result.
    assert np.ptp([s["bpc"] for s in slices]) > 0.05
    # And the model did learn the text: well below the uniform log2(5) = 2.32 bits.
    assert out["bpc"] < 2.0


def test_scoring_streams_predict_every_character_once_in_order():
    ids = np.arange(23) * 10  # 22 predictions: 3 streams of L = 7, the last one left out
    streams = steps.scoring_streams(ids, 3)
    np.testing.assert_array_equal(streams, [ids[0:8], ids[7:15], ids[14:22]])
    # Each stream continues where the one before ended: its inputs pick up at the
    # previous one's last target, so the targets are characters 1 .. B·L, each once.
    np.testing.assert_array_equal(streams[:, 1:].ravel(), ids[1:22])
    with pytest.raises(ValueError, match="23 characters cannot be cut into 23 streams"):
        steps.scoring_streams(ids, 23)


def test_every_score_cuts_the_text_with_scoring_streams(monkeypatch):
    """One cut for every contender of a quality comparison: the project's evaluation,
    the diagnostics and the Keras baselines of experiments/ all call it."""
    from experiments import _baselines
    from tf_rnn.inspect import probes

    calls, cut = [], steps.scoring_streams
    monkeypatch.setattr(steps, "scoring_streams",
                        lambda ids, b: calls.append(b) or cut(ids, b))
    ids = np.random.default_rng(0).integers(0, 5, 4 * 7 * 2 + 1)
    _, model, _ = _setup("elman")
    steps.evaluate(model, ids, 4, 6)
    probes.measure_text(model, ids, 4, 6, windows=1)
    _baselines.KerasCharRNN(5, 3, 4, 6).evaluate(ids)
    assert calls == [4, 4, 4]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["arch1", "arch2", "elman"])
def test_xla_and_plain_train_steps_give_the_same_losses(name):
    """README: `jit_compile` changes the speed, not the training (to float tolerance)."""
    ids = _markov_ids(4 * 30 + 1, seed=5)
    streams = np.stack([ids[b * 30:b * 30 + 31] for b in range(4)])  # (4, 31)
    runs = {}
    for jit in (False, True):
        cfg, model, optimizer = _setup(name, optimizer="adadelta", learning_rate=2.5)
        initial = [v.numpy().copy() for v in model.trainable_variables]
        step = steps.make_train_step(model, optimizer, clip_norm=1.25, jit_compile=jit)
        state, losses = model.zero_state(4), []
        for start in range(0, 30, 6):  # 5 steps, the state carried
            window = streams[:, start:start + 7]
            metrics, state = step(tf.constant(window[:, :-1]), tf.constant(window[:, 1:]),
                                  state)
            losses.append(float(metrics["loss"]))
        runs[jit] = losses, state.numpy(), [v.numpy() for v in model.trainable_variables]
    (plain, plain_state, plain_weights), (xla, xla_state, xla_weights) = runs[False], runs[True]
    moved = max(np.abs(w - w0).max() for w, w0 in zip(plain_weights, initial))
    assert moved > 1e-3  # the steps trained: there are updates to compare
    np.testing.assert_allclose(xla, plain, rtol=1e-5)
    np.testing.assert_allclose(xla_state, plain_state, rtol=1e-4, atol=1e-5)
    for x, p in zip(xla_weights, plain_weights):
        np.testing.assert_allclose(x, p, rtol=1e-4, atol=1e-5)
