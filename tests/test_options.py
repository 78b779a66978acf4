"""Every option a user can pass reaches what it is for: one check per option of every
`tf-rnn` command and every experiment, and a test that fails, naming it, when an
option has no check (an option whose effect nothing checks is the cheapest bug to ship).

A check runs the command's own `main(argv)` with recorders in place of the library
functions it calls (tests/option_probes.py): with the option and without it, and
asserts that the value reached the right argument or config field, or changed what the
command itself makes of it (the sampled text, the rows, the files). Nothing trains: a
toy experiment's `sequence.fit` is a fake that returns at once, so the checks of
options used after training run the rest of the experiment on the untrained model.

A new option: write its check and add it to its parser's table (`CLI_CHECKS`, or the
experiment's `..._CHECKS`); `test_every_option_has_a_check` names what is missing.
"""

import contextlib
import functools
import io
import json
import pathlib
import threading
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from option_probes import STOP, THROUGH, Replace, experiment_modules, options, parser_of
from option_probes import run, subparsers, value
from support import LEXICON, write_corpus

from experiments import _baselines, _quality, benchmark, diag_benchmark, init_diagnostics
from experiments import lstm_streams
from experiments import gpt_peers, quality, serve_benchmark, shakespeare_char

import tf_rnn
from tf_rnn import cli, models
from tf_rnn.base import config as config_lib, logs
from tf_rnn.data.vocab import Vocabulary
from tf_rnn.engine import sampling, steps
from tf_rnn.inspect import diagnostics, plots, probes, report
from tf_rnn.run import reading
from tf_rnn.serve import export
from tf_rnn.toys import sequence, tasks
from tf_rnn.train import training


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Each check in its own directory (relative work directories land there), with
    TF_RNN_VERBOSE unset (it would stand in for --verbose)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(logs.VERBOSE_ENV, raising=False)


class Command:
    """One parser's `main` with the argv it always needs and its default recorders."""

    def __init__(self, main, head=(), patches=()):
        self.main, self.head, self.patches = main, [str(h) for h in head], list(patches)

    def __call__(self, *flags, patches=()):
        """Calls of `main([*head, *flags])`; `patches` replace defaults of the same name."""
        mine = {(id(owner), name): (owner, name, mode) for owner, name, mode in
                [*self.patches, *patches]}
        return run(self.main, [*self.head, *map(str, flags)], *mine.values())


def reaches(cmd, flags, name, get, want, patches=(), many=False):
    """With `flags` the call of `name` carries `want` (`get` reads it from the call's
    arguments: a parameter name or a function; with `many`, from the list of all the
    calls' arguments); without them, something else."""
    read = get if callable(get) else (lambda a: a[get])
    calls = (lambda c: c.all(name)) if many else (lambda c: c.one(name))
    got = read(calls(cmd(*flags, patches=patches)))
    assert got == want, f"{flags}: {name} got {got!r}, expected {want!r}"
    default = read(calls(cmd(patches=patches)))
    assert default != want, f"premise: without {flags} the value differs, got {default!r}"


def result(calls):
    """The JSON object on the last line of stdout."""
    return json.loads(calls.out.strip().splitlines()[-1])


# tf-rnn train, and the preset experiments (the same run arguments) ---------------------

PRESET_MODULES = ("text8_arch1", "text8_arch1_sum", "text8_arch1_tuned", "text8_arch2",
                  "text8_best", "charrnn_adagrad")
TRAIN = Command(cli.main, ["train", "--workdir", "RUN"], [(training, "train", value({}))])


def preset_command(name):
    return Command(experiment_modules()[f"experiments.{name}"].main,
                   patches=[(training, "train", value({}))])


def config_field(field):
    return lambda a: getattr(a["config"], field)


def check_data(cmd):
    reaches(cmd, ["--data", "corpus.txt"], "train", "data", "corpus.txt")


def check_workdir(cmd):
    reaches(cmd, ["--workdir", "elsewhere"], "train", lambda a: str(a["workdir"]),
            "elsewhere")


def check_steps(cmd):
    reaches(cmd, ["--steps", 7], "train", config_field("steps"), 7)
    assert cmd("--steps", 7).one("train")["config"].epochs == 0.0  # steps, not epochs


def check_minutes(cmd):
    reaches(cmd, ["--minutes", 2.5], "train", config_field("budget_minutes"), 2.5)


def check_set(cmd):
    reaches(cmd, ["--set", "num_nodes=5"], "train", config_field("num_nodes"), 5)


def check_strategy(cmd):
    reaches(cmd, ["--strategy", "mirrored"], "train", config_field("strategy"), "mirrored")


def check_cache_dir(cmd):
    reaches(cmd, ["--cache-dir", "cache"], "train", "cache_dir", "cache")


def check_allow_new_corpus(cmd):
    reaches(cmd, ["--allow-new-corpus"], "train", "allow_new_corpus", True)


def check_no_progress(cmd):
    reaches(cmd, ["--no-progress"], "train", "progress", False)


def check_preset(cmd):
    reaches(cmd, ["--preset", "text8_arch2"], "train", "config",
            config_lib.get_preset("text8_arch2"))


def check_train_plot(cmd):
    patches = [(plots, "require_matplotlib", value(None)),
               (plots, "training_curves", value("curves.png"))]
    calls = cmd("--plot", "curves.png", patches=patches)
    assert calls.one("training_curves")["path"] == "curves.png"
    assert result(calls)["plot"] == "curves.png"
    assert not cmd(patches=patches).all("training_curves")


def check_verbose(cmd):
    """--verbose reaches `run_and_report`: TensorFlow's native logs are not filtered."""
    reaches(cmd, ["--verbose"], "native_logs_filtered", "verbose", True,
            patches=[(logs, "native_logs_filtered", STOP)])


RUN_ARGUMENT_CHECKS = {
    "--data": check_data, "--workdir": check_workdir, "--steps": check_steps,
    "--minutes": check_minutes,
    "--set": check_set, "--strategy": check_strategy, "--cache-dir": check_cache_dir,
    "--allow-new-corpus": check_allow_new_corpus, "--no-progress": check_no_progress,
    "--verbose": check_verbose}


def test_each_preset_experiment_trains_its_own_preset_in_its_own_workdir():
    for name in PRESET_MODULES:
        call = preset_command(name)().one("train")
        assert call["config"] == config_lib.get_preset(name), name
        assert str(call["workdir"]) == f"runs/{name}"


def check_version(_):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and out.getvalue().split() == ["tf-rnn", tf_rnn.__version__]


# tf-rnn eval -----------------------------------------------------------------------------

CORPUS = types.SimpleNamespace(train=np.array([1]), valid=np.array([2, 2]),
                               test=np.array([3, 3, 3]))
EVAL = Command(cli.main, ["eval", "--workdir", "RUN"], [
    (reading, "load_model", value(reading.Loaded("model", "vocab", config_lib.Config(), {}))),
    (reading, "run_data", lambda a: a["data"] or "recorded.txt"),
    (reading, "load_corpus_for", value(CORPUS)),
    (steps, "evaluate", value({"bpc": 1.0})),
    (steps, "evaluate_windows", value({"bpc": 2.0}))])


def check_eval_workdir(cmd):
    reaches(cmd, ["--workdir", "elsewhere"], "load_model",
            lambda a: str(pathlib.Path(a["workdir"].path)), "elsewhere")


