"""What a Keras user tries first: calling a model without a state, `compile` + `fit`,
`summary()`, saving, and every cell inside Keras's own `keras.layers.RNN` loop."""

import functools
import io

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.models import cells, indrnn
from tf_rnn.toys import sequence

A, N = 27, 8
STACKED_INDRNN = functools.partial(indrnn.IndRNNModel, num_layers=2, residual=True)
STACKED_INDRNN.__name__ = "IndRNNModel_2_layers"
MODELS = [models.Arch1Model, models.Arch2Model, models.ElmanModel, indrnn.IndRNNModel,
          STACKED_INDRNN]


def ids(batch=3, steps=9, seed=0):
    return np.random.default_rng(seed).integers(0, A, (batch, steps)).astype(np.int32)


@pytest.mark.parametrize("model_class", MODELS)
def test_state_defaults_to_the_zero_state(model_class):
    model = model_class(A, N, init="glorot")
    x = ids()
    logits, state = model(x)
    expected, expected_state = model(x, model.zero_state(3))
    assert logits.shape == (3, 9, A)
    np.testing.assert_array_equal(logits.numpy(), expected.numpy())
    np.testing.assert_array_equal(state.numpy(), expected_state.numpy())


# IndRNN's cell is one layer's recurrence (its logits are the model's output layer):
# tests/test_indrnn.py checks the model against that cell run step by step.
@pytest.mark.parametrize("model_class", MODELS[:3])
def test_every_cell_runs_inside_keras_rnn_as_the_fast_path(model_class):
    model = model_class(A, N, init="glorot")
    x = ids(seed=1)
    rnn = keras.layers.RNN(model.cell, return_sequences=True, return_state=True)
    for state in (model.zero_state(3), model(ids(seed=2))[1]):  # fresh and carried
        logits, new_state = model(x, state)
        out, rnn_state = rnn(tf.one_hot(x, A), initial_state=[state])
        np.testing.assert_allclose(out.numpy(), logits.numpy(), atol=1e-5)
        np.testing.assert_allclose(rnn_state.numpy(), new_state.numpy(), atol=1e-5)


@pytest.mark.parametrize("cell", [cells.Arch1Cell(A, 100), cells.Arch2Cell(A, 50),
                                  cells.ElmanCell(A, 10, A)])
def test_fresh_cells_in_keras_rnn(cell):
    out = keras.layers.RNN(cell)(tf.one_hot(ids(1, 2), A))  # builds the cell itself
    assert out.shape == (1, A)


def _summary(model, **kwargs):
    lines = io.StringIO()
    model.summary(print_fn=lambda line, **_: lines.write(line + "\n"), **kwargs)
    return lines.getvalue()


def _row(text, name):
    return next((line for line in text.splitlines() if f"({name})" in line), "")


def test_summary_shows_the_windows_output_shapes():
    model = models.Arch1Model(A, N)
    sequential = keras.Sequential([keras.Input((9,), dtype="int32"), model])
    text = _summary(model)
    row = _row(text, "Arch1Model")
    assert "(None, None, 27)" in row and f"{model.count_params():,}" in row, text  # (B, T, A)
    assert "(None, 16)" in text, text  # the (B, 2n) state, wrapped to the next line
    assert "(None, 27)" not in text, text  # not the cell's one step
    assert model.compute_output_shape((None, 40)) == ((None, 40, A), (None, 2 * N))
    # The summary leaves no node behind: the Sequential holding the model shows its T.
    assert "(None, 9, 27)" in _row(_summary(sequential), "Arch1Model"), _summary(sequential)


