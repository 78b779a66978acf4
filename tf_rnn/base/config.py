"""Run configuration: one frozen dataclass, validated on construction, and the presets.

A preset is a `Config` with the settings of one seed system; an experiment or a
command line overrides a few fields (`with_overrides`, `--set key=value`).
"""

import dataclasses
import json
import math
import typing

from tf_rnn.base import model_table
from tf_rnn.base.errors import ConfigError

MODELS = tuple(model_table.MODELS)  # the table of models (tf_rnn.base.model_table)
OPTIMIZERS = ("adadelta", "sgd", "adagrad", "adam")
INITS = ("seed", "glorot", "irnn", "charrnn", "uniform")
COMBINES = ("concat", "sum", "mul")  # Arch 1: how x·U and h·W meet (tf_rnn.models.cells.Arch1Cell)
ACTIVATIONS = ("relu", "tanh")  # Arch 1's non-linearity
VOCABS = ("text8", "corpus")
UNKNOWN = ("error", "space")
FEEDBACKS = ("sample", "probs")
STRATEGIES = ("default", "mirrored", "multiworker")  # see tf_rnn.engine.distribute
SCHEDULES = ("step", "linear", "cooldown")  # see tf_rnn.engine.steps.Schedule
# The fields that take one of a few values, and those values.
CHOICES = {"model": MODELS, "combine": COMBINES, "activation": ACTIVATIONS,
           "feedback": FEEDBACKS, "init": INITS, "vocab": VOCABS, "unknown": UNKNOWN,
           "optimizer": OPTIMIZERS, "strategy": STRATEGIES, "schedule": SCHEDULES}

# Fields that fix the shape of the weights, the meaning of the ids or what a checkpoint
# holds (one cursor and state row per batch row, the optimizer's slots): a work
# directory trained with one value cannot be resumed with another.
SHAPE_FIELDS = ("model", "combine", "num_nodes", "vocab", "normalize", "batch_size",
                "optimizer", "num_layers", "cell")


# Fields read only under some settings: field -> (the field that decides, the values of
# it under which the field is read). Elsewhere a value other than the field's default
# is refused: the run would ignore it, yet config.json would record it as if it had
# shaped the run. The default passes everywhere, so the config.json of an older run
# (each holds every field) still loads. The models' fields: as the table of models says.
APPLIES_ONLY = {
    **{field: ("model", tuple(name for name, entry in model_table.MODELS.items()
                              if entry.reads(field)))
       for field in model_table.MODEL_FIELDS},
    "init_mean": ("init", ("seed",)),
    "init_stddev": ("init", ("seed",)),
    "init_gain": ("init", ("irnn",)),
    "epsilon": ("optimizer", ("adadelta", "adagrad", "adam")),  # Keras SGD has none
    "cooldown_fraction": ("schedule", ("cooldown",)),
}

# (model, init) pairs that cannot work, and why (the table of models); every other pair
# builds and trains (tests/test_config.py builds each one).
REFUSED_INITS = {(name, init): why for name, entry in model_table.MODELS.items()
                 for init, why in entry.refused_inits.items()}