def check_eval_data(cmd):
    reaches(cmd, ["--data", "c.txt"], "run_data", "data", "c.txt")
    reaches(cmd, ["--data", "c.txt"], "load_corpus_for", "data", "c.txt")


def check_eval_split(cmd):
    for split, ids in (("train", CORPUS.train), ("valid", CORPUS.valid),
                       ("test", CORPUS.test),
                       ("all", np.concatenate([CORPUS.train, CORPUS.valid, CORPUS.test]))):
        calls = cmd("--split", split)
        assert list(calls.one("evaluate")["ids"]) == list(ids), split
        assert result(calls)["split"] == split
    assert list(cmd().one("evaluate")["ids"]) == list(CORPUS.valid)  # the default


def check_eval_batch_size(cmd):
    reaches(cmd, ["--batch-size", 3], "evaluate", "batch_size", 3)
    assert cmd().one("evaluate")["batch_size"] == config_lib.Config().eval_batch_size


def check_eval_windows(cmd):
    calls = cmd("--windows", 7)
    assert calls.one("evaluate_windows")["count"] == 7 and not calls.all("evaluate")
    assert result(calls)["bpc"] == 2.0
    assert not cmd().all("evaluate_windows") and cmd().one("evaluate")  # streams by default


def check_eval_window_length(cmd):
    assert cmd("--windows", 3, "--window-length", 9).one("evaluate_windows")["length"] == 9
    assert cmd("--windows", 3).one("evaluate_windows")["length"] == 256  # nanoGPT's


def check_eval_seed(cmd):
    assert cmd("--windows", 3, "--seed", 5).one("evaluate_windows")["seed"] == 5
    assert cmd("--windows", 3).one("evaluate_windows")["seed"] == 0


def check_eval_cache_dir(cmd):
    reaches(cmd, ["--cache-dir", "cache"], "load_corpus_for", "cache_dir", "cache")


# tf-rnn sample -----------------------------------------------------------------------------

def fake_texts(a):
    return [a["prime"] + "x" * a["length"]] * a["num_streams"]


SAMPLE = Command(cli.main, ["sample", "--workdir", "RUN"], [
    (reading, "load_model", value(reading.Loaded("model", Vocabulary.text8(), config_lib.Config(),
                                           {}))),
    (sampling, "sample", fake_texts)])
SAMPLE_EXPORT = Command(cli.main, ["sample", "--export", "EXPORT"],
                        [(export, "sample_from_export", fake_texts)])


@functools.cache
def tiny_model():
    """An untrained Arch 1 of 8 units over text8's alphabet, every weight N(0, 0.5²)
    (the preset's initialisation can leave all units off: tied logits, and top-k = 1
    is no longer greedy)."""
    cfg = config_lib.get_preset("text8_arch1").replace(num_nodes=8)
    model, rng = models.build_model(cfg, 27), np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(weight.dtype))
    return model, Vocabulary.text8(), cfg


@functools.cache
def _generator(capacity, make_generator=sampling.make_generator):
    return make_generator(tiny_model()[0].step, capacity=capacity)


def sampled(*flags):
    """The text(s) `tf-rnn sample` writes from the tiny model (one compiled generator
    per capacity, shared by the checks)."""
    calls = SAMPLE("--length", 30, *flags, patches=[
        (reading, "load_model", value(reading.Loaded(*tiny_model(), {}))),
        (sampling, "sample", THROUGH),
        (sampling, "make_generator", lambda a: _generator(a["capacity"]))])
    assert calls.status == 0, calls.err
    out = result(calls)
    return out.get("text", out.get("texts"))


# tf-rnn score ------------------------------------------------------------------------------

SCORE = Command(cli.main, ["score", "--workdir", "RUN", "--text", "the cat"], [
    (reading, "load_model", lambda a: reading.Loaded(*tiny_model(), {"checkpoint": "ckpt-1"}))])


def scored(*flags, command=SCORE):
    calls = command(*flags)
    assert calls.status == 0, calls.err
    return [json.loads(line) for line in calls.out.strip().splitlines()]


def check_score_workdir(cmd):
    reaches(cmd, ["--workdir", "elsewhere"], "load_model", lambda a: str(a["workdir"]),
            "elsewhere")


def check_score_export(_):
    """--export reads the SavedModel, not a run (a fake export: step = the tiny model's)."""
    model = tiny_model()[0]
    fake = types.SimpleNamespace(
        step=lambda ids, state: dict(zip(("logits", "state"), model.step(ids, state))),
        zero_state=lambda batch_size: {"state": model.zero_state(1)})
    meta = {"vocab": Vocabulary.text8().chars, "unknown": "error", "step": 3,
            "config": {"normalize": False}}
    pathlib.Path("EXPORT/assets.extra").mkdir(parents=True)
    pathlib.Path("EXPORT/assets.extra/tf_rnn.json").write_text(json.dumps(meta))
    pathlib.Path("EXPORT/saved_model.pb").write_bytes(b"")  # load itself is faked
    command = Command(cli.main, ["score", "--export", "EXPORT", "--text", "the cat"], [
        (tf.saved_model, "load", value(fake)), (reading, "load_model", STOP)])
    rows = scored(command=command)
    assert rows[-1]["summary"]["export"] == "EXPORT" and rows[-1]["summary"]["step"] == 3
    assert [r["char"] for r in rows[:-1]] == list("the cat")
    assert rows[-1]["summary"]["bpc"] == pytest.approx(scored()[-1]["summary"]["bpc"],
                                                       rel=1e-5)  # the same model


def check_score_text(cmd):
    assert [r["char"] for r in scored("--text", "a mat")[:-1]] == list("a mat")


def check_score_file(cmd):
    pathlib.Path("t.txt").write_text("on a mat", encoding="utf-8")
    calls = Command(cli.main, ["score", "--workdir", "RUN", "--file", "t.txt"],
                    SCORE.patches)()
    assert [json.loads(r)["char"] for r in calls.out.strip().splitlines()[:-1]] == \
        list("on a mat")


def check_score_by(cmd):
    rows = scored("--by", "line")  # text8's alphabet has no newline: one line
    assert [(r["line"], r["text"], r["chars"]) for r in rows[:-1]] == [(1, "the cat", 6)]
    assert "char" in scored()[0] and "line" not in scored()[0]


def check_score_top_k(cmd):
    assert {len(r["top"]) for r in scored("--top-k", 2)[1:-1]} == {2}
    assert {len(r["top"]) for r in scored()[1:-1]} == {5}


# tf-rnn inspect ----------------------------------------------------------------------------

def _fake_render(a):
    """report.render's stand-in: the page is the text it was given."""
    text = "".join(a["alphabet"][i] for i in a["ids"])
    return text, {"bpc": 1.0, "chars": len(text) - 1, "n": len(text), "units": 16,
                  "best": None}


INSPECT = Command(cli.main, ["inspect", "--workdir", "RUN", "--file", "t.txt", "--out",
                             "r.html"], [
    (reading, "load_model", lambda a: reading.Loaded(*tiny_model(), {"checkpoint": "ckpt-1"})),
    (report, "render", _fake_render)])


def inspected(*flags):
    pathlib.Path("t.txt").write_text("the cat sat", encoding="utf-8")
    calls = INSPECT(*flags)
    assert calls.status == 0, calls.err
    return result(calls)


