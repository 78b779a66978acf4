"""Tests of tf_rnn.serve.export: the SavedModel's signatures, its fresh-process use, and the CLI.

One tiny run of each model (Arch 1, Arch 2, the S3 Elman char-RNN on a corpus
vocabulary with newlines and non-ASCII letters) is trained and exported once per module.
"""

import collections
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from support import settings, words

from tf_rnn import cli
from tf_rnn.base import config as config_lib, errors
from tf_rnn.engine import sampling, steps as steps_lib
from tf_rnn.run import reading as runs_lib
from tf_rnn.serve import export as export_lib, serving
from tf_rnn.train import training

TINY = settings(sample_length=10, eval_batch_size=4, checkpoint_every=None)
Run = collections.namedtuple("Run", "workdir export data text model vocab config loaded")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    plain = words(3300, seed=0, lexicon=["the", "cat", "sat", "on", "a", "mat", "and", "ran",
                                         "away"])
    rich = words(4000, seed=1, lexicon=["The", "café", "is", "naïve,", "said", "Zoë.\n",
                                        "Yes!", "no;"])
    runs = {}
    for kind, preset, text in (("arch1", "text8_arch1", plain), ("arch2", "text8_arch2", plain),
                               ("elman", "charrnn_adagrad", rich)):
        data = root / f"{kind}.txt"
        data.write_text(text, encoding="utf-8")
        config = config_lib.with_overrides(config_lib.get_preset(preset), TINY)
        workdir = root / f"run_{kind}"
        training.train(config.replace(steps=30, epochs=0.0), workdir, str(data),
                       progress=False)
        out = root / f"export_{kind}"
        info = export_lib.export(workdir, out)
        assert info["step"] == 30 and info["model"] == config.model
        model, vocab, config = runs_lib.load_model(workdir)
        runs[kind] = Run(workdir, out, data, text, model, vocab, config,
                         tf.saved_model.load(str(out)))
    return runs


def _teacher_forced_logits(run, text):
    ids = run.vocab.encode(text)
    logits, _ = run.model(tf.constant(ids[None]), run.model.zero_state(1))
    return logits[0].numpy()  # (T, A)


def _generate(loaded, primes, length=30, temperature=1.0, top_k=0, seed=0):
    out = loaded.generate(tf.constant(primes), tf.constant(length),
                          tf.constant(float(temperature)), tf.constant(top_k),
                          tf.constant(seed, tf.int64))
    return [t.decode("utf-8") for t in out["text"].numpy()]


# --- Signatures -------------------------------------------------------------------------


@pytest.mark.slow
def test_signatures_are_batch_polymorphic(runs):
    loaded = runs["arch1"].loaded
    assert {"step", "generate", "score", "step_text", "zero_state"} <= set(loaded.signatures)
    inputs = loaded.signatures["step"].structured_input_signature[1]
    assert inputs["ids"].shape.as_list() == [None]
    assert inputs["state"].shape.as_list() == [None, runs["arch1"].model.state_size]
    assert loaded.signatures["score"].structured_input_signature[1]["text"].shape.as_list() \
        == [None]
    for batch in (1, 7):
        state = loaded.signatures["zero_state"](batch_size=tf.constant(batch))["state"]
        out = loaded.signatures["step"](ids=tf.zeros([batch], tf.int32), state=state)
        assert out["logits"].shape == (batch, 27) and out["state"].shape == state.shape


@pytest.mark.slow
def test_no_retracing_per_batch_size(runs, tmp_path):
    run = runs["arch1"]
    module = serving.CharModelExport(run.model, run.vocab, str(tmp_path))
    for batch in (1, 7, 3):
        module.step(tf.zeros([batch], tf.int32), module.zero_state(batch)["state"])
        module.score(tf.constant(["the cat"] * batch))
    assert module.step.experimental_get_tracing_count() == 1
    assert module.score.experimental_get_tracing_count() == 1


