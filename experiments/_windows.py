"""What the two baby GPTs share, in NumPy alone: the Keras one (`_transformer`) and the
PyTorch one (`_nanogpt`, nanoGPT's recipe, run in a child process that never imports
TensorFlow) take their training batches, run their budget and choose the characters they
are scored on here, once, so that a difference between them is the framework's.

- `Recipe`: nanoGPT's CPU recipe for shakespeare_char, the settings both are built from.
- `RandomWindows`: nanoGPT's `get_batch`, B slices of T + 1 ids at random offsets.
- `BudgetLoop`: the loop of a time budget (`tf_rnn.train.budget.TimeBudget`), at once
  (`train_on_budget`) or in turns (`_nanogpt --serve`), and `warmup_cosine`, the
  learning rate along it (the Keras one's `WarmupCosine`).
- `window_plan`, `scored_targets`, `scoring_windows`: the windows that score the
  characters the recurrent contenders score (`tf_rnn.engine.steps.scoring_streams`, 32
  streams), each with at least half the context before it where the text allows.
- `random_windows`: nanoGPT's `estimate_loss` windows (as `tf-rnn eval --windows`).
"""

import dataclasses
import math

import numpy as np

from tf_rnn.base.errors import ConfigError, DataError

LOG_SECONDS = 10.0  # between two progress lines of `train_on_budget`