def check_inspect_file(cmd):
    pathlib.Path("u.txt").write_text("on a mat", encoding="utf-8")
    assert inspected("--file", "u.txt")["text_chars"] == 8
    assert pathlib.Path("r.html").read_text(encoding="utf-8") == "on a mat"
    assert inspected()["text_chars"] == 11


def check_inspect_chars(cmd):
    assert inspected("--chars", 3)["text_chars"] == 3
    assert pathlib.Path("r.html").read_text(encoding="utf-8") == "the"
    assert inspected()["text_chars"] == 11  # the default, 2000, holds the whole file


def check_inspect_out(cmd):
    pathlib.Path("sub").mkdir()  # an --out's directory must exist (test_cli_help)
    out = inspected("--out", "sub/report.html")
    assert out["out"] == "sub/report.html" and out["bytes"] == 11
    assert pathlib.Path("sub/report.html").read_text(encoding="utf-8") == "the cat sat"


def wired(flag, param, want):
    """`flag want` reaches both samplers' `param` (a run's checkpoint, an export)."""
    reaches(SAMPLE, [flag, want], "sample", param, want)
    reaches(SAMPLE_EXPORT, [flag, want], "sample_from_export", param, want)


def check_sample_workdir(cmd):
    reaches(cmd, ["--workdir", "elsewhere"], "load_model", "workdir", "elsewhere")
    assert not cmd().all("sample_from_export")


def check_sample_export(_):
    calls = SAMPLE_EXPORT(patches=[(reading, "load_model", STOP)])
    assert calls.one("sample_from_export")["export_dir"] == "EXPORT"
    assert not calls.all("load_model")  # no checkpoint read


def check_prime(_):
    wired("--prime", "prime", "the ")
    assert sampled("--prime", "zq", "--seed", 0).startswith("zq")
    assert not sampled("--seed", 0).startswith("zq")


def check_length(_):
    wired("--length", "length", 9)
    assert len(sampled("--prime", "a", "--length", 9)) == 1 + 9
    assert len(sampled("--prime", "a")) == 1 + 30


def check_seed(_):
    wired("--seed", "seed", 5)
    assert sampled("--prime", "a", "--seed", 1) == sampled("--prime", "a", "--seed", 1)
    assert sampled("--prime", "a", "--seed", 1) != sampled("--prime", "a", "--seed", 2)


def check_temperature(_):
    wired("--temperature", "temperature", 0.0)
    greedy = [sampled("--prime", "a", "--seed", s, "--temperature", 0) for s in (1, 2)]
    assert greedy[0] == greedy[1]  # whatever the seed: the most likely characters
    assert sampled("--prime", "a", "--seed", 1) != sampled("--prime", "a", "--seed", 2)


def check_top_k(_):
    wired("--top-k", "top_k", 1)
    best = [sampled("--prime", "a", "--seed", s, "--top-k", 1) for s in (1, 2)]
    assert best[0] == best[1] == sampled("--prime", "a", "--temperature", 0)
    assert sampled("--prime", "a", "--seed", 1) != sampled("--prime", "a", "--seed", 2)


def check_num_streams(_):
    wired("--num-streams", "num_streams", 3)
    texts = sampled("--prime", "a", "--seed", 1, "--num-streams", 3)
    assert len(texts) == 3 and len(set(texts)) == 3  # three independent draws
    assert isinstance(sampled("--prime", "a", "--seed", 1), str)


def check_sample_out(cmd):
    calls = cmd("--prime", "ab", "--length", 4, "--out", "sample.txt")
    assert pathlib.Path("sample.txt").read_text(encoding="utf-8") == "abxxxx"
    assert result(calls)["out"] == "sample.txt" and "text" not in result(calls)
    assert result(cmd("--prime", "ab", "--length", 4))["text"] == "abxxxx"


def check_sample_no_progress(_):
    long = sampling.SAMPLE_CHUNK + 1  # shorter samples show no bar anyway
    for cmd, name in ((SAMPLE, "sample"), (SAMPLE_EXPORT, "sample_from_export")):
        assert cmd("--length", long, "--no-progress").one(name)["progress"] is False
        assert cmd("--length", long).one(name)["progress"] is True


# tf-rnn export, diagnose ---------------------------------------------------------------

EXPORT = Command(cli.main, ["export", "--workdir", "RUN"], [(export, "export", value({}))])
DIAGNOSE = Command(cli.main, ["diagnose", "--workdir", "RUN"],
                   [(diagnostics, "diagnose", value({}))])


def check_export_workdir(cmd):
    reaches(cmd, ["--workdir", "elsewhere"], "export", "workdir", "elsewhere")


def check_export_out(cmd):
    reaches(cmd, ["--out", "exported"], "export", "out", "exported")


def check_export_overwrite(cmd):
    reaches(cmd, ["--overwrite"], "export", "overwrite", True)


def argument_check(option, name, param, want):
    """A check that `option want` (a flag: `option` alone, `want` True or False)
    reaches `param` of the recorded `name`."""
    flags = [option] if isinstance(want, bool) else [option, want]
    return lambda cmd: reaches(cmd, flags, name, param, want)


