"""Arch 1's combinations (concat, sum, mul) and activations through the whole tool:
train -> resume -> eval -> sample -> export -> the SavedModel, through the CLI.

The maths of each variant (hand-worked values, fast path == cell loop, finite
differences) is in test_models.py and test_kernels_gated.py; mirrored training of
`sum` and `mul` against one device is in test_distribute.py.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from support import tiny

from tf_rnn import cli
from tf_rnn.base import config
from tf_rnn.engine import steps
from tf_rnn.run import reading
from tf_rnn.run.directory import Workdir
from tf_rnn.serve import export

TINY = tiny(num_nodes=12, eval_every=20, checkpoint_every=20, eval_batch_size=4,
            sample_length=None)

# (preset, extra --set): the seed author's sum, text8_best (mul, tanh), mul with relu, and
# the seed's concat with tanh; without XLA, as every tiny run (the compiled step's tests
# are test_reliability's and test_first_run's).
VARIANTS = {
    "sum_tanh": ("text8_arch1_sum", ["--set", "learning_rate=1.0"]),
    "mul_tanh": ("text8_best", ["--set", "learning_rate=0.01"]),
    "mul_relu": ("text8_best", ["--set", "activation=relu", "--set", "init=irnn",
                                "--set", "learning_rate=0.01"]),
    "concat_tanh": ("text8_arch1", ["--set", "activation=tanh", "--set", "init=glorot",
                                    "--set", "optimizer=adam", "--set", "learning_rate=0.01"]),
}


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_end_to_end(tmp_path, capsys, corpus, variant):
    preset, extra = VARIANTS[variant]
    workdir = tmp_path / "run"
    args = ["train", "--preset", preset, "--data", str(corpus), "--workdir", str(workdir),
            *TINY, *extra]
    first, _ = _run(capsys, *args, "--steps", "40")
    second, err = _run(capsys, *args, "--steps", "60")
    assert "Resumed" in err and second["step"] == 60
    saved = json.loads((workdir / "config.json").read_text())
    combine, activation = variant.split("_")
    assert (saved["combine"], saved["activation"]) == (combine, activation)

    model, vocab, cfg = reading.load_model(workdir)
    assert model.combine == combine and model.activation == activation
    valid = reading.load_corpus_for(cfg, Workdir(workdir), str(corpus)).valid
    # It learned: well below an untrained model of the same variant, which a run whose
    # updates were lost could not reach.
    before = steps.evaluate(type(model).from_config(model.get_config()), valid, 4, 10)["bpc"]
    ev, _ = _run(capsys, "eval", "--workdir", str(workdir))
    assert ev["bpc"] == pytest.approx(second["valid_bpc"], rel=1e-5)
    assert ev["bpc"] < before - 0.5, (before, ev["bpc"])

    sample_args = ["sample", "--workdir", str(workdir), "--prime", "the ", "--length", "30",
                   "--seed", "5"]
    s1, _ = _run(capsys, *sample_args)
    s2, _ = _run(capsys, *sample_args)
    assert s1["text"] == s2["text"] and len(s1["text"]) == 34 and s1["text"].startswith("the ")

    info, _ = _run(capsys, "export", "--workdir", str(workdir), "--out", str(tmp_path / "x"))
    assert info["step"] == 60 and info["state_size"] == model.state_size
    loaded = tf.saved_model.load(str(tmp_path / "x"))
    text = corpus.read_text()[:400]
    scored = loaded.score(text=tf.constant([text]))
    expected = steps.evaluate(model, vocab.encode(text), 1, cfg.num_unrollings)["bpc"]
    assert float(scored["bpc"][0]) == pytest.approx(expected, abs=1e-4)
    ids = tf.constant(vocab.encode("the ca"))
    state, exported_state = model.zero_state(1), loaded.zero_state(batch_size=1)["state"]
    for i in ids:
        logits, state = model.step(i[None], state)
        out = loaded.step(ids=i[None], state=exported_state)
        exported_state = out["state"]
        np.testing.assert_allclose(out["logits"], logits, rtol=1e-4, atol=1e-5)
    assert export.sample_from_export(tmp_path / "x", "the ", 20, seed=1)[0].startswith("the ")


def test_presets_hold_the_documented_settings():
    summed = config.get_preset("text8_arch1_sum")
    assert (summed.combine, summed.activation, summed.num_nodes, summed.batch_size,
            summed.num_unrollings, summed.optimizer, summed.learning_rate,
            summed.decay_steps, summed.decay_rate, summed.clip_norm, summed.init) == \
        ("sum", "tanh", 50, 64, 20, "sgd", 5.0, 5000, 0.5, 1.25, "seed")
    faithful = config.get_preset("text8_arch1")
    assert (faithful.combine, faithful.activation, faithful.init) == ("concat", "relu", "seed")
    assert faithful.dropout == 0.0
    best = config.get_preset("text8_best")  # the README's presets table
    assert (best.combine, best.activation, best.num_nodes, best.batch_size,
            best.num_unrollings, best.init, best.optimizer, best.learning_rate,
            best.decay_steps, best.decay_rate, best.clip_norm, best.dropout,
            best.jit_compile) == \
        ("mul", "tanh", 384, 32, 40, "glorot", "adam", 2e-3, 3000, 0.5, 1.25, 0.4, True)
    ten = config.get_preset("text8_best_10min")  # text8_best's cell, two layers, a budget
    assert (ten.combine, ten.activation, ten.num_nodes, ten.num_layers, ten.residual,
            ten.batch_size, ten.num_unrollings, ten.init, ten.optimizer, ten.learning_rate,
            ten.schedule, ten.cooldown_fraction, ten.budget_minutes, ten.clip_norm,
            ten.dropout, ten.jit_compile) == \
        ("mul", "tanh", 512, 2, True, 32, 40, "glorot", "adam", 2e-3, "cooldown", 0.2, 10.0,
         1.25, 0.5, True)
    thirty = config.get_preset("text8_best_30min")  # the same model, a 30-minute budget
    assert thirty == ten.replace(budget_minutes=30.0)
    three = config.get_preset("text8_best_3min")  # two narrower layers, lighter dropout
    assert three == ten.replace(num_nodes=384, dropout=0.2, budget_minutes=3.0)
