"""`tf-rnn score`: every character's log2-probability given the text before it, the
model's guesses, per line on demand, and a BPC that is `tf-rnn eval`'s and the export's
`score` on the same text (tf_rnn.engine.scoring)."""

import json

import numpy as np
import pytest
import tensorflow as tf
from support import run_cli, tiny, words

from tf_rnn import models
from tf_rnn.base import config as config_lib
from tf_rnn.data.vocab import Vocabulary
from tf_rnn.engine import scoring, steps

VOCAB = Vocabulary.text8()


@pytest.fixture(scope="module")
def model():
    """An untrained Arch 1 with weights spread wide enough that characters differ."""
    cfg = config_lib.Config(num_nodes=8, init="glorot")
    model = models.build_model(cfg, VOCAB.size)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(weight.dtype))
    return model


def test_each_character_is_scored_given_all_before_it(model):
    ids = VOCAB.encode("the cat sat on the mat")
    out = scoring.score_characters(scoring.window_scorer(model), ids, model.zero_state(1),
                                   top_k=3, window=4)  # windows cut mid-text: state carried
    # By hand: the whole text as one window, then each character's log-softmax.
    logits, _ = model(ids[None, :-1], model.zero_state(1))
    log_probs = tf.nn.log_softmax(logits[0]).numpy()
    want = log_probs[np.arange(len(ids) - 1), ids[1:]] / np.log(2)
    assert np.isnan(out["log2p"][0])  # nothing before the first character
    np.testing.assert_allclose(out["log2p"][1:], want, rtol=1e-5)
    np.testing.assert_array_equal(out["top_ids"][1:], np.argsort(-log_probs, 1)[:, :3])
    np.testing.assert_allclose(out["top_p"][1:],
                               np.exp(np.sort(log_probs, 1)[:, ::-1][:, :3]), rtol=1e-5)
    assert len(set(np.round(want, 4))) > 5  # premise: the characters score differently


def test_the_mean_is_evals_bpc_on_one_stream(model):
    ids = VOCAB.encode(words(700))
    out = scoring.score_characters(scoring.window_scorer(model), ids, model.zero_state(1))
    bpc = steps.evaluate(model, ids, batch_size=1, num_unrollings=40)["bpc"]
    assert -np.mean(out["log2p"][1:]) == pytest.approx(bpc, rel=1e-5)


def test_by_line_weights_back_to_the_whole():
    log2p = np.array([np.nan, -1.0, -2.0, -3.0, -4.0, -5.0])
    read, lines = scoring.read_by_line("ab\ncd\n")
    assert read == "ab\ncd\n"
    rows = scoring.by_line(lines, log2p)
    assert rows == [{"line": 1, "text": "ab\n", "bpc": 1.5, "chars": 2},
                    {"line": 2, "text": "cd\n", "bpc": 4.0, "chars": 3}]


NOTES = "".join(f"Line {i}: the {'CAT' if i % 3 else 'dog'}, {i * 7} legs!\n"
                if i % 10 else "\n" for i in range(1, 42))  # 41 lines, 4 of them blank


def test_a_normalised_text_is_scored_line_by_line_as_written():
    """Normalising maps newlines to spaces; the lines stay the user's (issue 36, 4)."""
    from tf_rnn import data

    read, lines = scoring.read_by_line(NOTES, normalize=True)
    assert read == data.normalize_text8(NOTES)  # what eval and score read of the whole
    assert [line for line, _, _ in lines] == NOTES.splitlines(keepends=True)
    ends = [(start, end) for _, start, end in lines]
    assert ends[0][0] == 0 and ends[-1][1] == len(read)
    assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))  # no character lost
    assert read[slice(*ends[1])] == "line two the cat one four legs "
    assert ends[9][0] == ends[9][1]  # the blank line 10 holds no character
    log2p = -np.arange(len(read), dtype=float)
    log2p[0] = np.nan  # as score_characters: nothing before the first character
    rows = scoring.by_line(lines, log2p)
    assert len(rows) == 41 and rows[9] == {"line": 10, "text": "\n", "bpc": None,
                                           "chars": 0}
    assert sum(r["chars"] for r in rows) == len(read) - 1  # the first is not scored