CLI_CHECKS = {
    ("tf-rnn", "--version"): (None, check_version),
    **{("tf-rnn train", option): (TRAIN, check)
       for option, check in RUN_ARGUMENT_CHECKS.items()},
    ("tf-rnn train", "--preset"): (TRAIN, check_preset),
    ("tf-rnn eval", "--workdir"): (EVAL, check_eval_workdir),
    ("tf-rnn eval", "--data"): (EVAL, check_eval_data),
    ("tf-rnn eval", "--split"): (EVAL, check_eval_split),
    ("tf-rnn eval", "--batch-size"): (EVAL, check_eval_batch_size),
    ("tf-rnn eval", "--cache-dir"): (EVAL, check_eval_cache_dir),
    ("tf-rnn eval", "--windows"): (EVAL, check_eval_windows),
    ("tf-rnn eval", "--window-length"): (EVAL, check_eval_window_length),
    ("tf-rnn eval", "--seed"): (EVAL, check_eval_seed),
    ("tf-rnn eval", "--verbose"): (EVAL, check_verbose),
    ("tf-rnn eval", "--checkpoint"): (EVAL, argument_check(
        "--checkpoint", "load_model", "checkpoint", "best")),
    ("tf-rnn sample", "--workdir"): (SAMPLE, check_sample_workdir),
    ("tf-rnn sample", "--export"): (None, check_sample_export),
    ("tf-rnn sample", "--prime"): (None, check_prime),
    ("tf-rnn sample", "--length"): (None, check_length),
    ("tf-rnn sample", "--temperature"): (None, check_temperature),
    ("tf-rnn sample", "--top-k"): (None, check_top_k),
    ("tf-rnn sample", "--seed"): (None, check_seed),
    ("tf-rnn sample", "--num-streams"): (None, check_num_streams),
    ("tf-rnn sample", "--out"): (SAMPLE, check_sample_out),
    ("tf-rnn sample", "--no-progress"): (None, check_sample_no_progress),
    ("tf-rnn sample", "--verbose"): (SAMPLE, check_verbose),
    ("tf-rnn sample", "--checkpoint"): (SAMPLE, argument_check(
        "--checkpoint", "load_model", "checkpoint", "ckpt-10")),
    ("tf-rnn score", "--workdir"): (SCORE, check_score_workdir),
    ("tf-rnn score", "--export"): (None, check_score_export),
    ("tf-rnn score", "--text"): (None, check_score_text),
    ("tf-rnn score", "--file"): (None, check_score_file),
    ("tf-rnn score", "--by"): (None, check_score_by),
    ("tf-rnn score", "--top-k"): (None, check_score_top_k),
    ("tf-rnn score", "--verbose"): (SCORE, check_verbose),
    ("tf-rnn score", "--checkpoint"): (SCORE, argument_check(
        "--checkpoint", "load_model", "checkpoint", "best")),
    ("tf-rnn inspect", "--workdir"): (INSPECT, argument_check(
        "--workdir", "load_model", "workdir", "elsewhere")),
    ("tf-rnn inspect", "--checkpoint"): (INSPECT, argument_check(
        "--checkpoint", "load_model", "checkpoint", "best")),
    ("tf-rnn inspect", "--file"): (None, check_inspect_file),
    ("tf-rnn inspect", "--chars"): (None, check_inspect_chars),
    ("tf-rnn inspect", "--out"): (None, check_inspect_out),
    ("tf-rnn inspect", "--verbose"): (INSPECT, check_verbose),
    ("tf-rnn export", "--workdir"): (EXPORT, check_export_workdir),
    ("tf-rnn export", "--out"): (EXPORT, check_export_out),
    ("tf-rnn export", "--overwrite"): (EXPORT, check_export_overwrite),
    ("tf-rnn export", "--verbose"): (EXPORT, check_verbose),
    ("tf-rnn export", "--checkpoint"): (EXPORT, argument_check(
        "--checkpoint", "export", "checkpoint", "best")),
    ("tf-rnn diagnose", "--workdir"): (DIAGNOSE, argument_check(
        "--workdir", "diagnose", "workdir", "elsewhere")),
    ("tf-rnn diagnose", "--data"): (DIAGNOSE, argument_check(
        "--data", "diagnose", "data", "c.txt")),
    ("tf-rnn diagnose", "--windows"): (DIAGNOSE, argument_check(
        "--windows", "diagnose", "windows", 2)),
    ("tf-rnn diagnose", "--plot"): (DIAGNOSE, argument_check(
        "--plot", "diagnose", "plot", "d.png")),
    ("tf-rnn diagnose", "--checkpoint"): (DIAGNOSE, argument_check(
        "--checkpoint", "diagnose", "checkpoint", "best")),
    ("tf-rnn diagnose", "--cache-dir"): (DIAGNOSE, argument_check(
        "--cache-dir", "diagnose", "cache_dir", "cache")),
}


# The toy experiments: xor_elman, hello, binary_addition -------------------------------

def fake_fit(a):
    """`sequence.fit` without training: calls its `check` where fit would (and after
    the last step), returns fit's figures."""
    if a["check"] is not None:
        every = a["check_every"] or a["steps"]
        for done in sorted({*range(every, a["steps"] + 1, every), a["steps"]}):
            a["check"](done)
    return {"steps": a["steps"], "loss": 0.0}


DIAG = dict.fromkeys(("grad_ratio", "grad_ratio_last", "saturated_fraction",
                      "stuck_fraction", "sigma_max", "spectral_radius"), 0.0)
BUILT = [(sequence, "ElmanSequenceModel", THROUGH), (keras.utils, "set_random_seed", THROUGH),
         (steps, "make_train_step", THROUGH), (sequence, "fit", STOP)]
# The whole experiment on the untrained model (for the options used after training).
AFTER_TRAINING = [(sequence, "ElmanSequenceModel", None),  # member(k) needs the class
                  (sequence, "fit", fake_fit), (plots, "require_matplotlib", value(None)),
                  (probes, "make_measure", value(lambda *a: DIAG)),
                  (diagnostics, "write", value(None)),
                  (tasks, "sweep_weight", lambda a: np.zeros(len(a["values"])))]


def toy_command(name, head, patches):
    return Command(experiment_modules()[f"experiments.{name}"].main, head,
                   [*BUILT, *patches])


XOR = toy_command("xor_elman", ["--seeds", 2, "--hidden", 2, "--steps", 2, "--streams", 2,
                                "--length", 4, "--test-length", 8, "--sweep-points", 3],
                  [(keras.optimizers, "SGD", THROUGH), (tasks, "random_bits", THROUGH),
                   (tasks, "xor_task", THROUGH), (plots, "sweep_figure", value(None))])
HELLO = toy_command("hello", ["--seeds", 2, "--hidden", 2, "--steps", 2],
                    [(keras.optimizers, "Adam", THROUGH), (tasks, "alphabet_of", THROUGH),
                     (tasks, "next_symbol_task", THROUGH),
                     (tasks, "greedy_continuations", value(["hello"] * 2)),
                     (plots, "hello_figure", value(None))])
ADDITION = toy_command(
    "binary_addition", ["--samples", 4, "--seeds", 2, "--hidden", 2, "--bits", 2,
                        "--test-bits", 3, "--test-count", 5, "--check-every", 2],
    [(keras.optimizers, "SGD", THROUGH), (tasks, "random_addends", THROUGH),
     (tasks, "all_addend_pairs", THROUGH), (sequence, "make_loss", THROUGH),
     (tasks, "first_exact_check", THROUGH), (plots, "addition_figure", value(None))])


def after_training(check):
    """`check` with the whole experiment run (training faked)."""
    return lambda cmd: check(Command(cmd.main, cmd.head, [*cmd.patches, *AFTER_TRAINING]))


def check_toy_set(cmd):
    reaches(cmd, ["--set", "jit_compile=true"], "make_train_step", "jit_compile", True)


def check_toy_workdir(cmd):
    assert cmd("--workdir", "mine").status == "stopped" and pathlib.Path("mine").is_dir()
    assert cmd().status == "stopped" and len(list(pathlib.Path("runs").glob("*/*"))) == 1


def check_toy_no_progress(cmd):
    reaches(cmd, ["--no-progress"], "fit", "progress", False)


def check_toy_seed(cmd):
    reaches(cmd, ["--seed", 5], "set_random_seed", "seed", 5)


def check_xor_seed(cmd):
    check_toy_seed(cmd)
    bits = [cmd("--seed", s).one("xor_task")["bits"] for s in (5, 6)]
    assert not np.array_equal(*bits)  # the training streams are drawn with the seed


def members(cmd, option):
    reaches(cmd, [option, 3], "ElmanSequenceModel", "members", 3)


def units(cmd, option):
    reaches(cmd, [option, 3], "ElmanSequenceModel", "units", 3)


def check_xor_plot(cmd):
    calls = cmd("--plot", "sweep.png")
    assert calls.status == 0, calls.err
    assert calls.one("sweep_figure")["path"] == "sweep.png"
    assert not cmd().all("sweep_figure")


def check_sweep_seeds(cmd):
    calls = cmd("--sweep-seeds", "1")
    assert result(calls)["sweep"]["seeds"] == [1] and len(calls.all("sweep_weight")) == 4
    assert result(cmd())["sweep"]["seeds"] == [0]  # none converged: the first seed


def check_sweep_range(cmd):
    def widths(*flags):  # the offsets' span of every weight swept
        return {round(float(np.ptp(a["values"])), 6) for a in cmd(*flags).all("sweep_weight")}

    assert widths("--sweep-range", 2.5) == {5.0} and widths() == {20.0}


