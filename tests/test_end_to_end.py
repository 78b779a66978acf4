"""End to end through the `tf-rnn` CLI on a small corpus made here: train, resume, eval,
sample, and the TensorBoard event files read back with TensorBoard's own reader."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from support import ROOT, run_cli, tiny
from tensorboard.backend.event_processing import event_accumulator

from tf_rnn.run import reading
from tf_rnn.run.directory import Workdir

TINY = tiny(num_nodes=16, eval_every=20, sample_every=20, checkpoint_every=20,
            sample_length=30)
SCALAR_TAGS = {"train/loss", "train/bpc", "train/learning_rate", "train/grad_norm",
               "train/clip_fraction", "train/chars_per_sec", "valid/bpc"}


def read_events(events_dir):
    acc = event_accumulator.EventAccumulator(str(events_dir), size_guidance={
        event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


# Valid BPC that 40 tiny steps gain at least (measured: Arch 1 with the seed's init
# 4.753 -> 4.560, Arch 2 4.758 -> 2.03); half of it, so that float noise never matters.
LEARNED_MARGIN = {"text8_arch1": 0.1, "text8_arch2": 1.0}


def untrained_valid_bpc(workdir, corpus_path):
    """Valid BPC of the run's step-0 checkpoint, scored as training scores its own."""
    from tf_rnn import models
    from tf_rnn.engine import steps
    from tf_rnn.run import reading
    from tf_rnn.run.directory import Workdir

    w = Workdir(workdir)
    config, vocab = w.load_config(), w.load_vocab()
    model = models.build_model(config, vocab.size)
    tf.train.Checkpoint(model=model).restore(
        str(w.checkpoint_dir / "ckpt-0")).assert_existing_objects_matched().expect_partial()
    ids = reading.load_corpus_for(config, w, str(corpus_path)).valid
    ids = ids[:config.eval_chars] if config.eval_chars else ids
    return steps.evaluate(model, ids, config.eval_batch_size, config.num_unrollings)["bpc"]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["text8_arch1", "text8_arch2"])
def test_train_resume_eval_sample(tmp_path, capsys, corpus, preset):
    workdir = tmp_path / "run"
    code, first, err = run_cli(capsys, "train", "--preset", preset, "--data", str(corpus),
                               "--workdir", str(workdir), "--steps", "40", *TINY)
    assert code == 0, err
    assert first["step"] == 40 and np.isfinite(first["loss"]) and first["chars_per_sec"] > 0
    for name in ("config.json", "vocab.json", "run.json", "checkpoints/checkpoint"):
        assert (workdir / name).is_file(), name
    # It learned: the validation score beats the run's own untrained weights (ckpt-0, still
    # kept) by a margin. An update that is never applied leaves them exactly equal.
    untrained = untrained_valid_bpc(workdir, corpus)
    assert untrained == pytest.approx(np.log2(27), abs=0.05)
    assert 0 < first["valid_bpc"] < untrained - LEARNED_MARGIN[preset], \
        (first["valid_bpc"], untrained)
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["num_nodes"] == 16 and saved["model"] == preset.split("_")[1]

    # Resume: the same command with more steps continues from the checkpoint.
    code, second, err = run_cli(capsys, "train", "--preset", preset, "--data", str(corpus),
                                "--workdir", str(workdir), "--steps", "60", *TINY)
    assert code == 0, err
    assert "Resumed" in err and second["step"] == 60

    acc = read_events(workdir / "events")
    tags = set(acc.Tags()["tensors"])
    assert SCALAR_TAGS | {"samples/text"} <= tags
    loss_steps = [e.step for e in acc.Tensors("train/loss")]
    assert loss_steps == [10, 20, 30, 40, 50, 60]
    assert [e.step for e in acc.Tensors("valid/bpc")] == [20, 40, 60]
    text = acc.Tensors("samples/text")[-1].tensor_proto.string_val[0].decode()
    assert len(text) == 31  # a random start character, then sample_length more
    lr = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("train/learning_rate")]
    assert lr[0] == pytest.approx(2.5)

    code, ev, err = run_cli(capsys, "eval", "--workdir", str(workdir))
    assert code == 0, err
    assert ev["split"] == "valid" and ev["bpc"] == pytest.approx(second["valid_bpc"], rel=1e-5)
    valid = reading.load_corpus_for(Workdir(workdir).load_config(), Workdir(workdir),
                                 str(corpus)).valid
    streams = Workdir(workdir).load_config().eval_batch_size
    assert ev["chars"] == (len(valid) - 1) // streams * streams > 900  # the whole split

    args = ["sample", "--workdir", str(workdir), "--prime", "the ", "--length", "40",
            "--seed", "3"]
    code, s1, _ = run_cli(capsys, *args)
    code, s2, _ = run_cli(capsys, *args)
    assert s1["text"] == s2["text"] and s1["text"].startswith("the ")
    assert len(s1["text"]) == 44


def test_user_errors_are_one_line_without_traceback(tmp_path, capsys, corpus):
    code, _, err = run_cli(capsys, "eval", "--workdir", str(tmp_path / "nothing"))
    assert code == 2 and "config.json is missing" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "train", "--preset", "nope", "--workdir", str(tmp_path))
    assert code == 2 and "Unknown preset" in err
    code, _, err = run_cli(capsys, "train", "--data", str(tmp_path / "missing.txt"),
                           "--workdir", str(tmp_path / "w"))
    assert code == 2 and "missing.txt" in err


@pytest.mark.slow
def test_experiment_module_runs_as_documented(tmp_path, corpus):
    """`python -m experiments.text8_arch1` in a fresh process: JSON last on stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.text8_arch1", "--data", str(corpus),
         "--workdir", str(tmp_path / "w"), "--steps", "20", "--set", "num_nodes=8",
         "--set", "batch_size=4", "--set", "eval_every=0", "--set", "sample_every=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["step"] == 20 and result["sample"]
    saved = json.loads((tmp_path / "w" / "config.json").read_text())
    assert saved["jit_compile"] is True  # the experiments train under XLA by default
    assert "train:" in proc.stderr  # the tqdm bar
    assert "cpu_feature_guard" not in proc.stderr  # TensorFlow's start-up chatter is off
