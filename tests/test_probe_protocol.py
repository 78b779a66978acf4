"""Diagnostics ask the model, never its class: a model class the library has never seen
works when it has the probe protocol of `tf_rnn.models`, and one without it gets a clear
message (a training run of it trains without diagnostics)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.engine import steps
from tf_rnn.inspect import diagnostics, probes

A, N, B, T = 5, 4, 3, 6


class TinyElman(keras.Model):
    """h_t = tanh(W_xh[x_t] + h_{t-1} W_hh), logits = h_t W_hy: no tf_rnn class, no
    tf_rnn cell, only the probe protocol (and `call`, the window a trainer runs)."""

    state_size = hidden_size = N
    activation = "tanh"
    recurrent_units = None

    def __init__(self):
        super().__init__(dtype="float64")
        init = keras.initializers.RandomNormal(stddev=0.8, seed=1)
        self.w_xh = self.add_weight(shape=(A, N), initializer=init, name="w_xh")
        self.w_hh = self.add_weight(shape=(N, N), initializer=init, name="w_hh")
        self.w_hy = self.add_weight(shape=(N, A), initializer=init, name="w_hy")

    def zero_state(self, batch_size):
        return tf.zeros([batch_size, N], tf.float64)

    def hidden_step(self, ids, state):
        return tf.tanh(tf.gather(self.w_xh, ids) + tf.matmul(state, self.w_hh))

    def readout(self, h):
        return tf.matmul(h, self.w_hy)

    def carry(self, h, ids):
        return h

    def recurrent_matrix(self):
        return self.w_hh

    def call(self, inputs, state):
        logits = []
        for t in range(inputs.shape[1]):
            state = self.hidden_step(inputs[:, t], state)
            logits.append(self.readout(state))
        return tf.stack(logits, axis=1), state


class NoProtocol(keras.Model):
    """A model that trains (call, zero_state) but says nothing of its hidden layer."""

    state_size = N

    def zero_state(self, batch_size):
        return tf.zeros([batch_size, N])

    def call(self, inputs, state):
        return tf.zeros(tf.concat([tf.shape(inputs), [A]], 0)), state


def _ids(seed=0, length=2 * T * B + 1):
    return np.random.default_rng(seed).integers(0, A, length)


def test_a_new_model_class_with_the_protocol_is_measured():
    model = TinyElman()
    assert models.missing_probe_protocol(model) == []
    ids = _ids()
    figures = probes.measure_text(model, ids, B, T, windows=1)
    # The first window of the B streams, measured without diagnostics: the window's
    # loss by the model's own `call`, and dL/dh_T (lag 0) by a loop written here.
    streams = ids[np.arange(B)[:, None] * ((len(ids) - 1) // B) + np.arange(T + 1)]
    inputs, targets = tf.constant(streams[:, :-1]), tf.constant(streams[:, 1:])
    loss = steps.lm_loss(model(inputs, model.zero_state(B))[0], targets)
    assert figures["loss"] == pytest.approx(float(loss), rel=1e-12)
    with tf.GradientTape() as tape:
        h, logits = model.zero_state(B), []
        for t in range(T):
            h = tf.tanh(tf.gather(model.w_xh, inputs[:, t]) + tf.matmul(h, model.w_hh))
            logits.append(tf.matmul(h, model.w_hy))
        loss = steps.lm_loss(tf.stack(logits, 1), targets)
    d_last = np.linalg.norm(tape.gradient(loss, h))
    assert figures["grad_by_lag"][0] == pytest.approx(d_last, rel=1e-10)
    assert figures["grad_by_lag"][T - 1] > 0  # the recurrence carries it back
    assert figures["sigma_max"] == pytest.approx(np.linalg.norm(model.w_hh.numpy(), 2))
    assert figures["activation"] == "tanh" and figures["recurrent_units"] == "all"
    assert set(figures["grad_norms"]) == {"w_xh", "w_hh", "w_hy"}


def test_a_new_model_class_is_measured_in_training():
    model = TinyElman()
    hook = diagnostics.TrainingDiagnostics(config_lib.Config(diag_every=2), model)
    window = _ids(1, B * (T + 1)).reshape(B, T + 1)
    assert hook.measure(1, 10, window, model.zero_state(B)) is None  # not due
    figures = hook.measure(2, 10, window, model.zero_state(B))
    assert np.isfinite(figures["loss"]) and len(figures["grad_by_lag"]) == T


def test_a_slice_of_recurrent_units_is_reported_as_the_model_says():
    class HalfRecurrent(TinyElman):
        recurrent_units = slice(2, 4)

    figures = probes.measure_text(HalfRecurrent(), _ids(), B, T, windows=1)
    assert figures["recurrent_units"] == "[2:4)" and "recurrent_saturated_fraction" in figures


def test_a_model_without_the_protocol_gets_a_clear_message(capsys):
    model = NoProtocol()
    missing = models.missing_probe_protocol(model)
    assert missing == ["hidden_step", "readout", "carry", "hidden_size", "activation",
                       "recurrent_units", "recurrent_matrix"]
    with pytest.raises(ValueError, match=r"`model`.*NoProtocol, which lacks hidden_step, "
                                         r"readout, carry"):
        probes.make_measure(model)
    with pytest.raises(ValueError, match="probe protocol"):
        probes.measure_text(model, _ids(), B, T)
    # Training: no error before the first step; the run goes on without diagnostics.
    hook = diagnostics.TrainingDiagnostics(config_lib.Config(diag_every=1), model)
    err = capsys.readouterr().err
    assert "no diagnostics for NoProtocol" in err and "hidden_step" in err
    window = np.zeros((B, T + 1), np.int64)
    assert hook.measure(1, 1, window, model.zero_state(B)) is None
    # With diagnostics off, nothing is said.
    diagnostics.TrainingDiagnostics(config_lib.Config(diag_every=0), model)
    assert capsys.readouterr().err == ""
