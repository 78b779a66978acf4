"""What a Keras user tries first: calling a model without a state, `compile` + `fit`,
`summary()`, saving, and every cell inside Keras's own `keras.layers.RNN` loop."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import cells, models

A, N = 27, 8
MODELS = [models.Arch1Model, models.Arch2Model, models.ElmanModel]


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


@pytest.mark.parametrize("model_class", MODELS)
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


def test_summary_shows_output_shapes():
    model = models.Arch1Model(A, N)
    lines = io.StringIO()
    model.summary(print_fn=lambda line, **kwargs: lines.write(line + "\n"))
    text = lines.getvalue()
    row = next(line for line in text.splitlines() if "Arch1Cell" in line)
    assert "?" not in row and "None, 27" in row, text
    assert model.compute_output_shape((None, 40)) == ((None, 40, A), (None, 2 * N))


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
