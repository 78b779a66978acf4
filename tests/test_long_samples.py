"""Sampling at length (issue 18, item 7): chunks that carry the state give the text of
one piece, the export's sampling loop is XLA-compiled (with a plain fallback), long
samples show progress, and `tf-rnn sample --out FILE` writes the text to a file."""

import json
import os
import stat
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from support import LEXICON, settings, write_corpus

from tf_rnn import cli, models
from tf_rnn.base import config as config_lib, logs
from tf_rnn.data import vocab as vocab_lib
from tf_rnn.engine import sampling
from tf_rnn.run import reading
from tf_rnn.serve import export, serving
from tf_rnn.train import training

VOCAB = vocab_lib.Vocabulary.text8()
TINY = settings(sample_length=10, eval_batch_size=4, checkpoint_every=None)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(4)
    model = models.build_model(config_lib.Config(model="arch1", num_nodes=16,
                                                 init="glorot"), VOCAB.size)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run and its export."""
    root = tmp_path_factory.mktemp("long")
    corpus = write_corpus(root / "corpus.txt", 2100, lexicon=LEXICON[:6])
    config = config_lib.with_overrides(config_lib.get_preset("text8_arch1"), TINY)
    training.train(config.replace(steps=3, epochs=0.0), root / "run", str(corpus),
                   progress=False)
    export.export(root / "run", root / "run" / "export")
    return root / "run"


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out.strip().splitlines()[-1]) if code == 0 else None), err


# --- chunks ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("prime", ["the ", ""])
def test_chunked_sample_is_the_one_piece_sample(model, prime):
    whole = sampling.sample(model, VOCAB, prime, 90, seed=8, num_streams=3, chunk_size=90)
    for chunk in (1, 7, 40):
        assert sampling.sample(model, VOCAB, prime, 90, seed=8, num_streams=3,
                               chunk_size=chunk) == whole
    assert len(set(whole)) == 3 and all(len(t) == len(prime or "x") + 90 for t in whole)


def test_streams_do_not_depend_on_how_many_there_are(model):
    """Under XLA a batch is padded to a power of two (one compilation for 5..8 streams);
    each stream's text is its own: the first 3 of 5 streams are the 3 streams of 3."""
    three = sampling.sample(model, VOCAB, "a", 60, seed=2, num_streams=3)
    five = sampling.sample(model, VOCAB, "a", 60, seed=2, num_streams=5)
    plain = sampling.make_generator(model.step, jit_compile=False)
    assert five[:3] == three
    assert sampling.sample(model, VOCAB, "a", 60, seed=2, num_streams=3,
                           generator=plain) == three


def test_progress_bar_on_stderr_only_when_asked(model, capsys):
    sampling.sample(model, VOCAB, "a", 50, seed=1, chunk_size=20, progress=True)
    err = capsys.readouterr().err
    assert "sample:" in err and "char/s" in err
    sampling.sample(model, VOCAB, "a", 50, seed=1, chunk_size=20)
    assert capsys.readouterr().err == ""


# --- the export's sampler -------------------------------------------------------------


@pytest.mark.slow
def test_export_generate_is_xla_and_matches_the_workdir_sampler_across_its_chunks(
        model, tmp_path):
    module = serving.CharModelExport(model, VOCAB, str(tmp_path))
    assert module.xla
    length = serving.GENERATE_CHUNK + 300  # two calls of the compiled loop
    args = (tf.constant(1.0), tf.constant(0), tf.constant(9, tf.int64))
    out = module.generate(tf.constant(["the ", "the "]), tf.constant(length), *args)
    texts = [t.decode() for t in out["text"].numpy()]
    assert texts == sampling.sample(model, VOCAB, "the ", length, seed=9, num_streams=2)
    # generate, then generate_more from its state: the same text.
    head = module.generate(tf.constant(["the "] * 2), tf.constant(1000), *args)
    more = module.generate_more(tf.constant([t.decode()[-1] for t in head["text"].numpy()]),
                                head["state"], tf.constant(length - 1000), *args,
                                tf.constant(1000))
    joined = [a.decode() + b.decode() for a, b in zip(head["text"].numpy(),
                                                         more["generated"].numpy())]
    assert joined == texts


