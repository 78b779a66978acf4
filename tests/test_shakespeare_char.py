"""nanoGPT's shakespeare_char, tf_rnn's way and nanoGPT's (issue 37, item 4): the 90/10/0
split cut where nanoGPT's prepare.py cuts it, the window scoring of its estimate_loss
checked against the model run by hand, and the experiment's figures reproduced by the
`tf-rnn` commands it prints."""

import json
import shlex

import numpy as np
import pytest
import tensorflow as tf
from support import run_cli

from tf_rnn import data, models
from tf_rnn.base import config as config_lib
from tf_rnn.engine import steps


def test_the_split_is_checked_and_read_as_fractions():
    assert config_lib.Config().split_fractions == (0.9, 0.05, 0.05)
    assert config_lib.Config(split="90/10/0").split_fractions == (0.9, 0.1, 0.0)
    for bad in ("90/10", "90/20/0", "100/0/0", "a/b/c", "90/-5/15"):
        with pytest.raises(ValueError, match="config field `split`"):
            config_lib.Config(split=bad)


def test_no_test_part_cuts_where_nanogpt_cuts():
    corpus = data.load_corpus("shakespeare", vocab="corpus", fractions=(0.9, 0.1, 0.0))
    n = 1_115_394
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == \
        (int(n * 0.9), n - int(n * 0.9), 0)  # prepare.py: data[:int(n*0.9)], the rest
    assert corpus.vocab.size == 65
    parts = data.split_text(np.arange(1000), (0.9, 0.05, 0.05))  # the default: unchanged
    assert [len(p) for p in parts] == [900, 50, 50]


@pytest.fixture(scope="module")
def model():
    cfg = config_lib.Config(model="elman", num_nodes=8, init="glorot")
    model = models.build_model(cfg, 27)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(weight.dtype))
    return model


def test_windows_are_scored_from_the_zero_state_over_every_position(model):
    ids = np.random.default_rng(1).integers(0, 27, 500)
    got = steps.evaluate_windows(model, ids, count=5, length=16, seed=3, batch_size=2)
    starts = np.random.default_rng(3).integers(0, len(ids) - 16, 5)
    nats = []
    for s in starts:  # each window alone, one character at a time, from the zero state
        state = model.zero_state(1)
        for t in range(16):
            logits, state = model(tf.constant([[ids[s + t]]]), state)
            nats.append(-tf.nn.log_softmax(logits[0, 0])[ids[s + t + 1]].numpy())
    assert got["loss"] == pytest.approx(np.mean(nats), rel=1e-5)
    assert got["chars"] == 80 and got["windows"] == 5
    streams = steps.evaluate(model, ids, 4, 16)["loss"]
    assert abs(streams - got["loss"]) > 1e-3  # premise: the two ways differ here
    assert steps.evaluate_windows(model, ids, 5, 16, seed=4)["loss"] != got["loss"]


@pytest.mark.slow
def test_the_experiment_is_reproduced_by_the_commands_it_prints(tmp_path, capsys):
    from experiments import shakespeare_char

    workdir = tmp_path / "run"
    code = shakespeare_char.main(["--preset", "text8_arch1_sum", "--minutes", "0.05",
                                  "--windows", "40", "--workdir", str(workdir),
                                  "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["vocab"] == 65 and result["valid_chars"] == 111_540
    assert result["published"] == {"nanogpt_cpu_recipe_3min": 1.88,
                                   "nanogpt_a100_6layer_3min": 1.4697}
    train, windows, streams = (shlex.split(c) for c in result["commands"])
    assert train[:2] == ["tf-rnn", "train"] and "split=90/10/0" in train
    for command, key in ((windows, "nats_windows"), (streams, "nats_streams")):
        code, figures, err = run_cli(capsys, *command[1:])
        assert code == 0, err
        assert figures["loss"] == pytest.approx(result[key], rel=1e-6), command
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["split"] == "90/10/0" and saved["vocab"] == "corpus"
