"""The three kinds of contender `experiments.quality` trains in turns for a time budget.

`RunContender`: a tf_rnn preset, trained by the loop `tf-rnn train --minutes M` runs
(`tf_rnn.train.training.opened`), in a run directory of its own: its clock counts what the
CLI's counts (steps, validations every `eval_every` steps, samples, saves,
diagnostics), and its figure is `tf-rnn eval --split valid` of the run it leaves, so
that the two commands it prints (`command`) reproduce it on a machine of their own.

`Contender`: a peer (a Keras RNN, the Keras transformer) with a train step of its own,
trained a window at a time under a `tf_rnn.train.budget.TimeBudget`, as the CLI's loop would
train it; validated at the moments of its curve and at its end.

`ChildContender`: a peer trained in a child process, PyTorch's GPT (`_nanogpt --serve`:
PyTorch and TensorFlow crash in one process); the child runs the budget's loop and
keeps the clock, this process decides when it validates, as for a `Contender`.

Each has a clock of its own (a `tf_rnn.train.budget.Stopwatch`) that runs during its turns
only: the others' turns are not its time. All share: `begin(...)` before the first
turn, `turn(seconds)` (trains that long on its clock, or to its budget's end), `ended`,
`finish()` (its figure: validation BPC), `close()` (lets go of what it holds, a child
process; after `finish`, or when the run fails), `curve` [(seconds, steps, valid BPC)],
`steps`, `seconds`, `chars_per_sec`, `schedule_fraction` (the fraction of its budget its
schedule has reached, a float), `hparams`, and `command` (None for a peer).
"""

import contextlib
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from tf_rnn.base.errors import ArgumentError, UserError

ROOT = pathlib.Path(__file__).resolve().parents[1]  # where `python -m experiments.X` runs
NEEDS_TORCH = "needs PyTorch: pip install -e '.[cpu,bench]'"
QUIT_SECONDS = 10.0  # how long a child may take to go, asked and then terminated


class Marks:
    """The `points - 1` equally spaced moments of a budget of `seconds` at which a
    peer's curve gets a validation before its end."""

    def __init__(self, seconds, points):
        self.left = [seconds * (i + 1) / points for i in range(points - 1)]

    def next(self):
        return self.left[0] if self.left else math.inf

    def passed(self, now):
        """Whether the clock (`now`) has passed a moment; all it has passed are used
        up by one validation (a validation dearer than the gap between two moments is
        not repeated back to back)."""
        passed = [m for m in self.left if m <= now]
        self.left = self.left[len(passed):]
        return bool(passed)


class Contender:
    """A peer trained a step at a time: `train(window) -> loss`, `valid_bpc(ids)`.

    `model` is the model behind them (the transformer's `_transformer.GPTTrainer`), for a
    closer look than the two figures.
    `progress` is the float32 variable its schedule reads: the fraction of its budget
    spent; `windows(ids)` gives its training windows (default: `tf_rnn.data.BatchCursors`,
    the streams a carried state needs); `hparams` its settings for TensorBoard's HParams
    dashboard.
    """

    command = None  # a peer has no tf-rnn command

    def __init__(self, name, train, valid_bpc, batch_size, num_unrollings, model=None,
                 progress=None, windows=None, hparams=None):
        from tf_rnn.train import budget

        self.name, self.train, self.valid_bpc = name, train, valid_bpc
        self.model = model
        self.batch_size, self.num_unrollings = batch_size, num_unrollings
        self.progress = progress if progress is not None else new_progress()
        self.windows = windows or self._cursors
        self.hparams = {"model": name, **(hparams or {}), "batch": batch_size}
        self.watch = budget.Stopwatch()
        self.steps, self.last_loss = 0, math.nan
        self.curve = []  # (training seconds, steps, valid BPC)
        self.budget = None

    def _cursors(self, ids):
        from tf_rnn import data

        return data.BatchCursors(ids, self.batch_size, self.num_unrollings)

    seconds = property(lambda self: self.watch())

    @property
    def chars_per_sec(self):
        return self.steps * self.batch_size * self.num_unrollings / max(self.seconds, 1e-9)

    @property
    def ended(self):
        return self.budget is not None and self.budget.exhausted()

    @property
    def schedule_fraction(self):
        return float(self.progress.numpy())

    def begin(self, corpus_ids, valid_ids, seconds, points, on_point):
        """Its windows, its budget of `seconds`, and the `points - 1` moments of its
        clock at which it is validated before its end (`on_point(self)` after each)."""
        from tf_rnn.train import budget

        self.cursors = self.windows(corpus_ids)
        self.valid_ids, self.on_point = valid_ids, on_point
        self.budget = budget.TimeBudget(seconds / 60, self.progress, timer=self.watch)
        self.budget.start()
        self.marks = Marks(seconds, points)

    def turn(self, seconds):
        with self.watch.running():
            turn_end = self.seconds + seconds
            while self.seconds < turn_end and not self.budget.exhausted():
                self.budget.update()  # the fraction spent: the rate of this step
                self.last_loss = self.train(self.cursors.next())
                self.steps += 1
                self._measure_if_due()

    def _measure_if_due(self):
        """A validation once its clock has passed a moment of its curve (`Marks`),
        unless the budget's end would repeat it at once (as the CLI leaves a periodic
        validation to the last step)."""
        if self.marks.passed(self.seconds) and not self.budget.ends_after("validation"):
            self._measure()

    def finish(self):
        """Its last validation, on its clock as the CLI's last one is: its figure."""
        with self.watch.running():
            self._measure()
        return self.curve[-1][2]

    def _measure(self):
        with self.budget.job("validation"):  # its time kept aside for the last one
            bpc = float(self.valid_bpc(self.valid_ids))
        self.curve.append((self.seconds, self.steps, bpc))
        if self.on_point:
            self.on_point(self)

    def close(self):
        """Nothing to let go of."""