def check_sweep_points(cmd):
    assert {len(a["values"]) for a in cmd("--sweep-points", 4).all("sweep_weight")} == {4}
    assert {len(a["values"]) for a in cmd().all("sweep_weight")} == {3}


def check_test_length(cmd):
    calls = cmd("--test-length", 9)
    assert calls.all("random_bits")[-1]["length"] == 9  # the test stream, after training
    assert cmd().all("random_bits")[-1]["length"] == 8


XOR_CHECKS = {
    "--seeds": lambda cmd: members(cmd, "--seeds"),
    "--seed": check_xor_seed,
    "--hidden": lambda cmd: units(cmd, "--hidden"),
    "--steps": argument_check("--steps", "fit", "steps", 5),
    "--lr": argument_check("--lr", "SGD", "learning_rate", 0.25),
    "--momentum": argument_check("--momentum", "SGD", "momentum", 0.5),
    "--streams": argument_check("--streams", "random_bits", "num_streams", 3),
    "--length": argument_check("--length", "random_bits", "length", 5),
    "--seed-stream": lambda cmd: reaches(
        cmd, ["--seed-stream"], "xor_task", lambda a: np.asarray(a["bits"]).tolist(),
        np.asarray(tasks.SEED_XOR_BITS).tolist()),
    "--test-length": after_training(check_test_length),
    "--sweep-range": after_training(check_sweep_range),
    "--sweep-points": after_training(check_sweep_points),
    "--sweep-seeds": after_training(check_sweep_seeds),
    "--set": check_toy_set, "--workdir": check_toy_workdir,
    "--no-progress": check_toy_no_progress, "--verbose": check_verbose,
    "--plot": after_training(check_xor_plot),
}


def check_hello_text(cmd):
    reaches(cmd, ["--text", "abcab"], "next_symbol_task", "text", "abcab")
    reaches(cmd, ["--text", "abcab"], "alphabet_of", "text", "abcab")


def check_hello_alphabet(cmd):
    reaches(cmd, ["--alphabet", "helox"], "alphabet_of", "alphabet", "helox")
    reaches(cmd, ["--alphabet", "helox"], "ElmanSequenceModel", "input_size", 5)


def check_hello_prime(cmd):
    reaches(cmd, ["--prime", "he"], "greedy_continuations", "prime", "he")
    assert result(cmd("--prime", "he"))["prime"] == "he"


def check_hello_plot(cmd):
    calls = cmd("--plot", "hello.png")
    assert calls.status == 0, calls.err
    assert calls.one("hello_figure")["path"] == "hello.png"
    assert cmd("--plot", "hello.png").one("fit")["check"] is not None  # losses recorded
    assert not cmd().all("hello_figure")


def check_hello_report(cmd):
    calls = cmd("--report", "hello.html",
                patches=[(report, "render", value(("<p>page</p>", {})))])
    assert calls.status == 0, calls.err
    shown = calls.one("render")
    assert shown["model"].hidden_size == 2 and shown["inputs"].shape == (5, 4)  # "hello"
    assert pathlib.Path("hello.html").read_text() == "<p>page</p>"
    assert result(calls)["report"] == "hello.html"
    assert not cmd(patches=[(report, "render", STOP)]).all("render")


HELLO_CHECKS = {
    "--text": check_hello_text, "--alphabet": check_hello_alphabet,
    "--prime": after_training(check_hello_prime),
    "--seeds": lambda cmd: members(cmd, "--seeds"), "--seed": check_toy_seed,
    "--hidden": lambda cmd: units(cmd, "--hidden"),
    "--steps": argument_check("--steps", "fit", "steps", 5),
    "--lr": argument_check("--lr", "Adam", "learning_rate", 0.25),
    "--set": check_toy_set, "--workdir": check_toy_workdir,
    "--no-progress": check_toy_no_progress, "--verbose": check_verbose,
    "--plot": after_training(check_hello_plot),
    "--report": after_training(check_hello_report),
}


def check_samples(cmd):
    reaches(cmd, ["--samples", 6], "fit", "steps", 6)
    reaches(cmd, ["--samples", 6], "random_addends", "n", 6)


def check_addition_seed(cmd):
    check_toy_seed(cmd)
    reaches(cmd, ["--seed", 5], "first_exact_check", "seed", 5)


def check_bits(cmd):
    reaches(cmd, ["--bits", 3], "all_addend_pairs", "bits", 3)
    reaches(cmd, ["--bits", 3], "random_addends", "bits", 3)


def check_test_sums(option, param, want):
    def check(cmd):
        calls = cmd(option, want)
        assert calls.status == 0, calls.err
        test = calls.all("random_addends")[-1]  # drawn after training
        assert test[param] == want and cmd().all("random_addends")[-1][param] != want

    return after_training(check)


def check_print_every(cmd):
    # --samples 4, --check-every 2: checks after 2 and 4 samples, a line at each
    assert cmd("--print-every", 2).err.count("Error: ") == 2
    assert cmd().err.count("Error: ") == 0  # every 1000 samples


def check_addition_plot(cmd):
    calls = cmd("--plot", "addition.png")
    assert calls.status == 0, calls.err
    call = calls.one("addition_figure")
    assert call["path"] == "addition.png" and len(call["samples"]) == 2  # at each check
    assert not cmd().all("addition_figure")


ADDITION_CHECKS = {
    "--samples": check_samples,
    "--seeds": lambda cmd: members(cmd, "--seeds"), "--seed": check_addition_seed,
    "--hidden": lambda cmd: units(cmd, "--hidden"),
    "--lr": argument_check("--lr", "SGD", "learning_rate", 0.25),
    "--loss": argument_check("--loss", "make_loss", "kind", "sse"),
    "--no-bias": argument_check("--no-bias", "ElmanSequenceModel", "use_bias", False),
    "--bits": check_bits,
    "--test-bits": check_test_sums("--test-bits", "bits", 4),
    "--test-count": check_test_sums("--test-count", "n", 6),
    "--check-every": argument_check("--check-every", "fit", "check_every", 3),
    "--print-every": after_training(check_print_every),
    "--set": check_toy_set, "--workdir": check_toy_workdir,
    "--no-progress": check_toy_no_progress, "--verbose": check_verbose,
    "--plot": after_training(check_addition_plot),
}


# The benchmarks and tools ---------------------------------------------------------------

def corpus_file(name="corpus.txt"):
    """A small text8-style corpus (20 000 characters) in the current directory; returns
    its name."""
    write_corpus(pathlib.Path(name), 20000, lexicon=LEXICON[:6])
    return name


class Counted:
    """Stand-ins whose calls a run records: `Counted.step` as a train step, `Counted.
    served` as an export's method (a fake returns a lambda that calls them)."""

    @staticmethod
    def step(*args):
        return {"loss": 0.0}, args[-1]

    @staticmethod
    def served(method, batch, seed, thread):
        return None


FAKE_CORPUS = types.SimpleNamespace(train=np.zeros(4000, np.int32),
                                    valid=np.zeros(400, np.int32),
                                    vocab=types.SimpleNamespace(size=27), source="fake")
SECTIONS = {"train": "run_training", "eval": "run_eval", "sample": "run_sampling",
            "scale": "run_scaling", "indrnn": "run_indrnn", "stacks": "run_stacks",
            "bf16": "run_bf16", "gated": "run_gated"}
