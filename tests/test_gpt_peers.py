"""The transformer peer checked against nanoGPT itself (issue 37, item 3): the PyTorch
recipe (`experiments._nanogpt`, a child process that never imports TensorFlow) trains to
the end of its budget and its schedule; both GPTs score the same characters the same
way (`experiments._windows`, one implementation); `experiments.gpt_peers` end to end
and its one-line argument errors. The PyTorch tests skip without torch (the `bench`
extra)."""

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from support import ROOT, subprocess_env, words, write_corpus

from experiments import _transformer, _windows, gpt_peers
from tf_rnn.engine import steps

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 16, "warmup": 10}
TINY_SETS = [f for k, v in TINY.items() for f in ("--set", f"{k}={v}")]


# TensorFlow is loaded in every test process (conftest), and PyTorch beside it can
# crash the process: the PyTorch side runs in child processes only, as gpt_peers runs it.
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed (the `bench` extra: pip install -e '.[cpu,bench]')")


def in_torch_child(script, *args):
    """The JSON that `script` (Python, `args` in sys.argv[1:]) prints last, run in a
    child process with PyTorch and without TensorFlow."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT,
                          env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# The windows, moved from _transformer to _windows: the same plans as before.

def test_the_window_helpers_moved_and_are_still_importable_from_the_transformer():
    for name in ("window_plan", "scored_targets", "RandomWindows"):
        assert getattr(_transformer, name) is getattr(_windows, name)


@pytest.mark.parametrize("num_chars, context, plan", [
    (40, 64, ([0], [0], 32)),  # the text shorter than a window: one window, all scored
    (200, 64, ([0, 32, 64, 96, 128], [0, 32, 32, 32, 32], 192)),
    (65, 48, ([0, 16], [0, 32], 64))])  # the last window moved back to end at N
def test_the_window_plan_is_unchanged(num_chars, context, plan):
    starts, first, n = _windows.window_plan(num_chars, context)
    assert (starts.tolist(), first.tolist(), n) == plan


@pytest.mark.parametrize("num_chars, context", [(33, 64), (1057, 48), (5000, 64)])
def test_the_scoring_windows_score_scored_targets(num_chars, context):
    index, scored, n = _windows.scoring_windows(num_chars, context)
    targets, contexts = _windows.scored_targets(num_chars, context)
    positions = np.broadcast_to(np.arange(scored.shape[1]), scored.shape)
    np.testing.assert_array_equal(index[:, 1:][scored], targets)
    np.testing.assert_array_equal(positions[scored] + 1, contexts)
    rnn = steps.scoring_streams(np.arange(num_chars), 32)[:, 1:].ravel()
    assert n == len(rnn) and sorted(targets.tolist()) == sorted(rnn.tolist())


def test_a_text_too_short_for_the_streams_is_refused_as_the_streams_refuse_it():
    with pytest.raises(ValueError, match="cannot be cut into 32 streams"):
        _windows.scoring_windows(32)
    with pytest.raises(ValueError, match="Cannot draw windows of 64"):
        _windows.random_windows(64, 5, 64)


def test_the_recipe_is_nanogpts_cpu_recipe_and_refuses_bad_settings():
    r = _windows.Recipe()
    assert (r.n_layer, r.n_head, r.n_embd, r.block_size, r.batch_size, r.dropout) == \
        (4, 4, 128, 64, 12, 0.0)
    assert (r.learning_rate, r.min_learning_rate, r.warmup, r.weight_decay) == \
        (1e-3, 1e-4, 100, 0.1)
    assert _windows.Recipe.with_changes({"n_embd": "192", "n_head": "6"}).n_embd == 192
    for bad, message in [({"width": "8"}, "Unknown recipe fields"),
                         ({"n_head": "5"}, "divisor of n_embd"),
                         ({"n_layer": "1.5"}, "expected an integer"),
                         ({"dropout": "1"}, "in \\[0, 1\\)"),
                         ({"learning_rate": "fast"}, "expected a number")]:
        with pytest.raises(ValueError, match=message):
            _windows.Recipe.with_changes(bad)


# The PyTorch GPT: nanoGPT's model, optimizer and schedule.

MODEL_FACTS = """
import json, math, sys
import torch
from experiments import _nanogpt, _windows
r = _windows.Recipe.with_changes(json.loads(sys.argv[1]))
torch.manual_seed(0)
model = _nanogpt.GPT(27, r)
decayed, kept = _nanogpt.make_optimizer(model, r).param_groups
names = {id(p): n for n, p in model.named_parameters()}
ids = torch.randint(0, 27, (2, 16))
later = ids.clone()
later[:, 9:] = (later[:, 9:] + 1) % 27
model.eval()
with torch.no_grad():
    before, after = model(ids), model(later)