def _field(default, help):
    """A dataclass field with its one-line description (`tf-rnn train --help` shows it)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a training run. Defaults are the Arch 1 seed settings."""

    # Model.
    model: str = _field("arch1", "one of the models of the table (`tf-rnn train --help`, "
                        "above)")
    num_nodes: int = _field(100, "n: Arch 1 state is 2n wide (n for sum/mul), Arch 2 "
                            "hidden 2n, Elman hidden n, IndRNN n per layer")
    combine: str = _field("concat", "arch1: concat(x·U, h·W) | sum x·U + h·W | mul "
                          "(multiplicative integration)")
    activation: str = _field("relu", "arch1's non-linearity: relu (the seed's) | tanh")
    feedback: str = _field("sample", "arch2's free-running feedback: the sampled one-hot | "
                           "probs (the softmax)")
    init: str = _field("seed", "seed: truncated normal(init_mean, init_stddev) | glorot | "
                       "irnn | charrnn | uniform")
    init_mean: float = _field(-0.1, "init=seed: the mean (the seed's "
                              "tf.truncated_normal(shape, -0.1, 0.1))")
    init_stddev: float = _field(0.1, "init=seed: the standard deviation")
    init_gain: float = _field(1.0, "init=irnn: the recurrent kernel starts as init_gain·I")
    dropout: float = _field(0.0, "arch1, elman, indrnn: in training, drop this fraction of "
                            "the units each non-recurrent layer reads")
    num_layers: int = _field(1, "elman, arch1 sum/mul, indrnn: stacked recurrent layers, "
                             "each reading the one below's output sequence")
    residual: bool = _field(False, "stacked layers: add each layer's input to its output "
                            "(from layer 2 on)")
    # 2 as in Li et al. 2018: over a window, the gradient through an active unit's
    # recurrence grows at most 2x; u starts U(0, gamma^(1/num_unrollings)).
    indrnn_gamma: float = _field(2.0, "indrnn: |u| <= gamma^(1/num_unrollings) after every "
                                 "update (2, the papers')")
    esn_radius: float = _field(0.9, "esn: the reservoir's spectral radius, max |eigenvalue| "
                               "of W_hh (below 1: it forgets its start)")
    cell: str = _field("", "keras_cell: the cell as Keras serializes it, JSON "
                       "(tf_rnn.models.keras_cell.cell_setting)")
    # Data.
    vocab: str = _field("text8", "text8: ' '+a-z | corpus: the corpus's sorted distinct "
                        "characters")
    normalize: bool = _field(False, "apply text8 normalisation to a --data corpus")
    unknown: str = _field("error", "characters outside the vocabulary: error | space")
    split: str = _field("90/5/5", "train/valid/test percent of a --data corpus "
                        "(nanoGPT's shakespeare_char: 90/10/0)")
    batch_size: int = _field(32, "parallel streams of training text")
    num_unrollings: int = _field(40, "truncated-BPTT window length")
    # Optimisation.
    optimizer: str = _field("adadelta", "adadelta | sgd | adagrad | adam")
    learning_rate: float = _field(2.5, "initial learning rate")
    decay_steps: int = _field(80000, "the rate is multiplied by decay_rate every decay_steps "
                              "(staircase)")
    decay_rate: float = _field(0.75, "1.0 disables the decay")
    schedule: str = _field("step", "learning-rate shape: step (decay_rate every decay_steps) "
                           "| linear | cooldown (to zero at the end)")
    cooldown_fraction: float = _field(0.2, "schedule=cooldown: the last fraction of the "
                                      "steps that decays to zero")
    epsilon: float = _field(1e-8, "adadelta, adagrad, adam: the optimizer's epsilon (the "
                            "seeds' 1e-8)")
    clip_norm: float = _field(1.25, "global-norm gradient clipping; 0 disables")
    clip_value: float = _field(0.0, "element-wise gradient clipping to [-v, v]; 0 disables")
    # Length and bookkeeping of the run.
    steps: int = _field(800001, "train until this step")
    budget_minutes: float = _field(0.0, "> 0: train this many minutes (or to `steps` if "
                                   "sooner); the schedule ends there")
    epochs: float = _field(0.0, "> 0: this many passes over the training split instead of "
                           "steps")
    log_every: int = _field(100, "log the training figures every N steps")
    eval_every: int = _field(1000, "validate every N steps; 0 disables")
    eval_batch_size: int = _field(32, "parallel streams used to score a split")
    eval_chars: int = _field(0, "0: score the whole split; else its first eval_chars "
                             "characters")
    sample_every: int = _field(1000, "write a sample every N steps; 0 disables")
    diag_every: int = _field(-1, "tf_rnn.inspect.diagnostics every N steps; -1: with each "
                             "validation; 0: off")
    sample_length: int = _field(100, "characters of each periodic sample")
    checkpoint_every: int = _field(1000, "save a checkpoint every N steps")
    keep_checkpoints: int = _field(3, "checkpoints kept in the work directory")
    seed: int = _field(0, "seeds the weights, the periodic samples and the dropout masks")
    jit_compile: bool = _field(True, "XLA-compile the train step (without, where XLA "
                               "cannot)")
    deterministic: bool = _field(False, "tf.config.experimental.enable_op_determinism() "
                                 "first")
    strategy: str = _field("default", "tf.distribute: default | mirrored | multiworker "
                           "(TF_CONFIG)")
    # Divergence guard.
    max_recoveries: int = _field(3, "restores of the last good checkpoint before giving up")
    recovery_lr_factor: float = _field(0.5, "learning-rate multiplier applied at each "
                                       "restore")

    def __post_init__(self):
        for name, choices in CHOICES.items():
            _check_choice(name, getattr(self, name), choices)
        for name in ("num_nodes", "num_layers", "batch_size", "num_unrollings", "steps", "decay_steps",
                     "log_every", "eval_batch_size", "sample_length", "checkpoint_every",
                     "keep_checkpoints"):
            _check(name, getattr(self, name), lambda v: v > 0, "a positive integer",
                   integer=True)
        for name in ("eval_every", "eval_chars", "sample_every", "max_recoveries", "seed"):
            _check(name, getattr(self, name), lambda v: v >= 0, "a non-negative integer",
                   integer=True)
        _check("diag_every", self.diag_every, lambda v: v >= -1, "an integer >= -1",
               integer=True)
        _check("learning_rate", self.learning_rate, lambda v: 0 < v < math.inf,
               "a positive number")
        _check("init_stddev", self.init_stddev, lambda v: v > 0, "a positive number")
        _check("indrnn_gamma", self.indrnn_gamma, lambda v: 0 < v < math.inf,
               "a positive number")
        if not isinstance(self.residual, bool):
            raise ConfigError(f"Received an invalid value for config field `residual`, "
                              f"expected true or false, got {self.residual!r}.")
        _check("init_gain", self.init_gain, lambda v: 0 < v < math.inf, "a positive number")
        _check("epsilon", self.epsilon, lambda v: v > 0, "a positive number")
        _check("esn_radius", self.esn_radius, lambda v: 0 < v < math.inf, "a positive number")
        _check("decay_rate", self.decay_rate, lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check("recovery_lr_factor", self.recovery_lr_factor, lambda v: 0 < v < 1,
               "a number in (0, 1)")
        _check("cooldown_fraction", self.cooldown_fraction, lambda v: 0 < v <= 1,
               "a number in (0, 1]")
        _check("budget_minutes", self.budget_minutes, lambda v: 0 <= v < math.inf,
               "a non-negative number")
        for name in ("clip_norm", "clip_value", "epochs"):
            _check(name, getattr(self, name), lambda v: v >= 0, "a non-negative number")
        _check("init_mean", self.init_mean, math.isfinite, "a finite number")
        _check("dropout", self.dropout, lambda v: 0 <= v < 1, "a number in [0, 1)")
        self.split_fractions  # checks `split`
        _check_applies(self)

    @property
    def split_fractions(self):
        """`split` as three fractions (train, valid, test); ConfigError unless they are
        three numbers summing to 100 with a training and a validation part."""
        parts = self.split.split("/")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if (len(numbers) != 3 or not all(0 <= n <= 100 for n in numbers) or
                abs(sum(numbers) - 100) > 1e-6 or min(numbers[:2]) <= 0):
            raise ConfigError(f"Received an invalid value for config field `split`, expected "
                              f"train/valid/test percentages summing to 100 with train and "
                              f"valid above 0 (e.g. 90/5/5 or 90/10/0), got {self.split!r}.")
        return tuple(n / 100 for n in numbers)

    def replace(self, **changes) -> "Config":
        """A copy with `changes` applied (and validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"Unknown config key(s) {unknown}; valid keys: {field_names()}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """The Config of a saved `to_dict()` (a run's config.json), validated.

        A field that its run did not read (`APPLIES_ONLY`) loads at its default whatever
        was saved: runs written before such values were refused may hold one
        (`"combine": "mul"` in an Arch 2 run), and it never shaped their weights.
        """
        values = dict(values)
        defaults = cls.__dataclass_fields__
        for name, (decider, used_by) in APPLIES_ONLY.items():
            if name in values and values.get(decider, defaults[decider].default) not in used_by:
                values[name] = defaults[name].default
        return cls().replace(**values)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))


def _check_applies(config):
    """Refuses a setting that `config` would ignore, and a (model, init) that cannot work."""
    why = REFUSED_INITS.get((config.model, config.init))
    if why:
        usable = [i for i in INITS if (config.model, i) not in REFUSED_INITS]
        raise ConfigError(
            f"Received init={config.init!r} for model={config.model!r}, which cannot use "
            f"it: {why}. Use one of {usable} with model {config.model!r}.")
    _check_stacking(config)
    _check_model_needs(config)
    defaults = Config.__dataclass_fields__
    for name, (decider, values) in APPLIES_ONLY.items():
        value, default = getattr(config, name), defaults[name].default
        if value != default and getattr(config, decider) not in values:
            names = ", ".join(map(repr, values[:-1])) + " or " * (len(values) > 1)
            only = f"{decider} {names}{values[-1]!r}"
            raise ConfigError(
                f"Received {name}={value!r} for {decider}={getattr(config, decider)!r}, "
                f"which does not use it: `{name}` applies only to {only}. Leave `{name}` "
                f"at its default {default!r}, or use {only}.")


def _check_model_needs(config):
    """Refuses a model's `needs` left unset and a general field it `ignores` set (the
    table of models)."""
    entry, defaults = model_table.MODELS[config.model], Config.__dataclass_fields__
    for name in entry.needs:
        if getattr(config, name) == defaults[name].default:
            raise ConfigError(f"Received no `{name}` for model={config.model!r}, which needs "
                              f"it: {defaults[name].metadata['help']}.")
    for name, why in entry.ignores.items():
        value, default = getattr(config, name), defaults[name].default
        if value != default:
            raise ConfigError(f"Received {name}={value!r} for model={config.model!r}, which "
                              f"does not use it: {why}. Leave `{name}` at its default "
                              f"{default!r}.")


def _check_stacking(config):
    """Refuses num_layers > 1 where the recurrence cannot stack (the table of models
    says where and why)."""
    if config.num_layers == 1:
        return
    entry, layers = model_table.MODELS[config.model], config.num_layers
    if not entry.stacks:
        stackable = [name for name, e in model_table.MODELS.items() if e.stacks]
        raise ConfigError(
            f"Received num_layers={layers!r} for model={config.model!r}, which does not "
            f"stack: {entry.unstacked}. Leave `num_layers` at its default 1, or use model "
            f"{_alternatives(stackable)}.")
    for field, refused in entry.no_stack.items():
        value = getattr(config, field)
        if value in refused:
            others = [v for v in CHOICES[field] if v not in refused]
            raise ConfigError(
                f"Received num_layers={layers!r} for model={config.model!r} with "
                f"{field}={value!r}, which does not stack: {refused[value]}. Leave "
                f"`num_layers` at its default 1, or use {field} {_alternatives(others)}.")


def _alternatives(values):
    """'a', 'b' or 'c'."""
    quoted = [repr(v) for v in values]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def _check(name, value, ok, expected, integer=False):
    bad_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
    if bad_type or not ok(value) or (isinstance(value, float) and math.isnan(value)):
        raise ConfigError(
            f"Received an invalid value for config field `{name}`, expected {expected}, "
            f"got {value!r}.")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(
            f"Received an invalid value for config field `{name}`, expected one of "
            f"{list(choices)}, got {value!r}.")


def field_names() -> list:
    return [f.name for f in dataclasses.fields(Config)]


def _parse_value(name: str, text: str, field_type):
    """Parses the text of `--set name=text` into the field's type."""
    try:
        if field_type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if field_type is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if field_type is float:
            return float(text)
        return text
    except ValueError:
        kind = {bool: "true/false", int: "an integer", float: "a number"}.get(field_type, "text")
        raise ConfigError(
            f"Received an invalid value for config field `{name}`, expected {kind}, "
            f"got {text!r}.") from None


def with_overrides(config: Config, assignments) -> Config:
    """Applies `key=value` strings (the CLI's `--set`) to `config`.

    Raises:
      ConfigError: an assignment without '=', an unknown key, or a value of the wrong
        type or range; the message names the key and the value.
    """
    hints = typing.get_type_hints(Config)
    changes = {}
    for item in assignments or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"Expected --set KEY=VALUE, got {item!r}.")
        if key not in hints:
            raise ConfigError(f"Unknown config key {key!r}; valid keys: {field_names()}.")
        changes[key] = _parse_value(key, text, hints[key])
    return config.replace(**changes)