class RunContender:
    """tf_rnn's `preset` with `changes` (config fields), trained for `minutes` on the
    corpus at `data` in the run directory `workdir` (a new one), as `tf-rnn train`
    trains it; its curve is the run's own validations."""

    def __init__(self, name, preset, changes, data, workdir, minutes):
        from tf_rnn.base import config as config_lib
        from tf_rnn.train import budget, training

        self.name, self.preset, self.changes = name, preset, dict(changes)
        self.data, self.workdir, self.minutes = data, str(workdir), minutes
        cfg = config_lib.get_preset(preset).replace(**changes, budget_minutes=minutes)
        self.batch_size, self.num_unrollings = cfg.batch_size, cfg.num_unrollings
        self.hparams = {"model": name, "width": cfg.num_nodes, "layers": cfg.num_layers,
                        "lr": cfg.learning_rate, "schedule": cfg.schedule,
                        "unroll_or_context": cfg.num_unrollings, "batch": cfg.batch_size}
        self.watch = budget.Stopwatch()
        self._open = contextlib.ExitStack()
        self.trainer = self._open.enter_context(
            training.opened(cfg, workdir, data, progress=False, timer=self.watch))
        self.ended, self.curve, self.on_point = False, [], None

    seconds = property(lambda self: self.watch())
    steps = property(lambda self: self.trainer.step)
    schedule_fraction = property(
        lambda self: float(self.trainer.run.budget_progress.numpy()))
    chars_per_sec = Contender.chars_per_sec

    @property
    def last_loss(self):
        return math.nan if self.trainer.loss is None else self.trainer.loss

    @property
    def command(self):
        """The `tf-rnn` commands that train and score it alone (in a directory of
        their own)."""
        settings = "".join(f" --set {k}={_setting(v)}" for k, v in self.changes.items())
        workdir = os.path.join("runs", "quality-cli", self.name)
        data = f" --data {self.data}" if self.data else ""
        return (f"tf-rnn train --preset {self.preset}{data}{settings} "
                f"--minutes {self.minutes:g} --workdir {workdir} && "
                f"tf-rnn eval --workdir {workdir} --split valid")

    def begin(self, corpus_ids, valid_ids, seconds, points, on_point):
        """Checks that it scores the peers' validation characters (its budget is its
        config's, its curve its validations)."""
        import numpy as np

        if not np.array_equal(self.trainer.corpus.valid, valid_ids):
            config = self.trainer.config
            raise ArgumentError(f"{self.name}'s validation split (vocab {config.vocab!r}, "
                                f"split {config.split}) is not the peers': its figure "
                                f"would not compare.")
        self.on_point = on_point

    def turn(self, seconds):
        with self.watch.running():
            turn_end = self.seconds + seconds
            self.ended = self.trainer.train_while(lambda: self._after_step() < turn_end)

    def _after_step(self):
        """Its clock after a step, the step's validation (if any) put on its curve."""
        latest = self.trainer.validated
        if latest is not None and (not self.curve or self.curve[-1][1] != latest[0]):
            self.curve.append((self.seconds, *latest))
            if self.on_point:
                self.on_point(self)
        return self.seconds

    def finish(self):
        """Its run closed (its lock let go) and its last checkpoint scored as `tf-rnn
        eval --split valid` scores it."""
        from tf_rnn import cli

        self._after_step()
        self.trainer.figures()
        self._open.close()
        return cli.evaluate_split(self.workdir, "valid")["bpc"]

    def close(self):
        """Its run closed, its lock let go (again: nothing)."""
        self._open.close()