@pytest.mark.parametrize("model_class", MODELS)
def test_functional_and_sequential_models_give_the_models_outputs(model_class):
    model = model_class(A, N, init="glorot")
    inputs = keras.Input((None,), dtype="int32")
    logits, state = model(inputs)  # a symbolic batch: no zero state to build from it
    assert tuple(logits.shape) == (None, None, A)
    assert tuple(state.shape) == (None, model.state_size)
    functional = keras.Model(inputs, [logits, state])
    sequential = keras.Sequential([keras.Input((9,), dtype="int32"), model])
    x = ids(seed=4)
    expected = [t.numpy() for t in model(x)]
    for wrapper in (functional, sequential):
        for got, want in zip(wrapper(x), expected):
            np.testing.assert_array_equal(got.numpy(), want)
    for got, want in zip(sequential.predict(x, verbose=0), expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_toy_tasks_model_in_the_functional_api():
    model = sequence.ElmanSequenceModel(2, 4, 1, members=3)
    inputs = keras.Input((None, 2))
    functional = keras.Model(inputs, model(inputs))  # no state: zeros of the symbolic batch
    assert [tuple(t.shape) for t in functional.outputs] == [(None, None, 3), (None, 12)]
    x = np.random.default_rng(6).integers(0, 2, (5, 7, 2)).astype(np.float32)
    for got, want in zip(functional(x), model(x, model.zero_state(5))):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("model_class", MODELS)
def test_float_ids_are_cast_and_bad_ids_refused(model_class):
    model = model_class(A, N, init="glorot")
    x = ids(seed=5)
    expected = model(x)[0].numpy()
    for dtype in ("float32", "float64", "int64", "uint8"):  # as keras.layers.Embedding
        np.testing.assert_array_equal(model(x.astype(dtype))[0].numpy(), expected)
    with pytest.raises(ValueError, match=r"whole-number ids, got float\d+ ids such as 1.5"):
        model(np.array([[1.0, 1.5]]))
    with pytest.raises(ValueError, match=r"ids in \[0, 27\), got ids from 1 to 30"):
        model(np.array([[1, 30]]))
    with pytest.raises(ValueError, match=r"ids in \[0, 27\), got ids from -1 to 2"):
        model(np.array([[2, -1]], np.int32), model.zero_state(1))
    with pytest.raises(ValueError, match="invalid dtype for argument `inputs`.*string"):
        model(tf.constant([["a", "b"]]))


def _fit(model_class, dropout, x, y):
    """A fresh glorot model (the same weights for any rate), compiled and fit 3 epochs."""
    keras.utils.set_random_seed(0)
    model = model_class(A, N, init="glorot", dropout=dropout)
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, model.fit(x, y, batch_size=4, epochs=3, shuffle=False,
                            verbose=0).history["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("model_class", [models.Arch1Model, models.ElmanModel,
                                         STACKED_INDRNN])
def test_fit_applies_dropout_with_the_train_steps_masks(model_class):
    window = ids(16, 11, seed=3)
    x, y = window[:, :-1], window[:, 1:]
    plain, plain_losses = _fit(model_class, 0.0, x, y)
    dropped, dropped_losses = _fit(model_class, 0.4, x, y)
    assert np.all(np.abs(np.subtract(plain_losses, dropped_losses)) > 1e-4), \
        (plain_losses, dropped_losses)
    # Keras's training call draws tf-rnn train's masks: seed and step, one implementation.
    step = int(dropped.optimizer.iterations)
    assert step == 12
    seeded = dropped(x, dropout_seed=tf.constant([0, step], tf.int64))[0].numpy()
    np.testing.assert_array_equal(dropped(x, training=True)[0].numpy(), seeded)
    assert not np.allclose(seeded, dropped(x)[0].numpy())
    # Evaluation and prediction never drop: the same weights without dropout agree.
    plain.set_weights(dropped.get_weights())
    np.testing.assert_array_equal(dropped.predict(x, verbose=0)[0],
                                  plain.predict(x, verbose=0)[0])
    assert dropped.evaluate(x, y, verbose=0) == plain.evaluate(x, y, verbose=0)
    # Inside a Sequential the model has no optimizer of its own: it still drops.
    keras.utils.set_random_seed(0)
    inner = model_class(A, N, init="glorot", dropout=0.4)
    outer = keras.Sequential([keras.Input((10,), dtype="int32"), inner])
    outer.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=False,
                  loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True), None])
    losses = outer.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history["loss"]
    assert np.all(np.abs(np.subtract(plain_losses, losses)) > 1e-4), (plain_losses, losses)


@pytest.mark.parametrize("model_class", MODELS)
def test_compile_fit_evaluate_save_load(tmp_path, model_class):
    keras.utils.set_random_seed(0)
    x = ids(16, 11, seed=3)
    data = tf.data.Dataset.from_tensor_slices((x[:, :-1], x[:, 1:])).batch(4)
    model = model_class(A, N, init="glorot")
    model.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] and np.all(np.isfinite(losses))
    loss, accuracy = model.evaluate(data, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    model.save(tmp_path / "x.keras")
    loaded = keras.models.load_model(tmp_path / "x.keras")
    np.testing.assert_allclose(loaded(x)[0].numpy(), model(x)[0].numpy(), atol=1e-6)