# text8_best_10min (its comment in PRESETS), which text8_best_30min trains for 30 minutes.
_BEST_10MIN = Config(
    combine="mul", activation="tanh", num_nodes=512, num_layers=2, residual=True,
    init="glorot", optimizer="adam", learning_rate=2e-3, schedule="cooldown",
    dropout=0.5, jit_compile=True, budget_minutes=10.0)

# The Keras peers of `experiments.quality`: Keras's own cells as a user trains them, here
# through tf_rnn's loop (the generic path, `tf_rnn.models.keras_cell`): Keras's initialisers
# (Glorot kernels, orthogonal recurrent: `init=glorot`), Adam with Keras's epsilon at the
# rate that suited each, clip 1.25, batch 32, unroll 40, XLA, the budget's cooldown.
_KERAS_PEER = Config(
    model="keras_gru", num_nodes=256, init="glorot", optimizer="adam", learning_rate=2e-3,
    epsilon=1e-7, schedule="cooldown", jit_compile=True, budget_minutes=10.0)


PRESETS = {
    # S4: Arch 1 on text8 exactly as the seed ran it.
    "text8_arch1": Config(),
    # S4 tuned for quality per minute: the seed's model and shape, a Glorot/orthogonal
    # start (the seed's mean -0.1 starts with almost no recurrent relu active), Adam and
    # XLA (docs/performance.md has the measurements).
    "text8_arch1_tuned": Config(
        init="glorot", optimizer="adam", learning_rate=3e-3, jit_compile=True),
    # S4b: Arch 1 with element-wise addition, the seed author's published variant:
    # a = x·U + h·W + b, tanh, n = 50, batch 64, unroll 20, SGD 5.0·0.5^⌊step/5000⌋,
    # clip 1.25, the seed's init. (The author's step count is not given: Arch 2's.)
    "text8_arch1_sum": Config(
        combine="sum", activation="tanh", num_nodes=50, batch_size=64, num_unrollings=20,
        optimizer="sgd", learning_rate=5.0, decay_steps=5000, decay_rate=0.5, steps=50001),
    # The best single layer on a step schedule (`python -m experiments.quality`;
    # docs/quality.md): Arch 1 with multiplicative integration (S4c), tanh, n = 384,
    # Glorot/orthogonal init, Adam 2e-3 halved every 3000 steps, XLA. A simple RNN still.
    # 30 000 steps: the rate is then 2e-3/1024, and further steps gain nothing (the
    # default 800 001 is the seed's own Arch 1 count).
    "text8_best": Config(
        combine="mul", activation="tanh", num_nodes=384, init="glorot", optimizer="adam",
        learning_rate=2e-3, decay_steps=3000, decay_rate=0.5, dropout=0.4, jit_compile=True,
        steps=30000),
    # The lowest validation BPC measured for 3 minutes on both corpora (docs/quality.md,
    # "Three minutes: two layers of 384, less dropout"): text8_best_10min's model at
    # n = 384 with dropout 0.2. One layer, of 384 (text8_best) or 512, trains more
    # characters but ends 0.02-0.06 higher; in 3 minutes the two layers see each corpus
    # only 5-7 times, and dropout 0.3 or 0.4 held them back on both.
    "text8_best_3min": _BEST_10MIN.replace(num_nodes=384, dropout=0.2, budget_minutes=3.0),
    # The lowest validation BPC found for a 10-minute budget (docs/quality.md, "Ten
    # minutes" and "Wider or deeper"): text8_best's cell in two residual layers of 512,
    # dropout 0.5, trained to the budget (`budget_minutes`; `--minutes` sets another) at a
    # constant rate, then a cooldown to zero over the last 20 % of the steps. One layer
    # stops improving after ~4 minutes; two of 384 with dropout 0.4 after ~8.
    "text8_best_10min": _BEST_10MIN,
    # The lowest validation BPC measured for 30 minutes on both corpora (docs/quality.md,
    # "Thirty minutes on Tiny Shakespeare, both two-layer presets" and "... on the Jargon
    # File, against the GPT"): text8_best_10min's model over a 30-minute budget.
    # Two layers of 384 with dropout 0.4 (this preset before) overfit Tiny Shakespeare
    # within 30 minutes and end above it on both corpora.
    "text8_best_30min": _BEST_10MIN.replace(budget_minutes=30.0),
    # Two IndRNN layers of 512 units with residual connections (Li et al. 2018), Adam 2e-3
    # halved every 3000 steps, XLA: several times faster per character than Keras's
    # 2-layer SimpleRNN(512), but above text8_best's BPC per minute (docs/performance.md,
    # docs/quality.md).
    "text8_indrnn": Config(
        model="indrnn", num_nodes=512, num_layers=2, residual=True, init="glorot",
        optimizer="adam", learning_rate=2e-3, decay_steps=3000, decay_rate=0.5,
        jit_compile=True, steps=30000),
    # S5: Arch 2 with teacher forcing, as the seed ran it.
    "text8_arch2": Config(
        model="arch2", num_nodes=50, batch_size=64, num_unrollings=20,
        optimizer="sgd", learning_rate=2.5, decay_steps=5000, decay_rate=0.1,
        steps=50001),
    # S3: the char-RNN trained with Adagrad, one stream of 20-character windows.
    "charrnn_adagrad": Config(
        model="elman", num_nodes=75, batch_size=1, num_unrollings=20, init="charrnn",
        vocab="corpus", optimizer="adagrad", learning_rate=1e-2, decay_rate=1.0,
        clip_norm=0.0, clip_value=5.0, epochs=50.0, eval_batch_size=8),
    # The quality harness's Keras peers (`_KERAS_PEER`): SimpleRNN (relu) at Adam 1e-3,
    # which diverges more easily, the gated cells at 2e-3 (docs/quality.md).
    "keras_simplernn_200": _KERAS_PEER.replace(model="keras_simplernn", num_nodes=200,
                                               learning_rate=1e-3),
    "keras_simplernn_400": _KERAS_PEER.replace(model="keras_simplernn", num_nodes=400,
                                               learning_rate=1e-3),
    "keras_lstm_256": _KERAS_PEER.replace(model="keras_lstm"),
    "keras_gru_256": _KERAS_PEER,
}