# --- score / step / generate against the training model ----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["arch1", "arch2", "elman"])
def test_score_ragged_batch_matches_evaluate(runs, kind):
    run = runs[kind]
    texts = [run.text[:600], run.text[100:103], run.text[:1], "", run.text[50:300]]
    out = run.loaded.score(tf.constant(texts))
    bpc, count = out["bpc"].numpy(), out["num_predictions"].numpy()
    np.testing.assert_array_equal(count, [599, 2, 0, 0, 249])
    assert np.isnan(bpc[2]) and np.isnan(bpc[3])
    eval_step = steps_lib.make_eval_step(run.model)
    for i in (0, 1, 4):  # 600 characters cross a SCORE_WINDOW boundary
        expected = steps_lib.evaluate(run.model, run.vocab.encode(texts[i]), 1, 10,
                                      eval_step)["bpc"]
        assert bpc[i] == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["arch1", "arch2", "elman"])
def test_step_matches_training_model(runs, kind):
    run, text = runs[kind], runs[kind].text[:25]
    expected = _teacher_forced_logits(run, text)
    state = run.loaded.zero_state(tf.constant(1))["state"]
    for t, char in enumerate(text):
        out = run.loaded.step_text(tf.constant([char]), state)
        np.testing.assert_allclose(out["logits"][0].numpy(), expected[t], atol=1e-5)
        _, model_state = run.model.step(tf.constant(run.vocab.encode(char)), state)
        state = out["state"]
        np.testing.assert_allclose(state.numpy(), model_state.numpy(), atol=1e-6)


@pytest.mark.slow
def test_arch2_state_is_previous_output(runs):
    run = runs["arch2"]
    state = run.loaded.zero_state(tf.constant(2))["state"]
    assert not state.numpy().any()
    ids = run.vocab.encode("ta")
    out = run.loaded.step(tf.constant(ids), state)
    np.testing.assert_array_equal(out["state"].numpy(), np.eye(27)[ids])  # fed back next


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["arch1", "elman"])
def test_generate_ragged_primes_match_sampling(runs, kind):
    run = runs[kind]
    primes = [run.text[:9], run.text[3:5], run.text[20:21]]
    generator = sampling.make_generator(run.model.step, jit_compile=False)
    batched = _generate(run.loaded, primes, temperature=0.0)
    for prime, text in zip(primes, batched):
        assert text == _generate(run.loaded, [prime], temperature=0.0)[0]
        assert text == sampling.sample(run.model, run.vocab, prime, 30, temperature=0.0,
                                       generator=generator)[0]


@pytest.mark.slow
def test_generate_seeded_and_empty_prime(runs):
    loaded, vocab = runs["arch1"].loaded, runs["arch1"].vocab
    primes = ["the cat", "", "a"]
    first = _generate(loaded, primes, length=60, seed=11)
    assert first == _generate(loaded, primes, length=60, seed=11)
    assert first != _generate(loaded, primes, length=60, seed=12)
    assert first[0].startswith("the cat") and len(first[0]) == 7 + 60
    assert len(first[1]) == 1 + 60
    out = loaded.generate(tf.constant(["the"]), tf.constant(0), tf.constant(1.0),
                          tf.constant(0), tf.constant(0, tf.int64))
    assert out["text"].numpy()[0] == b"the" and out["generated"].numpy()[0] == b""
    assert _generate(loaded, primes, top_k=1, seed=5) == _generate(loaded, primes, 30, 0.0, seed=5)
    # An empty prime starts with a character drawn uniformly from the whole vocabulary:
    # 540 draws (20 expected of each) show every character, none of them 3x too often.
    starts = collections.Counter(t[0] for t in _generate(loaded, [""] * 540, length=0,
                                                          seed=11))
    assert set(starts) == set(vocab.chars) and max(starts.values()) < 60


# --- bad input --------------------------------------------------------------------------