BENCHMARK = Command(benchmark.main, [], [
    *[(benchmark, function, value({})) for function in SECTIONS.values()],
    (_quality, "run", value({})),
    (tf.config.threading, "set_intra_op_parallelism_threads", value(None)),
    (benchmark, "measure", value({"train": {"best": 1.0, "median": 1.0}})),
    (benchmark, "tf_rnn_trainer", value((None, None, lambda window: 0.0)))])


def check_called(cmd, flags, name, param, want):
    """With `flags`, `name` is called once with `param` = `want`; without, not at all."""
    calls = cmd(*flags)
    assert calls.status in (0, None), calls.err
    assert calls.one(name)[param] == want
    assert not cmd().all(name)


def sections(cmd, *flags):
    calls = cmd(*flags)
    return {section for section, function in SECTIONS.items() if calls.all(function)} | (
        {"quality"} if calls.all("run") else set())


def check_sections(cmd):
    assert sections(cmd, "--sections", "eval,scale") == {"eval", "scale"}
    assert sections(cmd, "--sections", "bf16") == {"bf16"}  # measured only when asked
    assert sections(cmd, "--sections", "gated,bf16") == {"gated", "bf16"}  # the same
    assert sections(cmd) == {"train", "eval", "sample", "scale", "indrnn", "stacks"}


def check_quality(cmd):
    assert sections(cmd, "--quality") == {"train", "eval", "sample", "scale", "indrnn",
                                          "stacks", "quality"}


def scaling(cmd, *flags):
    """The scaling rows' calls: (measure's seconds and rounds, the unroll of each row)."""
    calls = cmd("--sections", "scale", *flags, patches=[(benchmark, "run_scaling", THROUGH)])
    assert calls.status == 0, calls.err
    return ({(a["seconds"], a["rounds"]) for a in calls.all("measure")},
            [a["num_unrollings"] for a in calls.all("tf_rnn_trainer")])


def check_bench_seconds(cmd):
    assert scaling(cmd, "--seconds", 3)[0] == {(1.5, 4)}  # half of it per scaling row
    assert scaling(cmd)[0] == {(4.0, 4)}


def check_bench_rounds(cmd):
    assert scaling(cmd, "--rounds", 6)[0] == {(4.0, 3)}


def check_quick(cmd):
    assert scaling(cmd, "--quick") == ({(0.2, 1)}, [10])  # one short scaling point
    assert len(scaling(cmd)[1]) == 12


def quality_section(cmd, *flags):
    corpus = [(tf_rnn.data, "load_corpus", value(FAKE_CORPUS)),
              (_quality, "make_contenders", value([])), (_quality, "train_for", value({})),
              (_quality, "run", THROUGH)]
    calls = cmd("--sections", "quality", *flags, patches=corpus)
    assert calls.status == 0, calls.err
    return calls


def check_bench_minutes(cmd):
    assert quality_section(cmd, "--minutes", 0.5).one("train_for")["seconds"] == 30.0
    assert quality_section(cmd).one("train_for")["seconds"] == 180.0


def check_bench_data(cmd):
    assert quality_section(cmd, "--data", "c.txt").one("load_corpus")["data"] == "c.txt"
    assert quality_section(cmd).one("load_corpus")["data"] is None  # text8


BENCHMARK_CHECKS = {
    "--sections": check_sections, "--quality": check_quality,
    "--seconds": check_bench_seconds, "--rounds": check_bench_rounds, "--quick": check_quick,
    "--minutes": check_bench_minutes, "--data": check_bench_data,
    "--intra-op-threads": lambda cmd: check_called(
        cmd, ["--intra-op-threads", 2], "set_intra_op_parallelism_threads", "num_threads", 2),
}


class FakeHook:
    """diagnostics.TrainingDiagnostics that measures nothing."""

    def measure(self, *args):
        return None

    def write(self, *args):
        pass


def _clock():
    """time.perf_counter of a machine where every reading is one second later."""
    ticks = iter(range(1 << 30))
    return types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))


def diag_command():
    return Command(diag_benchmark.main, [
        "--data", "corpus.txt", "--seconds", 8, "--rounds", 2, "--chunk", 2], [
        (diag_benchmark, "time", Replace(_clock())),
        (diag_benchmark, "tempfile", Replace(types.SimpleNamespace(
            mkdtemp=lambda prefix: str(pathlib.Path(prefix).absolute())))),
        (tf_rnn.data, "load_corpus", THROUGH),
        (steps, "make_train_step", value(lambda *a: Counted.step(*a))),
        (Counted, "step", THROUGH),
        (diagnostics, "TrainingDiagnostics", value(FakeHook()))])


def diag(cmd, *flags):
    corpus_file()
    cmd.patches[0] = (diag_benchmark, "time", Replace(_clock()))  # from 0 each run
    calls = cmd(*flags)
    assert calls.status == 0, calls.err
    return calls


def check_diag_data(cmd):
    corpus_file("other.txt")
    assert diag(cmd, "--data", "other.txt").one("load_corpus")["data"] == "other.txt"


def check_diag_preset(cmd):
    reaches(cmd, ["--preset", "text8_arch2"], "TrainingDiagnostics",
            lambda a: a["config"].model, config_lib.get_preset("text8_arch2").model)


def check_every(cmd):
    assert diag(cmd, "--every", 7).one("TrainingDiagnostics")["config"].diag_every == 7
    default = config_lib.get_preset("text8_arch1").eval_every
    assert diag(cmd).one("TrainingDiagnostics")["config"].diag_every == default


def check_diag_seconds(cmd):
    assert len(diag(cmd, "--seconds", 16).all("step")) > len(diag(cmd).all("step"))


def check_diag_rounds(cmd):
    rows = [json.loads(line) for line in diag(cmd, "--rounds", 3).out.splitlines()]
    assert len(rows[0]["bursts"]["diag_off"]) == 3
    rows = [json.loads(line) for line in diag(cmd).out.splitlines()]
    assert len(rows[0]["bursts"]["diag_off"]) == 2


def check_chunk(cmd):
    assert len(diag(cmd, "--chunk", 3).all("step")) * 2 == len(diag(cmd).all("step")) * 3


def wrap(check, prepare):
    """`check` with `prepare()` run first (the file a parser insists on)."""
    def checked(cmd):
        prepare()
        return check(cmd)

    return checked


DIAG_CHECKS = {
    "--data": check_diag_data, "--preset": wrap(check_diag_preset, corpus_file),
    "--every": check_every, "--seconds": check_diag_seconds,
    "--rounds": check_diag_rounds, "--chunk": check_chunk}


def fake_train_for(a):
    for c in a["contenders"]:
        c.watch.total = a["seconds"]
        c.curve.append((a["seconds"], 1, 2.0))
        a["on_point"](c)
    return {c.name: 2.0 for c in a["contenders"]}


def contender(name):
    return _quality.Contender(name, None, None, 1, 1)


QUALITY = Command(quality.main, ["--data", "corpus.txt"], [
    (tf_rnn.data, "load_corpus", value(FAKE_CORPUS)),
    (_quality, "make_contenders", lambda a: [contender(n) for n in a["names"]]),
    (_quality, "tf_rnn_contender", lambda a: contender(a["name"])),
    (_quality, "train_for", fake_train_for), (quality, "plot_curves", value(None))])


