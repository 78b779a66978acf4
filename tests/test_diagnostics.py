"""Diagnostics: gradient flow through time, unit activity, the recurrent spectrum."""

import json
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.inspect import diagnostics, probes
from tf_rnn.toys import sequence

A, B, T = 7, 3, 6


def _sum_ce(logits, targets):
    """Cross-entropy summed over steps, averaged over rows: additive over time slices."""
    nats = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(targets, tf.int32), logits=logits)
    return tf.reduce_sum(nats) / tf.cast(tf.shape(logits)[0], logits.dtype)


def _char_model(kind, combine="concat", activation="relu", init="glorot"):
    cfg = config_lib.Config(model=kind, num_nodes=5, combine=combine,
                            activation=activation, init=init)
    return models.build_model(cfg, A, dtype="float64")


def _window(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, A, (B, T + 1))
    return tf.constant(ids[:, :-1]), tf.constant(ids[:, 1:])


def _expected_flow(model, inputs, targets, state, readout, loss_fn):
    """dL/dh_t for every t, the other way: h_t from the reference loop as a watched
    tensor, the loss as (its own step's output via `readout`) + (the rest of the window
    run by the model's FAST path from h_t, with its hand-written BPTT)."""
    _, hs, _ = probes.reference_unroll(model, inputs, state)
    whole, last = [], []
    for t in range(T):
        h = tf.constant(hs[t])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(h)
            own = loss_fn(readout(h)[:, None], targets[:, t:t + 1])
            if t + 1 < T:
                rest, _ = model(inputs[:, t + 1:], h)
                later = loss_fn(rest, targets[:, t + 1:])
                final = loss_fn(rest[:, -1:], targets[:, -1:])
            else:
                later, final = 0.0, own
            total = own + later
        whole.append(np.linalg.norm(tape.gradient(total, h)))
        last.append(np.linalg.norm(tape.gradient(final, h)))
    return np.array(whole[::-1]), np.array(last[::-1])


@pytest.mark.parametrize("combine,activation", [("concat", "relu"), ("sum", "tanh"),
                                                ("mul", "tanh"), ("sum", "relu")])