class ChildContender:
    """A peer trained in a child process, `python -m experiments._nanogpt --serve`:
    PyTorch's GPT on the `job` (a `_nanogpt` job less its ids and minutes: "settings",
    "seed", "threads"), `batch_size` windows of `context` characters a step.

    The child keeps the budget, its loop and its clock (`_nanogpt.Session`); this
    process asks for its turns and for the validations of its curve, at `Marks`'
    moments of its clock (none where its budget's end would repeat one at once) and at
    its end. A child that fails is a UserError with its last line on stderr.
    """

    command = None  # a peer has no tf-rnn command
    module = "experiments._nanogpt"

    def __init__(self, name, job, alphabet, batch_size, context, hparams=None):
        if not has_torch():
            raise UserError(f"{name} {NEEDS_TORCH}")
        self.name, self.job, self.alphabet = name, dict(job), alphabet
        self.batch_size, self.num_unrollings = batch_size, context
        self.hparams = {"model": name, **(hparams or {}), "batch": batch_size}
        self.child = self.folder = None
        self.state = {"steps": 0, "seconds": 0.0, "fraction": 0.0, "last_loss": None,
                      "ended": False}
        self.curve, self.on_point = [], None

    steps = property(lambda self: self.state["steps"])
    seconds = property(lambda self: self.state["seconds"])
    ended = property(lambda self: self.state["ended"])
    schedule_fraction = property(lambda self: float(self.state["fraction"]))
    chars_per_sec = Contender.chars_per_sec

    @property
    def last_loss(self):
        loss = self.state["last_loss"]
        return math.nan if loss is None else loss

    def begin(self, corpus_ids, valid_ids, seconds, points, on_point):
        """Starts the child on the ids (written to a temporary folder of its own) and
        its budget of `seconds`."""
        self.folder = tempfile.TemporaryDirectory(prefix="tf_rnn_child_")
        folder = pathlib.Path(self.folder.name)
        np.save(folder / "train.npy", np.asarray(corpus_ids, np.int32))
        np.save(folder / "valid.npy", np.asarray(valid_ids, np.int32))
        with open(folder / "stderr.txt", "w", encoding="utf-8") as stderr:
            self.child = start_child(self.module, ["--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr)
        self.marks, self.on_point = Marks(seconds, points), on_point
        self._ask("begin", name=self.name, **self.job, alphabet_size=self.alphabet,
                  minutes=seconds / 60, train=str(folder / "train.npy"),
                  valid=str(folder / "valid.npy"))

    def turn(self, seconds):
        """Its turns in the child, each ending at the next moment of its curve at the
        latest, that moment's validation after it."""
        turn_end = self.seconds + seconds
        while self.seconds < turn_end and not self.ended:
            self._ask("turn", seconds=min(turn_end, self.marks.next()) - self.seconds)
            if self.marks.passed(self.seconds):
                self._measure(periodic=True)

    def finish(self):
        """Its last validation, on its clock: its figure; then the child is let go."""
        self._measure()
        self.close()
        return self.curve[-1][2]

    def _measure(self, periodic=False):
        bpc = self._ask("validate", periodic=periodic)["bpc"]
        if bpc is not None:  # None: left to the last one
            self.curve.append((self.seconds, self.steps, float(bpc)))
            if self.on_point:
                self.on_point(self)

    def _ask(self, command, **fields):
        """The child's answer to `command`, its state kept; UserError if it fails."""
        try:
            self.child.stdin.write(json.dumps({"command": command, **fields}) + "\n")
            self.child.stdin.flush()
            line = self.child.stdout.readline()
        except OSError:  # its end of the pipe closed: it has gone
            line = ""
        if not line:
            raise UserError(f"{self.name}: its child process failed (exit "
                            f"{self.child.wait(timeout=QUIT_SECONDS)}): "
                            f"{self._last_error()}")
        answer = json.loads(line)
        if "error" in answer:
            raise UserError(f"{self.name}: {answer['error']}")
        self.state.update((k, answer[k]) for k in self.state)
        return answer

    def _last_error(self):
        lines = (pathlib.Path(self.folder.name) / "stderr.txt").read_text(
            encoding="utf-8", errors="replace").strip().splitlines()
        return lines[-1] if lines else "nothing on stderr"

    def close(self):
        """The child asked to quit, terminated then killed if it does not go, and its
        folder removed (again: nothing)."""
        if self.child is not None:
            with contextlib.suppress(OSError):
                self.child.stdin.write(json.dumps({"command": "quit"}) + "\n")
                self.child.stdin.flush()
            _stop(self.child)
            self.child = None
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None


def start_child(module, args, **pipes):
    """`python -m module args` from the repository root (so that `experiments` imports),
    text pipes as `pipes` say: PyTorch's side of a comparison, never in this process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            text=True, **pipes)


def has_torch():
    """Whether PyTorch is installed (looked up, never imported: TensorFlow is loaded
    here, and the two crash in one process)."""
    return importlib.util.find_spec("torch") is not None


def _stop(child):
    """Waits for `child` (asked to quit) to go; terminates it, then kills it, if it
    does not go in QUIT_SECONDS; closes its pipes."""
    for stop in (None, child.terminate, child.kill):
        if stop:
            stop()
        try:
            child.wait(timeout=QUIT_SECONDS)
            break
        except subprocess.TimeoutExpired:
            continue
    for stream in (child.stdin, child.stdout):
        with contextlib.suppress(OSError):
            stream.close()


def _setting(value):
    """A config value as `--set` reads it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def new_progress():
    """The fraction of a budget spent, 0: the float32 variable a schedule reads."""
    import tensorflow as tf

    return tf.Variable(0.0, dtype=tf.float32, trainable=False, name="budget_progress")
