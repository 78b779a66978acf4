"""Tests of tf_rnn.toys.sequence (the K-member Elman model, its losses, `fit`) and tf_rnn.toys.tasks."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn.engine import steps
from tf_rnn.toys import sequence, tasks
from tf_rnn.toys.sequence import ElmanSequenceModel


def _model(members=3, units=4, input_size=2, output_size=1, **kwargs):
    keras.utils.set_random_seed(0)
    return ElmanSequenceModel(input_size, units, output_size, members=members, **kwargs)


def _inputs(batch=5, time=7, features=2, seed=0):
    return np.random.default_rng(seed).random((batch, time, features)).astype(np.float32)


# --- ElmanSequenceModel -----------------------------------------------------------------


def test_shapes_and_weight_counts():
    model = _model(members=3, units=4, input_size=2, output_size=1)
    logits, state = model(_inputs(), model.zero_state(5))
    assert logits.shape == (5, 7, 3) and state.shape == (5, 12)
    assert model.per_member(logits).shape == (5, 7, 3, 1)
    assert len(model.trainable_variables) == 5
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == \
        2 * 12 + 12 * 12 + 12 + 12 * 3 + 3
    no_bias = _model(use_bias=False)
    assert [v.name for v in no_bias.trainable_variables] == ["W_xh", "W_hh", "W_hy"]


def test_constant_weights_against_values_worked_by_hand():
    model = ElmanSequenceModel(1, 1, 1, "sigmoid")
    for variable, value in zip(model.cell.weights, (1.0, 2.0, 0.5, -1.0, 0.25)):
        variable.assign(np.full(variable.shape, value, np.float32))
    # W_xh 1, W_hh 2, b_h 0.5, W_hy -1, b_y 0.25; inputs 1 then 0, context starts at 0.
    h1 = 1 / (1 + math.exp(-(1 + 0.5)))
    h2 = 1 / (1 + math.exp(-(2 * h1 + 0.5)))
    logits, state = model(np.array([[[1.0], [0.0]]], np.float32), model.zero_state(1))
    np.testing.assert_allclose(logits[0, :, 0], [0.25 - h1, 0.25 - h2], rtol=1e-6)
    np.testing.assert_allclose(state, [[h2]], rtol=1e-6)


def test_call_matches_the_cell_step_by_step_and_step():
    model = _model(members=3, activation="tanh")
    x, h0 = _inputs(), tf.random.normal([5, 12], seed=1)
    fast, fast_state = model(x, h0)
    slow, slow_state = model.call_reference(tf.constant(x), h0)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    np.testing.assert_allclose(fast_state, slow_state, atol=1e-5)
    one, one_state = model.step(x[:, 0], h0)
    np.testing.assert_allclose(one, fast[:, 0], atol=1e-5)


def test_members_are_independent_networks():
    model = _model(members=3)
    x = _inputs()
    logits = model.per_member(model(x, model.zero_state(5))[0])
    for k in range(3):
        alone = model.member(k)
        np.testing.assert_allclose(alone(x, alone.zero_state(5))[0], logits[:, :, k], atol=1e-6)
    # The loss of member 0 sends no gradient to any other member's weights.
    with tf.GradientTape() as tape:
        out = model.per_member(model(x, model.zero_state(5))[0])
        loss = tf.reduce_sum(out[:, :, 0])
    g_hh = tape.gradient(loss, model.cell.W_hh).numpy()
    assert np.abs(g_hh[:4, :4]).sum() > 0 and np.abs(g_hh[4:]).sum() == 0
    assert np.abs(g_hh[:, 4:]).sum() == 0
    with pytest.raises(ValueError, match="`k`"):
        model.member(3)


def test_members_start_different_and_off_diagonal_blocks_stay_zero():
    model = _model(members=2, kernel_initializer=keras.initializers.RandomUniform(-1, 1, seed=3))
    w_hh, w_xh = model.cell.W_hh.numpy(), model.cell.W_xh.numpy()
    assert not np.allclose(w_xh[:, :4], w_xh[:, 4:])  # a seeded initializer: seed + k
    step = steps.make_train_step(model, keras.optimizers.Adam(0.1),
                                 loss_fn=sequence.make_loss("bce"))
    targets = np.ones((5, 7, 1), np.float32)
    for _ in range(3):
        step(_inputs(), targets, model.zero_state(5))
    w_hh_after = model.cell.W_hh.numpy()
    assert not np.allclose(w_hh_after[:4, :4], w_hh[:4, :4])
    assert np.all(w_hh_after[:4, 4:] == 0) and np.all(w_hh_after[4:, :4] == 0)


def test_no_bias_stays_zero_under_training():
    model = _model(use_bias=False)
    step = steps.make_train_step(model, keras.optimizers.SGD(0.5),
                                 loss_fn=sequence.make_loss("sse", reduce_time="sum"))
    step(_inputs(), np.ones((5, 7, 1), np.float32), model.zero_state(5))
    assert np.all(model.cell.b_h.numpy() == 0) and np.all(model.cell.b_y.numpy() == 0)


def test_get_config_round_trip_and_keras_serialization(tmp_path):
    model = _model(members=2, use_bias=False, activation="tanh",
                   kernel_initializer=keras.initializers.RandomUniform(-1.0, 1.0))
    config = model.get_config()
    assert ElmanSequenceModel.from_config(config).get_config() == config
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(again, ElmanSequenceModel) and again.get_config() == config
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = _inputs()
    np.testing.assert_allclose(loaded(x, loaded.zero_state(5))[0],
                               model(x, model.zero_state(5))[0], atol=1e-6)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="members"):
        ElmanSequenceModel(1, 4, 1, members=0)
    with pytest.raises(ValueError, match="units"):
        ElmanSequenceModel(1, -2, 1)
    with pytest.raises(ValueError, match="activation"):
        ElmanSequenceModel(1, 4, 1, activation="softplus")
    with pytest.raises(ValueError, match="kind"):
        sequence.per_member_loss("mse", tf.zeros([1, 2, 1]), tf.zeros([1, 2, 1]))


def test_gradients_are_true_bptt_against_finite_differences():
    keras.utils.set_random_seed(1)
    model = ElmanSequenceModel(1, 3, 1, "sigmoid", dtype="float64")
    inputs, targets, mask = tasks.xor_task(np.array([[0, 1, 1, 0, 1, 0]]))
    loss_fn = sequence.make_loss("bce", mask)
    x, y = tf.constant(inputs, tf.float64), tf.constant(targets, tf.float64)
    cost = lambda: loss_fn(model(x, model.zero_state(1))[0], y)
    w = model.cell.W_hh  # a context weight: its gradient flows only through time
    with tf.GradientTape() as tape:
        loss = cost()
    grad = tape.gradient(loss, w).numpy()
    numeric = np.zeros_like(grad)
    base = w.numpy()
    for i, j in np.ndindex(*grad.shape):
        for sign in (1, -1):
            bumped = base.copy()
            bumped[i, j] += sign * 1e-6
            w.assign(bumped)
            numeric[i, j] += sign * float(cost()) / 2e-6
    w.assign(base)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


# --- losses ---------------------------------------------------------------------------


def test_losses_against_hand_values():
    z = tf.constant([[[0.0, 2.0], [1.0, -1.0]]])  # B=1, T=2, K=2 members, O=1
    y = tf.constant([[[1.0], [0.0]]])
    bce = lambda z, y: math.log1p(math.exp(z)) - z * y
    np.testing.assert_allclose(sequence.per_member_loss("bce", z, y),
                               [(bce(0, 1) + bce(1, 0)) / 2, (bce(2, 1) + bce(-1, 0)) / 2],
                               rtol=1e-6)
    masked = sequence.per_member_loss("bce", z, y, mask=[0.0, 1.0])  # first output ignored
    np.testing.assert_allclose(masked, [bce(1, 0), bce(-1, 0)], rtol=1e-6)
    s = lambda v: 1 / (1 + math.exp(-v))
    np.testing.assert_allclose(
        sequence.per_member_loss("sse", z, y, reduce_time="sum"),
        [0.5 * ((1 - s(0)) ** 2 + s(1) ** 2), 0.5 * ((1 - s(2)) ** 2 + s(-1) ** 2)], rtol=1e-6)
    ce_logits = tf.constant([[[2.0, 0.0, 0.0, 1.0]]])  # K=2 members, O=2 symbols
    ce = sequence.per_member_loss("ce", ce_logits, tf.constant([[[1.0, 0.0]]]))
    np.testing.assert_allclose(ce, [math.log(1 + math.exp(-2)), math.log(1 + math.e)],
                               rtol=1e-6)
    total = sequence.make_loss("bce", [0.0, 1.0])(z, y)
    np.testing.assert_allclose(total, masked.numpy().sum(), rtol=1e-6)


# --- fit -----------------------------------------------------------------------------


def test_fit_runs_the_train_step_and_stops_when_checked(tmp_path):
    model = _model(members=2, input_size=1)
    inputs, targets, mask = tasks.xor_task(tasks.random_bits(8, 10, np.random.default_rng(0)))
    loss_fn = sequence.make_loss("bce", mask)
    step = steps.make_train_step(model, keras.optimizers.Adam(0.05), loss_fn=loss_fn)
    before = float(loss_fn(model(inputs, model.zero_state(8))[0], targets))
    calls = []
    writer = tf.summary.create_file_writer(str(tmp_path))
    result = sequence.fit(model, step, (inputs, targets), 100, writer=writer, log_every=10,
                          check=lambda done: calls.append(done) or done >= 60,
                          check_every=20, progress=False)
    assert result["steps"] == 60 and result["solved"] and calls == [20, 40, 60]
    after = float(loss_fn(model(inputs, model.zero_state(8))[0], targets))
    assert after < before
    sampled = []
    sequence.fit(model, step, lambda i: sampled.append(i) or (inputs, targets), 3,
                 progress=False)
    assert sampled == [0, 1, 2]


# --- tasks ---------------------------------------------------------------------------


def test_xor_task_targets_and_mask():
    inputs, targets, mask = tasks.xor_task(np.array(tasks.SEED_XOR_BITS))
    assert inputs.shape == targets.shape == (1, 5, 1)
    np.testing.assert_array_equal(targets[0, :, 0], [0, 0, 1, 0, 1])  # the seed's Y
    np.testing.assert_array_equal(mask, [0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="bits"):
        tasks.xor_task(np.array([0, 2, 1]))


def test_bits_are_least_significant_first_and_round_trip():
    np.testing.assert_array_equal(tasks.to_bits([6], 4), [[0, 1, 1, 0]])
    values = np.random.default_rng(0).integers(0, 2**32, 100)
    np.testing.assert_array_equal(tasks.from_bits(tasks.to_bits(values, 32)), values)
    inputs, targets = tasks.addition_task([3, 100], [1, 27], 8)
    assert inputs.shape == (2, 8, 2) and targets.shape == (2, 8, 1)
    np.testing.assert_array_equal(tasks.from_bits(inputs[..., 0]), [3, 100])
    np.testing.assert_array_equal(tasks.from_bits(targets[..., 0]), [4, 127])
    a, b = tasks.all_addend_pairs(8)
    assert len(a) == 128 * 128 and a.max() == b.max() == 127
    with pytest.raises(ValueError, match="values"):
        tasks.to_bits([16], 4)


def test_scores_per_member():
    targets = np.array([[[1.0], [0.0], [1.0]], [[0.0], [0.0], [1.0]]])  # (N=2, T=3, 1)
    good = np.where(targets > 0.5, 3.0, -3.0)[:, :, None, :]  # (2, 3, 1, 1)
    bad = good.copy()
    bad[1, 2] *= -1  # one wrong bit in sequence 1
    outputs = np.concatenate([good, bad], axis=2)  # K = 2
    np.testing.assert_allclose(tasks.exact_fraction(outputs, targets), [1.0, 0.5])
    np.testing.assert_allclose(tasks.bit_accuracy(outputs, targets), [1.0, 5 / 6])
    np.testing.assert_allclose(tasks.bit_accuracy(outputs, targets, [0, 1, 0]), [1.0, 1.0])
    assert tasks.local_minima([3, 1, 2, 0.5, 0.6, 0.2]) == 2
    assert tasks.local_minima([1, 1 - 1e-9, 1]) == 0  # float noise is not a minimum


def test_next_symbol_task_and_greedy_continuations():
    vocab = tasks.alphabet_of("hello")
    assert vocab.chars == "helo"
    inputs, targets = tasks.next_symbol_task("hello", vocab)
    assert vocab.decode(inputs[0].argmax(-1)) == "hell"
    assert vocab.decode(targets[0].argmax(-1)) == "ello"
    model = _model(members=3, units=5, input_size=4, output_size=4)
    texts = tasks.greedy_continuations(model, vocab, "he", 6)
    # The same by hand: member k alone, its state carried from symbol to symbol.
    for k, text in enumerate(texts):
        alone = model.member(k)
        _, state = alone(inputs[:, :1], alone.zero_state(1))
        ids, last = [], vocab.encode("e")[0]
        for _ in range(6):
            logits, state = alone.step(tf.one_hot([last], 4), state)
            last = int(tf.argmax(logits[0]))
            ids.append(last)
        assert text == "he" + vocab.decode(ids)


def test_sweep_weight_restores_the_weight_and_matches_the_loss():
    model = _model(members=1, input_size=1)
    inputs, targets, mask = tasks.xor_task(tasks.random_bits(4, 6, np.random.default_rng(1)))
    loss_fn = sequence.make_loss("bce", mask)
    before = model.cell.W_hh.numpy()
    values = before[1, 2] + np.array([-1.0, 0.0, 1.0])
    costs = tasks.sweep_weight(model, model.cell.W_hh, (1, 2), values, inputs, targets,
                               loss_fn)
    np.testing.assert_array_equal(model.cell.W_hh.numpy(), before)
    now = float(loss_fn(model(inputs, model.zero_state(4))[0], targets))
    np.testing.assert_allclose(costs[1], now, rtol=1e-6)
    assert costs[0] != costs[1] != costs[2]


def test_first_exact_check_records_the_first_exact_step():
    model = _model(members=2, input_size=2, output_size=1)
    inputs, _ = tasks.addition_task(*tasks.all_addend_pairs(4), 4)
    targets = inputs[..., :1]  # a copy task: every output is the first input bit
    check, first = tasks.first_exact_check(model, inputs, targets, probe=8)

    def make_exact(k):  # member k's 4 hidden units copy input bit 0; its output reads them
        h = slice(4 * k, 4 * k + 4)
        c = model.cell
        for variable, index, value in ((c.W_xh, (0, h), 20.0), (c.W_xh, (1, h), 0.0),
                                       (c.b_h, h, -10.0), (c.W_hh, (h, h), 0.0),
                                       (c.W_hy, (h, k), 5.0), (c.b_y, k, -10.0)):
            w = variable.numpy()
            w[index] = value
            variable.assign(w)

    assert not check(10) and np.all(first == -1)
    make_exact(1)
    assert not check(20)
    np.testing.assert_array_equal(first, [-1, 20])
    make_exact(0)
    assert check(30)
    np.testing.assert_array_equal(first, [30, 20])