@pytest.mark.slow
def test_unknown_characters_are_an_error(runs):
    loaded = runs["arch1"].loaded
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in the vocabulary"):
        loaded.score(tf.constant(["the cat", "The Cat!"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in the vocabulary"):
        _generate(loaded, ["Q"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="exactly one character"):
        loaded.step_text(tf.constant(["ab"]), loaded.zero_state(tf.constant(1))["state"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="alphabet size"):
        loaded.step(tf.constant([27]), loaded.zero_state(tf.constant(1))["state"])


@pytest.mark.slow
def test_unknown_space_maps_to_space(runs, tmp_path):
    run = runs["arch1"]
    module = serving.CharModelExport(run.model, run.vocab, str(tmp_path), unknown="space")
    bpc = module.score(tf.constant(["the Cat!sat", "the  at sat"]))["bpc"].numpy()
    assert bpc[0] == bpc[1]
    with pytest.raises(ValueError, match="unknown"):
        serving.CharModelExport(run.model, run.vocab, str(tmp_path), unknown="skip")


# --- atomic export and the CLI -----------------------------------------------------------


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out.strip().splitlines()[-1]) if code == 0 else None), err


@pytest.mark.slow
def test_export_refuses_non_empty_dir(runs, tmp_path, capsys):
    workdir = str(runs["arch1"].workdir)
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _cli(capsys, "export", "--workdir", workdir, "--out", str(out))
    assert code == 2 and err.startswith("tf-rnn: error: ") and "--overwrite" in err
    code, _, err = _cli(capsys, "export", "--workdir", workdir, "--out", str(out),
                        "--overwrite")
    assert code == 2 and "holds no SavedModel" in err  # not an export: never replaced
    assert [p.name for p in tmp_path.rglob("*")] == ["exp", "keep.txt"]
    code, _, err = _cli(capsys, "export", "--workdir", workdir, "--out", workdir,
                        "--overwrite")
    assert code == 2 and "work directory" in err
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.ExportError, match="not a directory"):
        export_lib.export(workdir, tmp_path / "file", overwrite=True)


@pytest.mark.slow
def test_cli_export_overwrites(runs, tmp_path, capsys):
    out = tmp_path / "exp"
    shutil.copytree(runs["elman"].export, out)
    (out / "old.txt").write_text("old export")
    code, result, _ = _cli(capsys, "export", "--workdir", str(runs["arch1"].workdir),
                           "--out", str(out), "--overwrite")
    assert code == 0 and result["export_dir"] == str(out) and result["step"] == 30
    assert not (out / "old.txt").exists() and (out / "saved_model.pb").is_file()
    assert (out / "assets" / "vocab.txt").read_text().splitlines()[:2] == ["32", "97"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # nothing left aside


def _tree(path):
    return {str(p.relative_to(path)): p.read_text() for p in path.rglob("*") if p.is_file()}


def test_replace_dir_swaps_whole_directories(tmp_path, monkeypatch):
    out, staging = tmp_path / "exp", tmp_path / ".exp.new"
    for d, files in ((out, {"a": "old", "sub/b": "old"}), (staging, {"c": "new"})):
        for name, text in files.items():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(text)
    real_rename = os.rename

    def failing_rename(src, dst):
        if str(src) == str(staging):
            raise OSError("rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(export_lib.os, "rename", failing_rename)
    with pytest.raises(OSError, match="rename failed"):
        export_lib._replace_dir(staging, out)
    assert _tree(out) == {"a": "old", "sub/b": "old"}  # the old export is back
    monkeypatch.setattr(export_lib.os, "rename", real_rename)
    export_lib._replace_dir(staging, out)
    assert _tree(out) == {"c": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]


@pytest.mark.slow
def test_failed_export_keeps_the_old_one(runs, tmp_path, monkeypatch):
    out = tmp_path / "exp"
    shutil.copytree(runs["arch1"].export, out)
    before = sorted(p.name for p in out.rglob("*"))

    def crash(module, path, signatures=None):
        (tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "w")).write("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_lib.tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_lib.export(runs["arch1"].workdir, out, overwrite=True)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # staging removed


@pytest.mark.slow
def test_cli_sample_from_export_without_checkpoint(runs, capsys):
    run = runs["elman"]
    checkpoints = run.workdir / "checkpoints"
    hidden = run.workdir / "hidden"
    argv = ["sample", "--export", str(run.export), "--prime", "Zoë", "--length", "40",
            "--seed", "3", "--num-streams", "2", "--top-k", "5"]
    os.rename(checkpoints, hidden)
    try:
        code, result, _ = _cli(capsys, *argv)
    finally:
        os.rename(hidden, checkpoints)
    assert code == 0 and len(result["texts"]) == 2 and "text" not in result  # once, not twice
    assert all(t.startswith("Zoë") and len(t) == 43 for t in result["texts"])
    assert result["texts"] == _generate(run.loaded, ["Zoë"] * 2, 40, top_k=5, seed=3)
    code, _, err = _cli(capsys, "sample", "--export", str(run.export), "--prime", "@")
    assert code == 2 and "not in the vocabulary" in err


# --- a fresh process with TensorFlow only ---------------------------------------------

FRESH = r"""
import json, sys
sys.modules["tf_rnn"] = None  # importing tf_rnn would fail: the export must not need it
sys.modules["keras"] = None  # nor Keras
import numpy as np
import tensorflow as tf

spec = json.load(open(sys.argv[1]))
results = {}
for kind, s in spec.items():
    m = tf.saved_model.load(s["export"])
    chars = [c.decode("utf-8") for c in m.vocabulary().numpy()]
    ids = np.array([[chars.index(c) for c in s["text"][o:o + 20]] for o in range(7)], np.int32)
    r = {"score_1": m.score(tf.constant([s["text"]]))["bpc"].numpy().tolist()}
    r["score_7"] = m.signatures["score"](text=tf.constant(s["texts7"]))["bpc"].numpy().tolist()
    state, logits = m.zero_state(tf.constant(1))["state"], []
    for c in s["text"][:20]:
        out = m.step_text(tf.constant([c]), state)
        state = out["state"]
        logits.append(out["logits"][0].numpy().tolist())
    r["step_1"] = logits
    state, logits = m.signatures["zero_state"](batch_size=tf.constant(7))["state"], []
    for t in range(20):
        out = m.signatures["step"](ids=tf.constant(ids[:, t]), state=state)
        state = out["state"]
        logits.append(out["logits"].numpy().tolist())
    r["step_7"] = logits
    def gen(primes, seed):
        out = m.signatures["generate"](
            prime=tf.constant(primes), length=tf.constant(40), temperature=tf.constant(1.0),
            top_k=tf.constant(0), seed=tf.constant(seed, tf.int64))
        return [t.decode("utf-8") for t in out["text"].numpy()]
    r["gen_7"] = [gen(s["primes7"], 42), gen(s["primes7"], 42), gen(s["primes7"], 43)]
    r["gen_1"] = gen(s["primes7"][:1], 42)
    head = m.generate(tf.constant(s["primes7"]), tf.constant(15), tf.constant(1.0),
                      tf.constant(0), tf.constant(42, tf.int64))  # then 25 more: gen_7[0]
    more = m.signatures["generate_more"](
        last=tf.constant([t.decode("utf-8")[-1] for t in head["text"].numpy()]),
        state=head["state"], length=tf.constant(25), temperature=tf.constant(1.0),
        top_k=tf.constant(0), seed=tf.constant(42, tf.int64), start=tf.constant(15))
    r["gen_more"] = [a.decode("utf-8") + b.decode("utf-8") for a, b in
                     zip(head["text"].numpy(), more["generated"].numpy())]
    results[kind] = r
# What `saved_model_cli show --all --dir` prints (the function it calls: one process for
# both checks).
import contextlib, io
from tensorflow.python.tools import saved_model_cli
shown = io.StringIO()
with contextlib.redirect_stdout(shown):
    saved_model_cli._show_all(spec["arch2"]["export"])
results["saved_model_cli"] = shown.getvalue()
assert sys.modules.get("tf_rnn") is None and sys.modules.get("keras") is None
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def fresh(runs, tmp_path_factory):
    """FRESH run on the module's exports: (its spec, its results, its stderr)."""
    tmp_path = tmp_path_factory.mktemp("fresh")
    spec = {}
    for kind, run in runs.items():
        spec[kind] = {"export": str(run.export), "text": run.text,
                      "texts7": [run.text[i * 37:i * 37 + 5 + 9 * i] for i in range(7)],
                      "primes7": [run.text[i:i + 1 + i % 4] for i in range(6)] + [""]}
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # TensorFlow's own line says XLA compiled
    proc = subprocess.run([sys.executable, "-c", FRESH, "spec.json", "out.json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return spec, json.loads((tmp_path / "out.json").read_text(encoding="utf-8")), proc.stderr


@pytest.mark.slow
def test_fresh_process_without_tf_rnn(runs, fresh, capsys):
    spec, results, stderr = fresh
    assert "Compiled cluster using XLA" in stderr  # generate's loop, loaded
    for kind, run in runs.items():
        r = results[kind]
        code, figures, _ = _cli(capsys, "eval", "--workdir", str(run.workdir), "--data",
                                str(run.data), "--split", "all", "--batch-size", "1")
        assert code == 0 and figures["chars"] == len(run.text) - 1
        assert r["score_1"][0] == pytest.approx(figures["bpc"], abs=1e-4)
        local = run.loaded.score(tf.constant(spec[kind]["texts7"]))["bpc"].numpy()
        np.testing.assert_allclose(r["score_7"], local, atol=1e-6)
        np.testing.assert_allclose(r["step_1"], _teacher_forced_logits(run, run.text[:20]),
                                   atol=1e-5)
        for row in range(7):
            expected = _teacher_forced_logits(run, run.text[row:row + 20])
            np.testing.assert_allclose(np.array(r["step_7"])[:, row], expected, atol=1e-5)
        same, again, other = r["gen_7"]
        assert same == again != other and len(same) == 7
        assert same == _generate(run.loaded, spec[kind]["primes7"], 40, seed=42)
        assert len(r["gen_1"]) == 1 and r["gen_1"][0].startswith(spec[kind]["primes7"][0])
        assert r["gen_more"] == same  # generate + generate_more: the one-call text


@pytest.mark.slow
def test_saved_model_cli_lists_the_signatures(fresh):
    shown = fresh[1]["saved_model_cli"]  # arch2's export, read without tf_rnn
    for name in ("step", "generate", "score", "zero_state", "step_text"):
        assert f"signature_def['{name}']" in shown
    assert "shape: (-1)" in shown and "shape: (-1, 27)" in shown


@pytest.mark.slow
def test_export_follows_the_runs_unknown_space(tmp_path):
    """README: an export reads characters outside the vocabulary as spaces when the run
    was trained with `--set unknown=space` (and fails on them otherwise: see above)."""
    data = tmp_path / "capitals.txt"
    data.write_text(words(2200, seed=2, lexicon=["The", "cat", "Sat", "on", "a", "mat."]), encoding="utf-8")
    config = config_lib.with_overrides(config_lib.get_preset("text8_arch1"),
                                       TINY + ["unknown=space", "init=glorot"])
    training.train(config.replace(steps=2), tmp_path / "run", str(data), progress=False)
    info = export_lib.export(tmp_path / "run", tmp_path / "export")  # no `unknown` given
    assert json.loads((tmp_path / "export" / export_lib.METADATA).read_text())["unknown"] \
        == "space"
    loaded = tf.saved_model.load(info["export_dir"])
    bpc = loaded.score(tf.constant(["the Cat.sat", "the  at sat"]))["bpc"].numpy()
    assert np.isfinite(bpc[0]) and bpc[0] == bpc[1]
    state = loaded.zero_state(tf.constant(2))["state"]
    logits = loaded.step_text(tf.constant(["C", " "]), state)["logits"].numpy()
    np.testing.assert_array_equal(logits[0], logits[1])