def test_gradient_by_lag_matches_the_fast_path_arch1(combine, activation):
    model = _char_model("arch1", combine, activation)
    inputs, targets = _window()
    state = tf.constant(np.random.default_rng(1).uniform(0, 0.5, (B, model.state_size)))
    figures = probes.make_measure(model, _sum_ce)(inputs, targets, state)
    readout = lambda h: tf.matmul(h, model.cell.V) + model.cell.c
    whole, last = _expected_flow(model, inputs, targets, state, readout, _sum_ce)
    np.testing.assert_allclose(figures["grad_by_lag"], whole, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(figures["grad_by_lag_last"], last, rtol=1e-10, atol=1e-14)
    assert figures["grad_ratio"] == pytest.approx(whole[-1] / whole[0], rel=1e-10)
    assert last[-1] > 0  # the last step's error reaches back to the first step
    # The reference loop is the model: the same logits and last state as its fast path.
    logits, _, end = probes.reference_unroll(model, inputs, state)
    fast, fast_end = model(inputs, state)
    np.testing.assert_allclose(logits, fast, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(end, fast_end, rtol=1e-10, atol=1e-12)


def test_gradient_by_lag_and_weight_norms_elman():
    model = _char_model("elman", init="charrnn")
    inputs, targets = _window(2)
    state = tf.constant(np.random.default_rng(3).uniform(-0.5, 0.5, (B, 5)))
    figures = probes.make_measure(model, _sum_ce)(inputs, targets, state)
    readout = lambda h: tf.matmul(h, model.cell.W_hy) + model.cell.b_y
    whole, last = _expected_flow(model, inputs, targets, state, readout, _sum_ce)
    np.testing.assert_allclose(figures["grad_by_lag"], whole, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(figures["grad_by_lag_last"], last, rtol=1e-10, atol=1e-14)
    # Per-matrix norms before clipping: those of the fast path's gradient.
    with tf.GradientTape() as tape:
        loss = _sum_ce(model(inputs, state)[0], targets)
    grads = tape.gradient(loss, model.trainable_variables)
    assert figures["loss"] == pytest.approx(float(loss), rel=1e-12)
    assert list(figures["grad_norms"]) == ["W_xh", "W_hh", "b_h", "W_hy", "b_y"]
    np.testing.assert_allclose(list(figures["grad_norms"].values()),
                               [np.linalg.norm(g) for g in grads], rtol=1e-10)


def test_arch2_teacher_forcing_carries_no_gradient_through_time():
    model = _char_model("arch2", init="seed")
    inputs, targets = _window(4)
    state = model.one_hot(tf.constant([1, 2, 3]))  # a stream already under way
    figures = probes.make_measure(model, _sum_ce)(inputs, targets, state)
    logits, _, _ = probes.reference_unroll(model, inputs, state)
    np.testing.assert_allclose(logits, model(inputs, state)[0], rtol=1e-10, atol=1e-12)
    # dL/dh_t is its own step's output gradient alone: (softmax - onehot) V^T / B.
    d_logits = (tf.nn.softmax(logits) - tf.one_hot(targets, A, dtype=tf.float64)) / B
    own = np.linalg.norm(tf.einsum("bta,ha->tbh", d_logits, model.cell.V), axis=(1, 2))
    np.testing.assert_allclose(figures["grad_by_lag"], own[::-1], rtol=1e-10)
    assert figures["grad_by_lag_last"][0] > 0 and not figures["grad_by_lag_last"][1:].any()
    assert figures["sigma_max"] == pytest.approx(np.linalg.norm(model.cell.W.numpy(), 2))
    assert figures["spectral_radius"] is None  # W is (A, n)
    assert "saturated_fraction" in figures and figures["activation"] == "tanh"


def test_sequence_model_members_and_masked_loss():
    model = sequence.ElmanSequenceModel(2, 3, 1, "sigmoid", members=2, dtype="float64")
    rng = np.random.default_rng(5)
    inputs = tf.constant(rng.integers(0, 2, (B, T, 2)).astype(np.float64))
    targets = tf.constant(rng.integers(0, 2, (B, T, 1)).astype(np.float64))
    loss_fn = sequence.make_loss("bce", reduce_time="sum")
    figures = probes.make_measure(model, loss_fn)(inputs, targets, model.zero_state(B))
    w_hy, b_y = model.weights_masked()[3:]
    whole, last = _expected_flow(model, inputs, targets, model.zero_state(B),
                                 lambda h: tf.matmul(h, w_hy) + b_y, loss_fn)
    np.testing.assert_allclose(figures["grad_by_lag"], whole, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(figures["grad_by_lag_last"], last, rtol=1e-10, atol=1e-14)
    w_hh = model.weights_masked()[1].numpy()
    assert figures["sigma_max"] == pytest.approx(max(
        np.linalg.norm(w_hh[:3, :3], 2), np.linalg.norm(w_hh[3:, 3:], 2)))
    # A mask (the XOR task ignores the first output) is the loss's business: it works.
    masked = sequence.make_loss("bce", np.array([0.0] + [1.0] * (T - 1)))
    out = probes.make_measure(model, masked)(inputs, targets, model.zero_state(B))
    assert np.isfinite(out["grad_by_lag"]).all()


def test_activity_of_a_hand_made_window():
    h = np.zeros((2, 2, 4))  # (T, B, S)
    h[0, 0] = [1.0, 0.0, 0.0, -1.0]
    h[1, 1] = [2.0, 0.0, 3.0, 0.0]
    got = probes.activity(h, "relu", recurrent=slice(2, 4))
    # Active values: unit 0 twice, unit 2 once, out of 16; units 1 and 3 never.
    assert got["active_fraction"] == 3 / 16 and got["dead_fraction"] == 0.5
    np.testing.assert_array_equal(got["unit_rate"], [0.5, 0.0, 0.25, 0.0])
    assert got["recurrent_active_fraction"] == 1 / 8
    assert got["recurrent_dead_fraction"] == 0.5
    t = np.array([[[0.995, -0.999, 0.5, -0.9999]], [[0.2, -0.995, 0.0, 1.0]]])  # (2, 1, 4)
    got = probes.activity(np.tanh(np.arctanh(np.clip(t, -0.99999, 0.99999))), "tanh")
    assert got["saturated_fraction"] == 5 / 8 and got["stuck_fraction"] == 0.5
    s = np.array([[[0.005, 0.5, 0.995]], [[0.009, 0.991, 0.02]]])
    got = probes.activity(s, "sigmoid")
    assert got["saturated_fraction"] == 4 / 6 and got["stuck_fraction"] == 1 / 3
    with pytest.raises(ValueError, match="activation"):
        probes.activity(h, "gelu")


def test_spectrum_of_a_known_matrix():
    # Singular values 2 and 0.5 (the columns are orthogonal, of norms 0.5 and 2); the
    # eigenvalues are ±1 (the characteristic polynomial is λ² - 1).
    got = probes.spectrum([[0.0, 2.0], [0.5, 0.0]])
    assert got == pytest.approx({"sigma_max": 2.0, "spectral_radius": 1.0})
    # A rotation by 90° scaled by 3: both figures 3.
    assert probes.spectrum([[0.0, -3.0], [3.0, 0.0]]) == pytest.approx(
        {"sigma_max": 3.0, "spectral_radius": 3.0})
    assert probes.spectrum(np.ones((2, 3)))["spectral_radius"] is None
    assert probes.spectrum(np.ones((2, 3)))["sigma_max"] == pytest.approx(np.sqrt(6))


def test_recurrent_matrix_of_each_model():
    concat = _char_model("arch1", "concat")
    np.testing.assert_array_equal(probes.recurrent_matrix(concat),
                                  concat.cell.W.numpy()[5:])
    summed = _char_model("arch1", "sum")
    np.testing.assert_array_equal(probes.recurrent_matrix(summed), summed.cell.W.numpy())
    elman = _char_model("elman")
    np.testing.assert_array_equal(probes.recurrent_matrix(elman),
                                  elman.cell.W_hh.numpy())


def _seed_shape_figures(init):
    """Step-0 activity of the text8_arch1 model (the seed's n = 100) on text-like ids."""
    cfg = config_lib.get_preset("text8_arch1").replace(init=init)
    model = models.build_model(cfg, 27)
    ids = np.random.default_rng(0).integers(0, 27, (8, 11))  # 10 steps: the init decides
    measure = probes.make_measure(model)
    state = model.zero_state(8)
    for _ in range(2):  # a second window, from the state the first one left
        figures = measure(ids[:, :-1], ids[:, 1:], state)
        _, state = model(ids[:, :-1], state)
    return figures


def test_the_seed_init_starts_with_dead_recurrent_units_glorot_does_not():
    seed, glorot = _seed_shape_figures("seed"), _seed_shape_figures("glorot")
    assert seed["recurrent_units"] == "[100:200)"
    assert seed["recurrent_dead_fraction"] > 0.9 and seed["recurrent_active_fraction"] < 0.05
    assert glorot["recurrent_dead_fraction"] < 0.1
    assert glorot["recurrent_active_fraction"] > 0.3
    # No recurrent unit on: the last step's error reaches one step back, no further.
    assert not seed["grad_by_lag_last"][2:].any() and glorot["grad_by_lag_last"][5] > 0


@pytest.mark.parametrize("kind,scale", [("elman", 1.0), ("arch1", np.inf)])
def test_a_diverged_model_gives_none_with_the_reason_and_no_warning(kind, scale):
    model = models.build_model(config_lib.Config(model=kind, num_nodes=5, init="glorot"),
                               A)  # float32: 1e38 x 1e38 overflows
    recurrent = model.cell.W_hh if kind == "elman" else model.cell.W
    for v in model.trainable_variables:  # elman: finite weights whose products overflow
        v.assign(v * 1e38)
    recurrent.assign(recurrent * scale)
    ids = np.random.default_rng(0).integers(0, A, 3 * T + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. inf / inf in a ratio
        figures = probes.measure_text(model, ids, 3, T, 1)
    json.dumps(figures, allow_nan=False)  # raises on NaN or Infinity
    assert figures["loss"] is None and figures["nonfinite"]["loss"] in ("nan", "inf")
    assert figures["grad_ratio"] is None and "grad_ratio" in figures["nonfinite"]
    if scale == np.inf:  # TensorFlow's Eig cannot take it: no spectrum, and why
        assert figures["spectral_radius"] is None
        assert "non-finite weights" in figures["nonfinite"]["spectral_radius"]
    assert any(line.startswith("not finite") for line in diagnostics.table(figures))


def _events(events_dir):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(events_dir), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_training_writes_diagnostics_resumes_exports_and_diagnoses(tmp_path, capsys,
                                                                 monkeypatch):
    from tf_rnn.serve import export
    from tf_rnn.train import training

    data = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    data.write_text(" ".join(rng.choice(["the", "cat", "sat", "on", "a", "mat"], 3000)))
    cfg = config_lib.Config(num_nodes=8, batch_size=4, num_unrollings=10, log_every=5,
                            eval_every=10, sample_every=0, checkpoint_every=5,
                            eval_chars=500, diag_every=5, steps=10, jit_compile=False)
    assert config_lib.Config().diag_every == -1  # with each validation
    with pytest.raises(ValueError, match="diag_every"):
        config_lib.Config(diag_every=-2)
    training.train(cfg, tmp_path / "run", str(data), progress=False)
    training.train(cfg.replace(steps=17), tmp_path / "run", str(data), progress=False)
    acc = _events(tmp_path / "run" / "events")
    tags = set(acc.Tags()["tensors"])
    assert {"diag/grad_ratio", "diag/recurrent_dead_fraction", "diag/sigma_max",
            "diag/grad_norm/W", "diag/grad_by_lag", "weights/W", "diag/unit_rate"} <= tags
    # Every diag_every steps and at the last one, across the resume, each step once.
    assert [e.step for e in acc.Tensors("diag/sigma_max")] == [5, 10, 15, 17]
    profile = tf.make_ndarray(acc.Tensors("diag/grad_by_lag")[-1].tensor_proto)
    assert profile.shape == (10, 3) and (profile[:, 2] > 0).all()
    assert acc.SummaryMetadata("diag/grad_by_lag").plugin_data.plugin_name == "histograms"
    # Every chart says what it is; the profile's scale shows in log10 scalars per lag.
    from tf_rnn.engine import summaries
    from tf_rnn.run import reading

    for tag in tags:
        assert acc.SummaryMetadata(tag).summary_description == summaries.describe(tag) != ""
    assert {f"diag/grad_by_lag/lag_{k:03d}" for k in (0, 1, 2, 5, 9)} <= tags
    lag5 = tf.make_ndarray(acc.Tensors("diag/grad_by_lag_last/lag_005")[-1].tensor_proto)
    last = tf.make_ndarray(acc.Tensors("diag/grad_by_lag_last")[-1].tensor_proto)
    assert float(lag5) == pytest.approx(np.log10(last[5, 2]) if last[5, 2] > 0
                                        else diagnostics.LOG10_ZERO, abs=1e-5)
    # `tensorboard --logdir WORKDIR` (the README's) finds the run, named "events".
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "run"))
    assert list(multiplexer.Runs()) == ["events"]
    model = reading.load_model(tmp_path / "run")[0]
    # diag_every=-1 follows eval_every; 0 measures nothing.
    window = np.zeros((4, 11), np.int64)
    for every, due in ((-1, [10, 17]), (0, []), (3, [3, 6, 9, 12, 15, 17])):
        hook = diagnostics.TrainingDiagnostics(cfg.replace(diag_every=every), model)
        assert [s for s in range(1, 18) if hook.measure(s, 17, window, model.zero_state(4))
                is not None] == due
    info = export.export(tmp_path / "run", tmp_path / "export")
    assert info["step"] == 17
    text = export.sample_from_export(tmp_path / "export", "the", 5, seed=1)[0]
    assert text.startswith("the") and len(text) == 8

    # tf-rnn diagnose: a table, then one JSON line; --plot draws a PNG.
    from tf_rnn import cli

    argv = ["diagnose", "--workdir", str(tmp_path / "run"), "--windows", "2"]
    from tf_rnn.inspect import plots

    drawn = []
    draw = plots.diagnostics_figure
    monkeypatch.setattr(plots, "diagnostics_figure",
                        lambda path, runs, title: drawn.append(list(runs)) or draw(path, runs,
                                                                                   title))
    code = cli.main([*argv, "--plot", str(tmp_path / "d.png")])
    assert drawn == [["arch1 concat, relu, init seed"]]  # named from the run's config
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert code == 0 and result["windows"] == 2 and len(result["grad_by_lag"]) == 10
    assert result["checkpoint"].endswith("ckpt-17") and result["recurrent_units"] == "[8:16)"
    assert any(line.startswith("diag/recurrent_dead_fraction") for line in lines[:-1])
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the `plot` extra not installed
    code = cli.main([*argv, "--plot", str(tmp_path / "e.png")])
    err = capsys.readouterr().err
    assert code == 2 and "`plot` extra" in err and "Traceback" not in err
    assert not (tmp_path / "e.png").exists()
    monkeypatch.delitem(sys.modules, "matplotlib")

    # A diverged checkpoint: the JSON line is strict JSON, the figures None with the
    # reason, and no RuntimeWarning on the way.
    from tf_rnn.run import checkpoint
    from tf_rnn.run.directory import Workdir

    run = checkpoint.Run(cfg, model.alphabet_size, Workdir(tmp_path / "run"))
    run.restore()
    run.model.cell.W.assign(run.model.cell.W * np.inf)  # inf (and nan where W was 0)
    run.save(18, run.cursors, run.state)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1], parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert result["checkpoint"].endswith("ckpt-18") and result["loss"] is None
    assert result["spectral_radius"] is None and result["sigma_max"] is None
    assert "non-finite weights" in result["nonfinite"]["spectral_radius"]
    assert any(line.startswith("not finite") for line in lines[:-1])