def test_export_sampler_falls_back_without_xla(capsys):
    class StringStep:  # a string op in the step: XLA has no kernel for it
        def step(self, ids, state):
            width = 1.0 + tf.strings.to_number(tf.strings.as_string(ids), tf.float32)
            return tf.one_hot((ids + 1) % 4, 4) * width[:, None], state  # next: id + 1

        def zero_state(self, batch):
            return tf.zeros([batch, 2])

    generator = serving.make_sampler(StringStep(), jit_compile=True)
    assert not generator.uses_xla()
    assert "XLA could not compile the export's sampler" in capsys.readouterr().err
    ids, _ = generator(tf.constant([1, 2]), tf.zeros([2, 2]), 5, tf.constant(0.0),
                       tf.constant(0), tf.constant(0), 0)
    assert ids.numpy().tolist() == [[2, 3, 0, 1, 2], [3, 0, 1, 2, 3]]  # greedy
    assert not serving.make_sampler(StringStep(), jit_compile=False).uses_xla()


# --- the CLI --------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_out_writes_the_text_with_the_umasks_mode(trained, tmp_path, capsys):
    old = os.umask(0o027)
    try:
        for source in (["--workdir", str(trained)], ["--export", str(trained / "export")]):
            out = tmp_path / f"{source[0][2:]}.txt"
            argv = ["sample", *source, "--prime", "the ", "--length", "300", "--seed", "4"]
            code, inline, _ = _cli(capsys, *argv)
            assert code == 0 and len(inline["text"]) == 304 and "texts" not in inline
            code, result, err = _cli(capsys, *argv, "--out", str(out))
            assert code == 0, err
            assert out.read_text(encoding="utf-8") == inline["text"]
            assert "text" not in result and "texts" not in result
            assert result["out"] == str(out) and result["chars"] == 304
            assert result["seed"] == 4 and result["length"] == 300
            assert stat.S_IMODE(out.stat().st_mode) == 0o640
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    finally:
        os.umask(old)
    code, _, err = _cli(capsys, "sample", "--workdir", str(trained), "--num-streams", "2",
                        "--out", str(tmp_path / "two.txt"))
    assert code == 2 and "--num-streams 2" in err and not (tmp_path / "two.txt").exists()


def test_sample_json_holds_the_streams_once(trained, capsys):
    code, result, _ = _cli(capsys, "sample", "--workdir", str(trained), "--length", "20",
                           "--seed", "1", "--num-streams", "2")
    assert code == 0 and "text" not in result and len(result["texts"]) == 2


def test_long_cli_sample_shows_progress(trained, capsys):
    length = str(sampling.SAMPLE_CHUNK + 1)  # two chunks
    code, result, err = _cli(capsys, "sample", "--workdir", str(trained), "--length",
                             length, "--seed", "2")
    assert code == 0 and len(result["text"]) == int(length) + 1
    assert "sample:" in err and "char/s" in err
    code, _, err = _cli(capsys, "sample", "--workdir", str(trained), "--length", length,
                        "--seed", "2", "--no-progress")
    assert code == 0 and "char" not in err


@pytest.mark.slow
def test_export_sample_in_a_fresh_process_is_quiet_and_the_workdirs_text(trained,
                                                                         tmp_path):
    out = tmp_path / "sample.txt"
    env = {k: v for k, v in os.environ.items() if k not in (logs.VERBOSE_ENV,
                                                            "TF_CPP_MIN_LOG_LEVEL")}
    proc = subprocess.run(
        [sys.executable, "-m", "tf_rnn", "sample", "--export", str(trained / "export"),
         "--length", str(sampling.SAMPLE_CHUNK + 5), "--seed", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    native = [line for line in proc.stderr.splitlines()
              if logs.is_native_log_line(line.encode()) or "oneDNN" in line]
    assert native == []
    assert "char/s" in proc.stderr  # the progress bar
    model, vocab, _ = reading.load_model(trained)
    assert out.read_text(encoding="utf-8") == sampling.sample(
        model, vocab, "", sampling.SAMPLE_CHUNK + 5, seed=3)[0]
