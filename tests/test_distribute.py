"""tf.distribute on this CPU with TensorFlow's own machinery.

MirroredStrategy runs over 2 logical CPU devices, which must be configured before
TensorFlow initialises its devices: those checks run in a fresh process (this file run
as a script, see `_driver`). MultiWorkerMirroredStrategy runs as two local worker
processes on 127.0.0.1 ports given in TF_CONFIG.
"""

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from support import ROOT, free_ports, subprocess_env, tiny

TINY = tiny(num_nodes=16, eval_every=20, sample_every=20, sample_length=30)


def _env(**extra):
    env = subprocess_env(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _driver(*args, env=None, timeout=300):
    """Runs this file as a script in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *args], cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# In-process: names, config, CLI ------------------------------------------------------

def test_strategy_is_a_validated_config_field_and_a_cli_flag(monkeypatch, tmp_path):
    from tf_rnn import cli
    from tf_rnn.base import config
    from tf_rnn.train import training

    assert config.Config().strategy == "default"
    with pytest.raises(ValueError, match="`strategy`.*'ring'"):
        config.Config(strategy="ring")
    assert config.with_overrides(config.Config(), ["strategy=mirrored"]).strategy == "mirrored"

    monkeypatch.setattr(training, "train", lambda cfg, *args, **kwargs: cfg)
    parse = cli.build_parser().parse_args
    w = str(tmp_path / "w")
    cfg = cli.cmd_train(parse(["train", "--workdir", w, "--strategy", "multiworker",
                               "--set", "batch_size=8"]))
    assert cfg.strategy == "multiworker" and cfg.batch_size == 8
    assert cli.cmd_train(parse(["train", "--workdir", w])).strategy == "default"
    with pytest.raises(SystemExit):
        parse(["train", "--workdir", w, "--strategy", "ring"])


def test_default_strategy_is_the_single_device_path():
    import tensorflow as tf

    from tf_rnn.engine import distribute

    strategy = distribute.make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert distribute.is_default(strategy) and distribute.is_chief(strategy)
    x = np.arange(12.0).reshape(4, 3)
    assert distribute.split_rows(strategy, x) is x
    np.testing.assert_array_equal(distribute.gather_rows(strategy, x), x)
    with pytest.raises(ValueError, match="strategy.*'ring'"):
        distribute.make_strategy("ring")


# MirroredStrategy over 2 logical CPUs (fresh processes) --------------------------------

CASES = {
    # A tight global-norm clip: the clip must act on the all-reduced gradient.
    "arch1": dict(model="arch1", num_nodes=16, batch_size=8, num_unrollings=10,
                  clip_norm=0.05),
    "arch2": dict(model="arch2", num_nodes=8, batch_size=4, num_unrollings=5,
                  optimizer="sgd"),
    # Arch 1's other combinations: the sum (S4b) and multiplicative integration (S4c).
    # SGD for these two: Adam's per-element normalisation turns float rounding in near-zero
    # gradients into weight differences past the tolerance between the two reductions.
    "arch1_sum": dict(model="arch1", combine="sum", activation="tanh", num_nodes=12,
                      batch_size=4, num_unrollings=6, init="glorot", optimizer="sgd",
                      learning_rate=0.5),
    "arch1_mul": dict(model="arch1", combine="mul", activation="relu", num_nodes=12,
                      batch_size=4, num_unrollings=6, init="irnn", init_gain=0.5,
                      optimizer="sgd", learning_rate=0.5, clip_norm=0.05),
    # Element-wise clipping first, then the global norm (steps.make_train_step's order).
    "elman": dict(model="elman", num_nodes=12, batch_size=4, num_unrollings=6,
                  init="charrnn", optimizer="adagrad", learning_rate=0.1,
                  clip_value=0.05, clip_norm=0.3),
    # Two IndRNN layers with the skip: u's bound (a constraint) applied on each replica.
    "indrnn": dict(model="indrnn", num_layers=2, residual=True, num_nodes=12,
                   batch_size=4, num_unrollings=6, init="glorot", optimizer="sgd",
                   learning_rate=0.5),
}
STEPS = 6


def _compare_steps(workdir):
    """Per case: the same global batches through one device and through 2 mirrored
    replicas; returns what each saw (losses, norms, clip flags, weights, state)."""
    import tensorflow as tf

    from tf_rnn import data
    from tf_rnn.base import config
    from tf_rnn.engine import distribute
    from tf_rnn.run import checkpoint
    from tf_rnn.run.directory import Workdir

    mirrored = distribute.make_strategy("mirrored")
    single = distribute.make_strategy("default")
    ids = np.random.default_rng(0).integers(0, 27, 20000)
    out = {"replicas": mirrored.num_replicas_in_sync,
           "devices": list(mirrored.extended.worker_devices), "cases": {}}
    for name, fields in CASES.items():
        cfg = config.Config(**fields)
        seen = {}
        for label, strategy in (("single", single), ("mirrored", mirrored)):
            run = checkpoint.Run(cfg, 27, Workdir(os.path.join(workdir, name, label)), strategy)
            step = distribute.make_train_step(strategy, run.model, run.optimizer,
                                              cfg.clip_norm, cfg.clip_value)
            cursors = data.BatchCursors(ids, cfg.batch_size, cfg.num_unrollings)
            state, metrics = tf.convert_to_tensor(run.state), []
            for _ in range(STEPS):
                window = cursors.next()
                m, state = step(window[:, :-1], window[:, 1:], state)
                metrics.append([float(m["loss"]), float(m["grad_norm"]), bool(m["clipped"])])
            copies = [[c.numpy().tolist() for c in
                       strategy.experimental_local_results(getattr(v, "value", v))]
                      for v in run.model.trainable_variables]
            seen[label] = {"metrics": metrics, "copies": copies,
                           "state": distribute.gather_rows(strategy, state).numpy().tolist(),
                           "iterations": int(run.optimizer.iterations.numpy())}
            if label == "mirrored":
                # The divergence guard: a non-finite weight leaves every replica untouched.
                v = run.model.trainable_variables[-1]
                bad = v.numpy()
                bad[0] = np.inf
                v.assign(bad)
                window = cursors.next()
                m, _ = step(window[:, :-1], window[:, 1:], state)
                seen["guard"] = {
                    "finite": bool(m["finite"]),
                    "iterations": int(run.optimizer.iterations.numpy()),
                    "unchanged": all(
                        np.array_equal(c.numpy(), np.asarray(copies[0][0]))
                        for c in strategy.experimental_local_results(
                            run.model.trainable_variables[0].value))}
        out["cases"][name] = seen
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    blocks = distribute.split_rows(mirrored, x)
    out["blocks"] = [np.asarray(b).tolist()
                     for b in mirrored.experimental_local_results(blocks)]
    try:
        distribute.strategy_for(config.Config(batch_size=3, strategy="mirrored"))
        out["odd_batch"] = None
    except ValueError as err:
        out["odd_batch"] = str(err)
    return out


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, corpus):
    """One fresh process with 2 logical CPUs runs both mirrored checks below."""
    workdir = tmp_path_factory.mktemp("mirrored")
    out = _driver("mirrored", str(workdir), str(corpus), env=_env(TF_RNN_CPU_DEVICES="2"))
    return workdir, out


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(mirrored):
    out = mirrored[1]["compare"]
    assert out["replicas"] == 2 and len(set(out["devices"])) == 2
    # Replica r holds rows [r*B/R, (r+1)*B/R) of the global batch.
    x = np.arange(8 * 3).reshape(8, 3)
    assert out["blocks"] == [x[:4].tolist(), x[4:].tolist()]
    assert "`batch_size`" in out["odd_batch"] and "2 replicas" in out["odd_batch"]
    assert sorted(out["cases"]) == sorted(CASES)
    for name, seen in out["cases"].items():
        single, mirrored = seen["single"], seen["mirrored"]
        s, m = np.array(single["metrics"]), np.array(mirrored["metrics"])
        np.testing.assert_allclose(m[:, 0], s[:, 0], rtol=1e-5, err_msg=f"{name} losses")
        np.testing.assert_allclose(m[:, 1], s[:, 1], rtol=1e-4, err_msg=f"{name} grad norms")
        assert (m[:, 2] == s[:, 2]).all(), name
        assert mirrored["iterations"] == single["iterations"] == STEPS
        for v_single, v_copies in zip(single["copies"], mirrored["copies"]):
            assert len(v_copies) == 2 and v_copies[0] == v_copies[1], f"{name}: copies differ"
            np.testing.assert_allclose(v_copies[0], v_single[0], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} weights")
        # The carried state, gathered from the replicas, is the single device's.
        np.testing.assert_allclose(mirrored["state"], single["state"], rtol=1e-4, atol=1e-6)
    assert np.array(out["cases"]["arch1"]["single"]["metrics"])[:, 2].all()  # clip acted
    assert np.array(out["cases"]["elman"]["single"]["metrics"])[:, 2].any()
    guard = out["cases"]["arch1"]["guard"]
    assert guard == {"finite": False, "iterations": STEPS, "unchanged": True}


def _dropout_replicas(workdir):
    """Mirrored with dropout: each replica draws its own masks, (seed, step·2 + replica).

    Returns the mirrored step's losses and, for the same weights and windows, each
    replica's half of the batch run by hand with its seed (and with one shared seed)."""
    import tensorflow as tf

    from tf_rnn import data
    from tf_rnn.base import config
    from tf_rnn.engine import distribute, steps
    from tf_rnn.run import checkpoint
    from tf_rnn.run.directory import Workdir

    strategy = distribute.make_strategy("mirrored")
    cfg = config.Config(combine="sum", activation="tanh", num_nodes=12, batch_size=4,
                        num_unrollings=6, init="glorot", optimizer="sgd", learning_rate=0.5,
                        dropout=0.5, seed=3)
    run = checkpoint.Run(cfg, 27, Workdir(workdir), strategy)
    step = distribute.make_train_step(strategy, run.model, run.optimizer, cfg.clip_norm,
                                      cfg.clip_value, seed=cfg.seed)
    cursors = data.BatchCursors(np.random.default_rng(1).integers(0, 27, 5000), 4, 6)
    state, out = tf.convert_to_tensor(run.state), []
    for k in range(3):
        window = cursors.next()
        x, y, s = window[:, :-1], window[:, 1:], distribute.gather_rows(strategy, state)

        def by_hand(seeds):
            halves = [steps.lm_loss(run.model(x[r * 2:r * 2 + 2], s[r * 2:r * 2 + 2],
                                              dropout_seed=tf.constant(seed, tf.int64))[0],
                                    y[r * 2:r * 2 + 2]) for r, seed in enumerate(seeds)]
            return float(np.mean(halves))

        expected = by_hand([[3, 2 * k], [3, 2 * k + 1]])
        shared = by_hand([[3, k], [3, k]])
        plain = float(steps.lm_loss(run.model(x, s)[0], y))
        metrics, state = step(x, y, state)
        out.append({"loss": float(metrics["loss"]), "expected": expected, "shared": shared,
                    "plain": plain})
    return out


def _cli_runs(workdir, data):
    """Mirrored: 20 steps, then a resumed run to 30; single device: 30 steps at once."""
    from tf_rnn import cli

    results = {}
    preset = ["--preset", "text8_arch1"]
    for key, argv in (("m20", [*preset, "--steps", "20", "--strategy", "mirrored"]),
                      ("m30", ["--steps", "30"]),  # the saved config: mirrored
                      ("d30", [*preset, "--steps", "30"])):
        out, err = io.StringIO(), io.StringIO()
        where = os.path.join(workdir, "single" if key == "d30" else "mirrored")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["train", "--data", data, "--workdir", where, *argv, *TINY])
        results[key] = {"code": code, "stderr": err.getvalue()[-3000:],
                        "result": json.loads(out.getvalue().strip().splitlines()[-1])
                        if code == 0 else None}
    return results