print(json.dumps({
    "parameters": model.num_parameters(), "tied": model.lm_head.weight is model.wte.weight,
    "resid_std": float(model.blocks[0].mlp[2].weight.std()),
    "decayed": sorted(names[id(p)] for p in decayed["params"]),
    "kept": sorted(names[id(p)] for p in kept["params"]),
    "decays": [decayed["weight_decay"], kept["weight_decay"]],
    "earlier": float((before[:, :9] - after[:, :9]).abs().max()),
    "later": float((before[:, 9:] - after[:, 9:]).abs().amax(-1).min()),
    "no_tensorflow": "tensorflow" not in sys.modules}))
"""


@pytest.mark.slow
@needs_torch
def test_the_torch_gpt_is_nanogpts_shape_causal_and_decays_its_matrices():
    facts = in_torch_child(MODEL_FACTS, json.dumps(TINY))
    keras_gpt = _transformer.BabyGPT(27, 32, 2, 1, 16)
    keras_gpt(np.zeros([1, 16], np.int32))
    assert facts["parameters"] == keras_gpt.count_params() and facts["tied"]  # no own head
    assert facts["resid_std"] == pytest.approx(0.02 / math.sqrt(2), rel=0.1)
    assert facts["decays"] == [0.1, 0.0]
    assert {"wte.weight", "wpe.weight", "blocks.0.mlp.2.weight"} <= set(facts["decayed"])
    assert facts["kept"] == ["blocks.0.ln_1.weight", "blocks.0.ln_2.weight", "ln_f.weight"]
    assert facts["earlier"] < 1e-6 < 1e-4 < facts["later"]  # causal, and it reads its input
    assert facts["no_tensorflow"]


def test_both_schedules_warm_up_by_step_then_follow_the_budget():
    import tensorflow as tf

    r = _windows.Recipe(warmup=10)
    rate = _windows.warmup_cosine
    assert rate(0, 0.9, r) == pytest.approx(1e-3 / 11)  # the warm-up ignores the clock
    assert rate(9, 0.0, r) == pytest.approx(1e-3 * 10 / 11)
    assert rate(10, 0.0, r) == pytest.approx(1e-3)
    assert rate(500, 0.5, r) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert rate(500, 1.0, r) == rate(500, 3.0, r) == pytest.approx(1e-4)
    progress = tf.Variable(0.0)
    keras_rate = _transformer.WarmupCosine(1e-3, 1e-4, 10, progress)
    for step, fraction in [(0, 0.9), (9, 0.0), (10, 0.0), (50, 0.3), (500, 0.5), (500, 1.0)]:
        progress.assign(fraction)
        assert float(keras_rate(step)) == pytest.approx(rate(step, fraction, r), rel=1e-6)


class _Bigram:
    """Logits (B, T, A) = table[input] + position[t]: depend on the scored character's
    input and on where it stands in its window, so that a scorer scoring other
    characters, or the right ones from other windows, gets another figure."""

    def __init__(self, alphabet, context, seed=0):
        rng = np.random.default_rng(seed)
        self.table = rng.normal(0, 2, (alphabet, alphabet)).astype(np.float32)
        self.position = rng.normal(0, 2, (context, alphabet)).astype(np.float32)

    def nats(self, inputs, targets, positions):
        """Each target's loss given its input and its position in its window."""
        z = self.table[inputs] + self.position[positions]
        log_z = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        return log_z - z[np.arange(len(targets)), targets]


TORCH_SCORES = """
import json, sys
import numpy as np
import torch
from experiments import _nanogpt
saved = np.load(sys.argv[1])
table, position, ids = (torch.from_numpy(saved[k]) for k in ("table", "position", "ids"))
context, seed = int(sys.argv[2]), int(sys.argv[3])

class Bigram(torch.nn.Module):
    def forward(self, x):
        return table[x] + position[:x.size(1)]

streams = _nanogpt.score_streams(Bigram(), ids.numpy(), context)
windows = _nanogpt.score_windows(Bigram(), ids.numpy(), 9, context, seed)
print(json.dumps({**streams, "windows": windows}))
"""


@needs_torch
def test_both_frameworks_score_the_same_characters_the_same_way(tmp_path):
    import tensorflow as tf

    context, seed = 8, 3
    ids = np.random.default_rng(1).integers(0, 27, 32 * 7 + 5)
    fake = _Bigram(27, context)
    targets, contexts = _windows.scored_targets(len(ids), context)
    streams = fake.nats(ids[targets - 1], ids[targets], contexts - 1).mean()
    starts = np.random.default_rng(seed).integers(0, len(ids) - context, 9)  # eval's draw
    window = (starts[:, None] + np.arange(context)[None, :]).ravel()
    windows = fake.nats(ids[window], ids[window + 1], np.tile(np.arange(context), 9)).mean()
    np.savez(tmp_path / "fake.npz", table=fake.table, position=fake.position, ids=ids)
    got = in_torch_child(TORCH_SCORES, tmp_path / "fake.npz", context, seed)
    assert got["chars"] == len(targets) == 32 * 7
    assert got["nats"] == pytest.approx(streams, rel=1e-5)
    assert got["windows"] == pytest.approx(windows, rel=1e-5)
    gpt = _transformer.GPTTrainer(27, tf.Variable(0.0), width=8, heads=2, num_layers=1,
                                  context=context)
    gpt.model = lambda x: tf.gather(fake.table, x) + tf.constant(fake.position)[:tf.shape(x)[1]]
    assert gpt.evaluate(ids, chunk=5) * math.log(2) == pytest.approx(streams, rel=1e-5)
    assert gpt.evaluate_windows(ids, 9, seed=seed, chunk=4) == pytest.approx(windows, rel=1e-5)