@dataclasses.dataclass(frozen=True)
class Recipe:
    """nanoGPT's CPU recipe for shakespeare_char (its README's command), under
    nanoGPT's names: the PyTorch GPT's settings (`_nanogpt`); the Keras one
    (`_transformer.GPTTrainer`) has the same defaults under names of its own."""

    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads (dividing n_embd)
    n_embd: int = 128  # width
    block_size: int = 64  # context: the characters a window reads
    batch_size: int = 12  # windows per step
    dropout: float = 0.0  # after the embeddings, in attention, after each projection
    learning_rate: float = 1e-3  # the peak, after the warm-up
    min_learning_rate: float = 1e-4  # the cosine's end, when the budget is spent
    warmup: int = 100  # steps of the linear warm-up
    weight_decay: float = 0.1  # AdamW's, on parameters of 2 or more dimensions

    def __post_init__(self):
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ConfigError(f"Received an invalid value for `{name}`, expected a "
                                  f"positive integer, got {value!r}.")
        if self.n_embd % self.n_head:
            raise ConfigError(f"Received an invalid value for `n_head`, expected a divisor "
                              f"of n_embd {self.n_embd}, got {self.n_head}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"Received an invalid value for `dropout`, expected a number "
                              f"in [0, 1), got {self.dropout!r}.")
        for name in ("learning_rate", "min_learning_rate", "warmup", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"Received an invalid value for `{name}`, expected a "
                                  f"non-negative number, got {getattr(self, name)!r}.")

    @classmethod
    def with_changes(cls, changes):
        """The recipe with `changes` ({field: value}); ConfigError for an unknown field
        or a value of the wrong type."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise ConfigError(f"Unknown recipe fields {unknown}; known: {sorted(fields)}.")
        typed = {}
        for name, value in changes.items():
            kind = int if fields[name] in (int, "int") else float
            try:
                typed[name] = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"Received an invalid value for `{name}`, expected "
                                  f"{'an integer' if kind is int else 'a number'}, got "
                                  f"{value!r}.") from None
            if kind is int and typed[name] != float(value):
                raise ConfigError(f"Received an invalid value for `{name}`, expected an "
                                  f"integer, got {value!r}.")
        return cls(**typed)


class RandomWindows:
    """next() -> (batch, length + 1) slices of `ids` at random offsets (seeded)."""

    def __init__(self, ids, batch_size, length, seed=0):
        self.ids = np.asarray(ids, np.int32)
        if len(self.ids) < length + 1:
            raise ValueError(f"Received a text of {len(self.ids)} characters, too short for "
                             f"windows of {length + 1}.")
        self.batch_size, self.length = batch_size, length
        self.rng = np.random.default_rng(seed)

    def next(self):
        starts = self.rng.integers(0, len(self.ids) - self.length, self.batch_size)
        return self.ids[starts[:, None] + np.arange(self.length + 1)[None, :]]


class BudgetLoop:
    """The loop of a time budget, run at once (`train_on_budget`) or in turns (the
    PyTorch GPT's server, `_nanogpt --serve`): one implementation of both.

    Its clock is `budget`'s (a `tf_rnn.train.budget.TimeBudget`): `start()` starts it before
    the first step (whose tracing or warm-up it counts); `budget.update()` before each
    step gives the fraction spent, which the schedule follows.

    Args:
      step: step(window (B, T + 1), fraction) -> loss (nats), one update.
      windows: `RandomWindows` (anything with next()).
      log: a function of one line, called every LOG_SECONDS (None: silent).
    """

    def __init__(self, budget, step, windows, log=None, name="gpt"):
        self.budget, self.step, self.windows = budget, step, windows
        self.log, self.name = log, name
        self.steps, self.losses, self.logged = 0, [], 0.0
        self.fraction = 0.0  # the last step's: where its schedule has reached

    def start(self):
        self.budget.start()
        self.logged = self.budget.spent()

    def train(self, stop=lambda: False):
        """Steps until the budget is spent or `stop()` (asked before each step) is
        true; returns whether the budget is spent."""
        while not self.budget.exhausted() and not stop():
            self.fraction = self.budget.update()
            self.losses.append(self.step(self.windows.next(), self.fraction))
            self.steps += 1
            if self.log and self.budget.spent() - self.logged >= LOG_SECONDS:
                self.logged = self.budget.spent()
                self.log(f"  {self.name}: {self.logged:.0f} s, {self.steps} steps "
                         f"({self.fraction:.0%} of the schedule), loss {self.last_loss:.3f}")
        return self.budget.exhausted()

    @property
    def last_loss(self):
        """The mean of the last 10 steps' losses (NaN before the first step)."""
        return float(np.mean(self.losses[-10:])) if self.losses else math.nan

    def result(self):
        """{"steps", "train_seconds", "fraction" (1 at the end), "first_loss",
        "last_loss"}."""
        return {"steps": self.steps, "train_seconds": self.budget.spent(),
                "fraction": self.budget.update(), "first_loss": float(self.losses[0]),
                "last_loss": self.last_loss}


def train_on_budget(budget, step, windows, log=None, name="gpt"):
    """Trains until `budget` (a `tf_rnn.train.budget.TimeBudget`, not started) is spent, in
    one go (`BudgetLoop`'s arguments).

    Its clock runs from the first step (the first step's tracing or warm-up included)
    to the end of the last; scoring comes after and is not counted.

    Returns:
      `BudgetLoop.result()`: {"steps", "train_seconds", "fraction" (1 at the end),
       "first_loss", "last_loss" (the mean of the last 10 steps')}.
    """
    loop = BudgetLoop(budget, step, windows, log, name)
    loop.start()
    loop.train()
    return loop.result()


def warmup_cosine(step, fraction, r):
    """nanoGPT's `get_lr` on a budget: a linear warm-up to `r.learning_rate` over
    `r.warmup` steps, then a cosine to `r.min_learning_rate` over the fraction of the
    budget spent (the floor once it is 1), as `_transformer.WarmupCosine` computes it."""
    if step < r.warmup:
        return r.learning_rate * (step + 1) / (r.warmup + 1)
    done = min(max(fraction, 0.0), 1.0)
    return r.min_learning_rate + 0.5 * (1.0 + math.cos(math.pi * done)) * (
        r.learning_rate - r.min_learning_rate)


def window_plan(num_chars, context=64, streams=32):
    """Where the windows that score a text of `num_chars` characters start, and what
    each scores.

    The scored targets are those of `tf_rnn.engine.steps.scoring_streams(ids, streams)`:
    characters 1 .. N with N = streams · ((num_chars - 1) // streams). Window k reads
    inputs starts[k] .. starts[k] + context - 1 and predicts the next character at each;
    it scores the targets from starts[k] + first[k] + 1 on.

    Returns:
      (starts (K,), first (K,)) ints, and N.
    """
    n = streams * ((num_chars - 1) // streams)
    if n <= context:
        return np.array([0]), np.array([0]), n
    half = context // 2
    starts = list(range(0, n - context + 1, half))
    first = [0] + [half] * (len(starts) - 1)
    covered = starts[-1] + context  # targets 1 .. covered scored so far
    if covered < n:  # the last window ends at the last scored target
        starts.append(n - context)
        first.append(covered - (n - context))
    return np.array(starts), np.array(first), n


def scored_targets(num_chars, context=64, streams=32):
    """(targets (M,), context lengths (M,)) of `window_plan`: each scored character's
    index in the text and how many characters before it its window holds."""
    starts, first, n = window_plan(num_chars, context, streams)
    width = min(context, n)
    targets, contexts = [], []
    for s, f in zip(starts, first):
        positions = np.arange(f, width)
        targets.append(s + positions + 1)
        contexts.append(positions + 1)
    return np.concatenate(targets), np.concatenate(contexts)


def scoring_windows(num_chars, context=64, streams=32):
    """The windows both GPTs score a text with, as index arrays (`window_plan`'s).

    A scorer reads `window = ids[index]`, feeds `window[:, :-1]`, and sums the loss of
    `window[:, 1:]` where `scored` is true; divided by N, that is the loss per character
    of the same N characters every contender of a quality comparison scores.

    Returns:
      (index (K, W + 1) ints, scored (K, W) bools, N), W = min(context, N).

    Raises:
      DataError: a text too short for `streams` streams (as `scoring_streams`).
    """
    if num_chars < streams + 1:
        raise DataError(f"A text of {num_chars} characters cannot be cut into {streams} "
                        f"streams of at least 2 characters.")
    starts, first, n = window_plan(num_chars, context, streams)
    width = min(context, n)
    index = starts[:, None] + np.arange(width + 1)[None, :]  # (K, W + 1)
    scored = np.arange(width)[None, :] >= first[:, None]  # (K, W)
    return index, scored, n


def random_windows(num_chars, count, length, seed=0):
    """nanoGPT's `estimate_loss` windows: (count, length + 1) indices at offsets drawn by
    `default_rng(seed)`, the draw of `tf_rnn.engine.steps.evaluate_windows` (the same windows
    `tf-rnn eval --windows` scores). The loss is averaged over every position."""
    if num_chars < length + 1:
        raise DataError(f"Cannot draw windows of {length} + 1 characters from a text of "
                        f"{num_chars}.")
    starts = np.random.default_rng(seed).integers(0, num_chars - length, count)
    return starts[:, None] + np.arange(length + 1)[None, :]