@pytest.mark.slow
def test_mirrored_dropout_draws_a_mask_per_replica_from_the_step(mirrored):
    for k, seen in enumerate(mirrored[1]["dropout"]):
        assert seen["loss"] == pytest.approx(seen["expected"], rel=1e-5), k
        assert abs(seen["loss"] - seen["plain"]) > 1e-3, k  # dropout acted
        assert abs(seen["loss"] - seen["shared"]) > 1e-4, k  # the replicas' masks differ


def _checkpoint(path):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    keys = [k for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "state/", "cursors/"))]
    return {k.split("/.ATTRIBUTES")[0]: reader.get_tensor(k) for k in keys}


@pytest.mark.slow
def test_mirrored_cli_trains_resumes_and_matches_one_device(mirrored):
    tmp_path, runs = mirrored[0] / "cli", mirrored[1]["cli"]
    for key in ("m20", "m30", "d30"):
        assert runs[key]["code"] == 0, runs[key]["stderr"]
    assert "MirroredStrategy: 2 replica(s) in sync" in runs["m20"]["stderr"]
    assert "Resumed" in runs["m30"]["stderr"] and "2 replica(s)" in runs["m30"]["stderr"]
    m, d = runs["m30"]["result"], runs["d30"]["result"]
    assert m["step"] == d["step"] == 30
    assert m["loss"] == pytest.approx(d["loss"], rel=1e-5)
    assert m["valid_bpc"] == pytest.approx(d["valid_bpc"], rel=1e-5)
    # The mirrored checkpoint holds the global cursors and carried state, as one device's.
    mine = _checkpoint(str(tmp_path / "mirrored" / "checkpoints" / "ckpt-30"))
    ref = _checkpoint(str(tmp_path / "single" / "checkpoints" / "ckpt-30"))
    assert mine.keys() == ref.keys() and mine["state"].shape == (4, 32)
    # The diagnostics ran on the mirrored model (diag_every=-1: with each validation).
    assert _loss_steps(tmp_path / "mirrored" / "events", "diag/grad_ratio") == [20, 30]
    np.testing.assert_array_equal(mine["cursors"], ref["cursors"])
    for key in mine:
        np.testing.assert_allclose(mine[key], ref[key], rtol=1e-4, atol=1e-6, err_msg=key)


# MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 -----------------------

def _worker_run(workdir, data, steps):
    """One worker: `tf-rnn train --strategy multiworker`, and a digest of the weights
    and carried state it holds at its last save (every worker saves, the chief keeps)."""
    from tf_rnn import cli
    from tf_rnn.run import checkpoint

    held = {}
    original = checkpoint.Run.save

    def save(self, step, *args, **kwargs):
        path = original(self, step, *args, **kwargs)
        weights = [v.numpy() for v in self.model.trainable_variables]
        held.update(step=int(step), weights=_digest(weights),
                    state=_digest([self.state.numpy()]),
                    sums=[float(np.sum(w, dtype=np.float64)) for w in weights])
        return path

    checkpoint.Run.save = save
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["train", "--preset", "text8_arch1", "--data", data, "--workdir",
                         workdir, "--steps", str(steps), "--strategy", "multiworker", *TINY])
    lines = out.getvalue().strip().splitlines()
    return {"code": code, "result": json.loads(lines[-1]) if code == 0 else None, **held}


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _launch_workers(workdir, data, steps, scratch, timeout=420):
    """Starts two workers (TF_CONFIG on free 127.0.0.1 ports); their JSON and stderr."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = _env(TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}),
                   TMPDIR=str(scratch))
        procs.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "worker", str(workdir), str(data),
             str(steps)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:  # one worker failing leaves the other waiting on a collective
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for code, out, err in outputs:
        assert code == 0, err[-5000:]
    return [(json.loads(out.strip().splitlines()[-1]), err) for _, out, err in outputs]


def _loss_steps(events_dir, tag="train/loss"):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(events_dir), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return [e.step for e in acc.Tensors(tag)]


@pytest.mark.slow
def test_multiworker_two_local_workers_agree_with_each_other_and_one_device(
        tmp_path, corpus, capsys):
    """Two workers training one run hold the same weights and state, bit for bit, and
    match one device with their global batch. (Their preemption and resume:
    test_preemption's multiworker SIGTERM test.)"""
    from tf_rnn import cli

    workdir, scratch, steps = tmp_path / "run", tmp_path / "tmp", 20
    scratch.mkdir()
    (chief, chief_err), (other, other_err) = _launch_workers(workdir, corpus, steps, scratch)
    for run, err in ((chief, chief_err), (other, other_err)):
        assert run["code"] == 0 and run["result"]["step"] == steps, err[-3000:]
        assert "MultiWorkerMirroredStrategy: 2 replica(s) in sync" in err
    assert "(chief)" in chief_err and "(chief)" not in other_err
    assert chief["step"] == other["step"] == steps
    assert chief["weights"] == other["weights"] and chief["state"] == other["state"]
    assert chief["result"]["loss"] == other["result"]["loss"]
    # The chief alone writes checkpoints and events; the other leaves no files.
    assert (workdir / "checkpoints" / f"ckpt-{steps}.index").is_file()
    assert _loss_steps(workdir / "events") == list(range(10, steps + 1, 10))
    assert os.listdir(scratch) == []

    # Two workers with batch 2 each equal one device with the global batch of 4.
    code = cli.main(["train", "--preset", "text8_arch1", "--data", str(corpus), "--workdir",
                     str(tmp_path / "single"), "--steps", str(steps), *TINY])
    single = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert chief["result"]["loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert chief["result"]["valid_bpc"] == pytest.approx(single["valid_bpc"], rel=1e-5)


if __name__ == "__main__":
    # The fresh-process side of the tests above: mirrored | worker.
    command, *rest = sys.argv[1:]
    if command == "mirrored":
        result = {"compare": _compare_steps(os.path.join(rest[0], "compare")),
                  "dropout": _dropout_replicas(os.path.join(rest[0], "dropout")),
                  "cli": _cli_runs(os.path.join(rest[0], "cli"), rest[1])}
    else:
        result = _worker_run(rest[0], rest[1], int(rest[2]))
    print(json.dumps(result))