def check_logdir(cmd):
    cmd("--logdir", "logs", "--contenders", "text8_best")
    assert list(pathlib.Path("logs/text8_best").iterdir())  # its TensorBoard events
    cmd("--contenders", "text8_best")
    assert list(pathlib.Path("runs/quality/text8_best").iterdir())


def check_quality_data(cmd):
    corpus_file("other.txt")
    assert cmd("--data", "other.txt").one("load_corpus")["data"] == "other.txt"
    assert cmd().one("load_corpus")["data"] == "corpus.txt"


def check_add(cmd):
    call = cmd("--add", "x=text8_best,num_nodes=16").one("tf_rnn_contender")
    assert (call["name"], call["preset"], call["changes"]) == ("x", "text8_best",
                                                               {"num_nodes": 16})
    assert not cmd().all("tf_rnn_contender")


QUALITY_CHECKS = {name: wrap(check, corpus_file) for name, check in {
    "--data": check_quality_data,
    "--minutes": lambda cmd: reaches(cmd, ["--minutes", 0.5], "train_for", "seconds", 30.0),
    "--points": argument_check("--points", "train_for", "points", 2),
    "--logdir": check_logdir,
    "--plot": lambda cmd: check_called(cmd, ["--plot", "curves.png"], "plot_curves", "path",
                                       "curves.png"),
    "--contenders": lambda cmd: reaches(cmd, ["--contenders", "keras_lstm_256"],
                                        "make_contenders", "names", ["keras_lstm_256"]),
    "--keras-schedule": argument_check("--keras-schedule", "make_contenders",
                                       "keras_schedule", "linear"),
    "--add": check_add}.items()}


class FakeLoaded:
    """A loaded export that answers at once; each answer is `Counted.served`."""

    def vocabulary(self):
        return tf.constant([b"a", b"b"])

    def zero_state(self, batch):
        return {"state": tf.zeros([int(batch), 4])}

    def _answer(self, method, batch, seed=None):
        Counted.served(method, batch, seed, threading.get_ident())
        return {"out": tf.zeros([batch])}

    def generate(self, prime, length, temperature, top_k, seed):
        return self._answer("generate", int(prime.shape[0]), int(seed))

    def score(self, text):
        return self._answer("score", int(text.shape[0]))

    def step(self, ids, state):
        return self._answer("step", int(ids.shape[0]))


SERVE = Command(serve_benchmark.main, ["--export", "EXPORT", "--requests", 6, "--threads", 2,
                                       "--max-batch", 3], [
    (tf.saved_model, "load", value(FakeLoaded())), (Counted, "served", THROUGH),
    (serve_benchmark, "_tiny_export", value("TINY"))])


def served(cmd, *flags):
    calls = cmd(*flags)
    assert calls.status == 0, calls.err
    return calls.all("served")


def check_serve_export(cmd):
    assert cmd().one("load")["export_dir"] == "EXPORT" and not cmd().all("_tiny_export")
    no_export = Command(cmd.main, [h for h in cmd.head if h not in ("--export", "EXPORT")],
                        cmd.patches)()
    assert no_export.one("load")["export_dir"] == "TINY"  # trained and exported here


def check_threads(cmd):
    def serving_threads(*flags):  # the threads that answered, the main one (the
        main = threading.get_ident()  # single-threaded reference answers) left out
        return len({a["thread"] for a in served(cmd, *flags)} - {main})

    assert serving_threads("--threads", 3) == 3 and serving_threads() == 2


def check_requests(cmd):
    assert len(served(cmd, "--requests", 9)) == 2 * 9  # the reference, then threaded
    assert len(served(cmd)) == 2 * 6


def check_serve_seed(cmd):
    seeds = [[a["seed"] for a in served(cmd, *flags) if a["method"] == "generate"]
             for flags in (("--seed", 1), ())]
    assert seeds[0] != seeds[1]


def check_max_batch(cmd):
    assert {a["batch"] for a in served(cmd, "--max-batch", 1)} == {1}
    assert max(a["batch"] for a in served(cmd)) > 1


SERVE_CHECKS = {"--export": check_serve_export, "--threads": check_threads,
                "--requests": check_requests, "--seed": check_serve_seed,
                "--max-batch": check_max_batch, "--verbose": check_verbose}

LSTM = Command(lstm_streams.main, ["--data", "corpus.txt", "--steps", 3], [
    (tf_rnn.data, "load_corpus", value(FAKE_CORPUS)),
    (_baselines, "KerasCharRNN", value(types.SimpleNamespace(
        train=lambda w: Counted.step(w)))),
    (Counted, "step", THROUGH), (steps, "scoring_streams", STOP)])
LSTM_CHECKS = {
    "--data": lambda cmd: reaches(cmd, ["--data", "c.txt"], "load_corpus", "data", "c.txt"),
    "--steps": lambda cmd: reaches(cmd, ["--steps", 5], "step", len, 5, many=True)}

MEASURED = {**dict.fromkeys(init_diagnostics.KEYS, 0.0), "grad_by_lag_last": [0.0] * 4}
INIT = Command(init_diagnostics.main, ["--steps", 4], [
    (training, "train", lambda a: {"step": a["config"].steps, "valid_bpc": 1.0}),
    (reading, "load_model", value((None, types.SimpleNamespace(size=27), None))),
    (reading, "load_corpus_for", value(FAKE_CORPUS)), (models, "build_model", value(None)),
    (keras.utils, "set_random_seed", value(None)),
    (probes, "measure_text", value(MEASURED)),
    (plots, "require_matplotlib", value(None)), (plots, "diagnostics_figure", value("d.png"))])


def each_run(get):
    """A reader of what every training run of init_diagnostics got."""
    return lambda calls: [get(a) for a in calls.all("train")]


def runs_got(cmd, flags, get, want, default):
    assert each_run(get)(cmd(*flags)) == want and each_run(get)(cmd()) == default


def check_init_data(cmd):
    runs_got(cmd, ["--data", "c.txt"], lambda a: a["data"], ["c.txt"] * 3, [None] * 3)
    assert {a["data"] for a in cmd("--data", "c.txt").all("load_corpus_for")} == {"c.txt"}


def check_init_cache_dir(cmd):
    runs_got(cmd, ["--cache-dir", "cache"], lambda a: a["cache_dir"], ["cache"] * 3,
             [None] * 3)
    got = {a["cache_dir"] for a in cmd("--cache-dir", "cache").all("load_corpus_for")}
    assert got == {"cache"}


def check_windows(cmd):
    assert {a["windows"] for a in cmd("--windows", 2).all("measure_text")} == {2}
    assert {a["windows"] for a in cmd().all("measure_text")} == {4}