def test_cli_score_by_line_on_a_normalised_run(tmp_path, capsys, corpus):
    from tf_rnn import cli

    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(corpus), "--workdir", str(run), "--steps", "1",
                     "--set", "normalize=true", "--no-progress", *tiny()]) == 0
    capsys.readouterr()
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    assert cli.main(["score", "--workdir", str(run), "--file", str(notes), "--by",
                     "line"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, summary = out[:-1], out[-1]["summary"]
    assert [r["text"] for r in rows] == NOTES.splitlines(keepends=True)
    assert sum(r["chars"] for r in rows) == summary["chars"]
    weighted = sum(r["bpc"] * r["chars"] for r in rows if r["chars"]) / summary["chars"]
    assert weighted == pytest.approx(summary["bpc"], rel=1e-6)


def test_a_text_of_one_character_is_refused(model):
    with pytest.raises(ValueError, match="Cannot score a text of 1 character"):
        scoring.score_characters(scoring.window_scorer(model), VOCAB.encode("a"),
                                 model.zero_state(1))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """A tiny run trained 20 steps and exported (the CLI, in this process)."""
    from tf_rnn import cli

    root = tmp_path_factory.mktemp("score")
    assert cli.main(["train", "--data", str(corpus), "--workdir", str(root / "run"),
                     "--steps", "20", *tiny()]) == 0
    assert cli.main(["export", "--workdir", str(root / "run"), "--out",
                     str(root / "export")]) == 0
    return root


@pytest.mark.slow
def test_cli_score_equals_eval_and_the_exports_score(trained, capsys, tmp_path):
    text = words(600, seed=3)
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    from tf_rnn import cli

    assert cli.main(["score", "--workdir", str(trained / "run"), "--file", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert [r["char"] for r in rows] == list(text) and rows[0]["log2p"] is None
    assert summary["chars"] == len(text) - 1 and summary["checkpoint"].endswith("ckpt-20")
    assert summary["bpc"] == pytest.approx(-np.mean([r["log2p"] for r in rows[1:]]))
    assert all(len(r["top"]) == 5 and r["top"][0][1] >= r["top"][-1][1] for r in rows[1:])
    code, ev, err = run_cli(capsys, "eval", "--workdir", trained / "run", "--data", path,
                            "--split", "all", "--batch-size", "1")
    assert code == 0, err
    assert ev["chars"] == summary["chars"]
    assert summary["bpc"] == pytest.approx(ev["bpc"], rel=1e-5)
    served = tf.saved_model.load(str(trained / "export"))  # held: its functions use it
    exported = served.score(text=tf.constant([text]))
    assert summary["bpc"] == pytest.approx(float(exported["bpc"][0]), rel=1e-5)
    code, via_export, err = run_cli(capsys, "score", "--export", trained / "export",
                                    "--text", text[:80])
    assert code == 0, err
    code, via_run, err = run_cli(capsys, "score", "--workdir", trained / "run", "--text",
                                 text[:80])
    assert via_export["summary"]["bpc"] == pytest.approx(via_run["summary"]["bpc"], rel=1e-5)


@pytest.mark.slow
def test_unknown_characters_follow_the_runs_setting(trained, capsys):
    code, _, err = run_cli(capsys, "score", "--workdir", trained / "run", "--text",
                           "the Cat sat")
    assert code == 2 and err.count("\n") == 1 and "'C'" in err


def test_an_export_that_is_not_there_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "score", "--export", tmp_path / "nowhere", "--text",
                           "the cat")
    assert code == 2 and err.count("\n") == 1
    assert f"No SavedModel in {str(tmp_path / 'nowhere')!r}" in err