def _child(tmp_path, **job):
    ids = np.array([" abcdefghijklmnopqrstuvwxyz".index(c) for c in words(20000)])
    np.save(tmp_path / "train.npy", ids[:18000])
    np.save(tmp_path / "valid.npy", ids[18000:])
    job = {"train": "train.npy", "valid": "valid.npy", "alphabet_size": 27, "minutes": 0.03,
           "seed": 0, "settings": TINY, "threads": 1, "windows": 20, **job}
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "experiments._nanogpt", "--job",
                           str(tmp_path / "job.json"), "--out", str(tmp_path / "out.json")],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)


@pytest.mark.slow
@needs_torch
def test_the_torch_child_trains_to_the_end_of_its_budget_and_schedule(tmp_path):
    done = _child(tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert result["schedule_fraction"] == 1.0 and result["steps"] > TINY["warmup"]
    assert result["final_learning_rate"] == pytest.approx(1e-4)
    assert 1.8 <= result["train_seconds"] < 5  # 0.03 minutes, the last step's overrun
    assert result["last_loss"] < result["first_loss"] - 0.5  # it learnt
    assert result["valid_nats"] < math.log(27) and result["nats_windows"] < math.log(27)
    assert result["valid_chars"] == 1984 and result["window_length"] == 16
    assert result["chars_per_sec"] == pytest.approx(
        result["steps"] * 12 * 16 / result["train_seconds"])
    assert result["threads"] == 1 and result["torch_version"].startswith("2.")


@needs_torch
def test_the_torch_child_says_a_bad_job_in_one_line(tmp_path):
    done = _child(tmp_path, settings={"n_head": 3})
    assert done.returncode == 2 and not (tmp_path / "out.json").exists()
    assert done.stderr.strip().splitlines() == [
        "python -m experiments._nanogpt: error: Received an invalid value for `n_head`, "
        "expected a divisor of n_embd 128, got 3."]


# experiments.gpt_peers

@pytest.mark.slow
@needs_torch
def test_the_experiment_trains_and_scores_both_frameworks(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code = gpt_peers.main(["--data", str(corpus), "--minutes", "0.03", "--contenders",
                           "torch_baby,keras_baby", "--windows", "20", "--threads", "1",
                           *TINY_SETS])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    torch_row, keras_row = result["rows"]
    assert (torch_row["contender"], keras_row["contender"]) == ("torch_baby", "keras_baby")
    assert (torch_row["framework"], keras_row["framework"]) == ("pytorch", "keras")
    for row in (torch_row, keras_row):
        assert row["schedule_fraction"] == 1.0 and row["steps"] >= 1
        assert row["train_minutes"] >= 0.03 and row["settings"]["n_embd"] == 32
        assert 0 < row["valid_bpc"] and 0 < row["nats_windows"]
    assert torch_row["valid_chars"] == keras_row["valid_chars"] == 992  # the same characters
    assert torch_row["parameters"] == keras_row["parameters"]
    assert torch_row["valid_bpc"] < math.log2(27)  # the torch one had time to learn
    best = min(result["rows"], key=lambda row: row["valid_bpc"])
    assert result["best"] == best["contender"]


@pytest.mark.parametrize("flags, message", [
    (["--contenders", "torch_baby,gpt_baby"], "unknown ['gpt_baby']"),
    (["--set", "width=8"], "Unknown recipe fields ['width']"),
    (["--set", "n_layer"], "--set takes KEY=VALUE"),
    (["--set", "dropout=0.1", "--contenders", "keras_baby"], "has no dropout"),
    (["--split", "90/20/0"], "config field `split`"),
    (["--windows", "-1"], "must not be negative"),
    (["--minutes", "0"], "expected a number of minutes above 0")])
def test_bad_arguments_are_one_line(tmp_path, capsys, flags, message):
    corpus = write_corpus(tmp_path / "corpus.txt", chars=100)
    with pytest.raises(SystemExit) as exit_:
        gpt_peers.parse_args(["--data", str(corpus), *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_file_and_a_missing_torch_are_one_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        gpt_peers.parse_args(["--data", str(tmp_path / "none.txt")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "does not exist" in err and err.count("\n") == 1
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else find_spec(name, *a))
    corpus = write_corpus(tmp_path / "corpus.txt", chars=100)
    with pytest.raises(SystemExit):
        gpt_peers.parse_args(["--data", str(corpus), "--contenders", "torch_wide"])
    assert capsys.readouterr().err.startswith(
        "python -m experiments.gpt_peers: error: torch_wide needs PyTorch: "
        "pip install -e '.[cpu,bench]'")
    assert gpt_peers.parse_args(["--data", str(corpus), "--contenders", "keras_baby"])