INIT_CHECKS = {
    "--data": check_init_data, "--cache-dir": check_init_cache_dir,
    "--preset": lambda cmd: runs_got(
        cmd, ["--preset", "text8_arch2", "--inits", "seed,glorot"],  # irnn: not Arch 2's
        lambda a: a["config"].model, [config_lib.get_preset("text8_arch2").model] * 2,
        [config_lib.get_preset("text8_arch1").model] * 3),
    "--inits": lambda cmd: runs_got(cmd, ["--inits", "glorot,irnn"],
                                    lambda a: a["config"].init, ["glorot", "irnn"],
                                    ["seed", "glorot", "irnn"]),
    "--steps": lambda cmd: runs_got(cmd, ["--steps", 5], lambda a: a["config"].steps,
                                    [5] * 3, [4] * 3),
    "--set": lambda cmd: runs_got(cmd, ["--set", "num_nodes=5"],
                                  lambda a: a["config"].num_nodes, [5] * 3,
                                  [config_lib.get_preset("text8_arch1").num_nodes] * 3),
    "--workdir": lambda cmd: runs_got(cmd, ["--workdir", "w"],
                                      lambda a: str(pathlib.Path(a["workdir"].path)),
                                      ["w/seed", "w/glorot", "w/irnn"],
                                      [f"runs/init_diagnostics/{i}"
                                       for i in ("seed", "glorot", "irnn")]),
    "--windows": check_windows,
    "--plot": lambda cmd: check_called(cmd, ["--plot", "d.png"], "diagnostics_figure",
                                       "path", "d.png"),
}


# experiments.shakespeare_char -----------------------------------------------------------

CHAR = Command(shakespeare_char.main, ["--workdir", "w"], [
    (training, "train", lambda a: {"step": 1, "train_minutes": 0.1}),
    (reading, "load_model", value(reading.Loaded("model", None, config_lib.Config(), {}))),
    (reading, "run_data", value("recorded")), (reading, "load_corpus_for", value(FAKE_CORPUS)),
    (steps, "evaluate_windows", value({"loss": 2.0, "bpc": 2.9})),
    (steps, "evaluate", value({"loss": 1.0, "bpc": 1.4}))])


def check_char_preset(cmd):
    reaches(cmd, ["--preset", "text8_arch2"], "train", lambda a: a["config"].model, "arch2")
    assert cmd().one("train")["config"].split == "90/10/0"


CHAR_CHECKS = {
    "--preset": check_char_preset,
    "--minutes": lambda cmd: reaches(cmd, ["--minutes", 10], "train",
                                     lambda a: a["config"].budget_minutes, 10.0),
    "--windows": lambda cmd: reaches(cmd, ["--windows", 9], "evaluate_windows", "count", 9),
    "--workdir": lambda cmd: reaches(cmd, ["--workdir", "x"], "train", "workdir", "x"),
    "--no-progress": lambda cmd: reaches(cmd, ["--no-progress"], "train", "progress", False),
    "--verbose": check_verbose,
}


# experiments.gpt_peers ------------------------------------------------------------------

def fake_peer(a):
    """A contender's result at once (gpt_peers.train_torch's and train_keras's)."""
    return {"valid_bpc": 2.0, "valid_nats": 1.4, "steps": 1, "chars_per_sec": 1.0,
            "train_seconds": 60.0 * a["args"].minutes, "schedule_fraction": 1.0,
            "final_learning_rate": 1e-4, "first_loss": 3.0, "last_loss": 2.0,
            "parameters": 1, "valid_chars": 1, "threads": 1, "settings": {}}


PEERS = Command(gpt_peers.main, ["--data", "corpus.txt"], [
    (tf_rnn.data, "load_corpus", value(FAKE_CORPUS)),
    (gpt_peers, "require_torch", value(None)),  # the option, not the machine, is tested
    (gpt_peers, "train_torch", fake_peer), (gpt_peers, "train_keras", fake_peer),
    (gpt_peers, "keras_threads", value(None))])


def check_peers_data(cmd):
    corpus_file("other.txt")
    assert cmd("--data", "other.txt").one("load_corpus")["data"] == "other.txt"
    assert cmd().one("load_corpus")["data"] == "corpus.txt"


PEERS_CHECKS = {name: wrap(check, corpus_file) for name, check in {
    "--data": check_peers_data,
    "--minutes": lambda cmd: reaches(cmd, ["--minutes", 0.5], "train_torch",
                                     lambda a: a["args"].minutes, 0.5),
    "--contenders": lambda cmd: reaches(cmd, ["--contenders", "keras_wide"], "train_keras",
                                        "name", "keras_wide"),
    "--vocab": argument_check("--vocab", "load_corpus", "vocab", "corpus"),
    "--split": lambda cmd: reaches(cmd, ["--split", "90/10/0"], "load_corpus", "fractions",
                                   (0.9, 0.1, 0.0)),
    "--windows": lambda cmd: reaches(cmd, ["--windows", 9], "train_torch",
                                     lambda a: a["args"].windows, 9),
    "--window-length": lambda cmd: reaches(cmd, ["--window-length", 32], "train_torch",
                                           lambda a: a["args"].window_length, 32),
    "--set": lambda cmd: reaches(cmd, ["--set", "n_layer=2"], "train_torch",
                                 lambda a: a["r"].n_layer, 2),
    "--threads": argument_check("--threads", "keras_threads", "threads", 1),
    "--seed": lambda cmd: reaches(cmd, ["--seed", 3], "train_keras",
                                  lambda a: a["args"].seed, 3),
    "--verbose": check_verbose}.items()}


# The table, and the test that every option is in it ------------------------------------

EXPERIMENT_CHECKS = {
    **{f"experiments.{name}": (preset_command(name),
                               {**RUN_ARGUMENT_CHECKS, "--plot": check_train_plot})
       for name in PRESET_MODULES},
    "experiments.xor_elman": (XOR, XOR_CHECKS),
    "experiments.hello": (HELLO, HELLO_CHECKS),
    "experiments.binary_addition": (ADDITION, ADDITION_CHECKS),
    "experiments.benchmark": (BENCHMARK, BENCHMARK_CHECKS),
    "experiments.diag_benchmark": (diag_command(), DIAG_CHECKS),
    "experiments.quality": (QUALITY, QUALITY_CHECKS),
    "experiments.gpt_peers": (PEERS, PEERS_CHECKS),
    "experiments.serve_benchmark": (SERVE, SERVE_CHECKS),
    "experiments.lstm_streams": (LSTM, LSTM_CHECKS),
    "experiments.init_diagnostics": (INIT, INIT_CHECKS),
    "experiments.shakespeare_char": (CHAR, CHAR_CHECKS),
}
CHECKS = {**CLI_CHECKS, **{(parser, option): (cmd, check)
                           for parser, (cmd, checks) in EXPERIMENT_CHECKS.items()
                           for option, check in checks.items()}}
# argparse's own --help: what it prints is test_cli_help's (and test_docs') business.
EXEMPT = ("--help",)


def all_options():
    """{(parser name, option)} of every tf-rnn command and every experiment."""
    top = cli.build_parser()
    found = {("tf-rnn", option) for option in options(top)}
    for command, parser in subparsers(top).items():
        found |= {(f"tf-rnn {command}", option) for option in options(parser)}
    for name, module in experiment_modules().items():
        found |= {(name, option) for option in options(parser_of(module.main))}
    return {(parser, option) for parser, option in found if option not in EXEMPT}


def test_every_option_has_a_check():
    found = all_options()
    missing = sorted(f"{parser} {option}" for parser, option in found - set(CHECKS))
    assert not missing, f"options without a check in test_options.CHECKS: {missing}"
    stale = sorted(f"{parser} {option}" for parser, option in set(CHECKS) - found)
    assert not stale, f"checks of options that no parser has: {stale}"


@pytest.mark.parametrize("parser, option", sorted(CHECKS))
def test_option_is_honoured(parser, option):
    cmd, check = CHECKS[parser, option]
    check(cmd)