# What each preset is for, one line each: `tf-rnn train --help` shows it above the
# fields the preset sets (its comment in PRESETS says why it is what it is).
PRESET_PURPOSES = {
    "text8_arch1": "Arch 1 (hidden feedback) exactly as the seed ran it",
    "text8_arch1_tuned": "the seed's Arch 1 tuned: a better start, Adam, XLA",
    "text8_arch1_sum": "Arch 1 with element-wise addition (the seed's variant)",
    "text8_best": "the best one-layer simple RNN, trained by steps",
    "text8_best_3min": "the lowest BPC for 3 minutes: two layers of 384",
    "text8_best_10min": "the lowest BPC for 10 minutes: two layers of 512",
    "text8_best_30min": "the lowest BPC for 30 minutes: text8_best_10min's model",
    "text8_indrnn": "two IndRNN layers: the fastest per character",
    "text8_arch2": "Arch 2: output feedback, teacher-forced, as the seed ran",
    "charrnn_adagrad": "the classic char-RNN with Adagrad, the corpus's alphabet",
    "keras_simplernn_200": "a peer: Keras's SimpleRNN cell (relu), 200 units",
    "keras_simplernn_400": "a peer: Keras's SimpleRNN cell (relu), 400 units",
    "keras_lstm_256": "a peer: Keras's LSTM cell, 256 units",
    "keras_gru_256": "a peer: Keras's GRU cell, 256 units",
}
PURPOSE_WIDTH = 56  # one line of `train --help` beside the preset's name (23 + 56 < 80)


def get_preset(name: str) -> Config:
    """The preset `name`; ConfigError listing the presets when it does not exist."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}; available presets: {sorted(PRESETS)}.")
    return PRESETS[name]
