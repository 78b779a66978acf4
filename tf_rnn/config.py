"""Run configuration: one frozen dataclass, validated on construction, and the presets.

A preset is a `Config` with the settings of one seed system; an experiment or a
command line overrides a few fields (`with_overrides`, `--set key=value`).
"""

import dataclasses
import json
import math
import typing

MODELS = ("arch1", "arch2", "elman")
OPTIMIZERS = ("adadelta", "sgd", "adagrad", "adam")
INITS = ("seed", "glorot", "irnn", "charrnn", "uniform")
COMBINES = ("concat", "sum", "mul")  # Arch 1: how x·U and h·W meet (tf_rnn.cells.Arch1Cell)
ACTIVATIONS = ("relu", "tanh")  # Arch 1's non-linearity
VOCABS = ("text8", "corpus")
UNKNOWN = ("error", "space")
FEEDBACKS = ("sample", "probs")
STRATEGIES = ("default", "mirrored", "multiworker")  # see tf_rnn.distribute

# Fields that fix the shape of the weights, the meaning of the ids or what a checkpoint
# holds (one cursor and state row per batch row, the optimizer's slots): a work
# directory trained with one value cannot be resumed with another.
SHAPE_FIELDS = ("model", "combine", "num_nodes", "vocab", "normalize", "batch_size",
                "optimizer")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a training run. Defaults are the Arch 1 seed settings."""

    # Model.
    model: str = "arch1"  # arch1 (hidden feedback) | arch2 (output feedback) | elman (S3)
    num_nodes: int = 100  # n: Arch 1 state is 2n wide, Arch 2 hidden 2n, Elman hidden n
    combine: str = "concat"  # Arch 1: concat(x·U, h·W) | sum x·U + h·W | mul (multiplicative)
    activation: str = "relu"  # Arch 1's non-linearity: relu (the seed's) | tanh
    feedback: str = "sample"  # Arch 2 free-running feedback: sampled one-hot | softmax probs
    init: str = "seed"  # seed: truncated normal(mean, stddev) | glorot | irnn | charrnn | uniform
    init_mean: float = -0.1  # the seed's tf.truncated_normal(shape, -0.1, 0.1): mean -0.1
    init_stddev: float = 0.1
    init_gain: float = 1.0  # irnn: the recurrent kernel starts as init_gain·I
    dropout: float = 0.0  # training only: drop this fraction of the hidden units the output
    # layer reads (the non-recurrent connection; Zaremba et al. 2014); arch1 and elman
    # Data.
    vocab: str = "text8"  # text8: ' '+a-z | corpus: sorted distinct characters of the corpus
    normalize: bool = False  # apply text8 normalisation to a --data corpus
    unknown: str = "error"  # characters outside the vocabulary: error | space
    batch_size: int = 32
    num_unrollings: int = 40  # truncated-BPTT window length
    # Optimisation.
    optimizer: str = "adadelta"
    learning_rate: float = 2.5
    decay_steps: int = 80000  # ExponentialDecay, staircase
    decay_rate: float = 0.75  # 1.0 disables the decay
    epsilon: float = 1e-8  # optimizer epsilon (TF1's Adadelta / the S3 Adagrad used 1e-8)
    clip_norm: float = 1.25  # global-norm clipping; 0 disables
    clip_value: float = 0.0  # element-wise clipping to [-v, v]; 0 disables
    # Length and bookkeeping of the run.
    steps: int = 800001
    epochs: float = 0.0  # > 0: run this many passes over the training split instead of `steps`
    log_every: int = 100
    eval_every: int = 1000  # 0 disables periodic validation
    eval_batch_size: int = 32  # parallel streams used to score a split
    eval_chars: int = 0  # 0: the whole split; else only its first eval_chars characters
    sample_every: int = 1000  # 0 disables periodic samples
    diag_every: int = -1  # tf_rnn.diagnostics every N steps; -1: with each validation; 0: off
    sample_length: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    seed: int = 0
    jit_compile: bool = True  # XLA-compile the train step (without, where XLA cannot)
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism() first
    strategy: str = "default"  # tf.distribute: default | mirrored | multiworker (TF_CONFIG)
    # Divergence guard.
    max_recoveries: int = 3  # restores from the last good checkpoint before giving up
    recovery_lr_factor: float = 0.5  # learning-rate multiplier applied at each restore

    def __post_init__(self):
        _check_choice("model", self.model, MODELS)
        _check_choice("combine", self.combine, COMBINES)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("feedback", self.feedback, FEEDBACKS)
        _check_choice("init", self.init, INITS)
        _check_choice("vocab", self.vocab, VOCABS)
        _check_choice("unknown", self.unknown, UNKNOWN)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("strategy", self.strategy, STRATEGIES)
        for name in ("num_nodes", "batch_size", "num_unrollings", "steps", "decay_steps",
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
        _check("init_gain", self.init_gain, lambda v: 0 < v < math.inf, "a positive number")
        _check("epsilon", self.epsilon, lambda v: v > 0, "a positive number")
        _check("decay_rate", self.decay_rate, lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check("recovery_lr_factor", self.recovery_lr_factor, lambda v: 0 < v < 1,
               "a number in (0, 1)")
        for name in ("clip_norm", "clip_value", "epochs"):
            _check(name, getattr(self, name), lambda v: v >= 0, "a non-negative number")
        _check("init_mean", self.init_mean, math.isfinite, "a finite number")
        _check("dropout", self.dropout, lambda v: 0 <= v < 1, "a number in [0, 1)")
        if self.dropout > 0 and self.model == "arch2":
            raise ValueError(
                "Received dropout > 0 for model 'arch2': its teacher-forced window has no "
                "recurrent hidden layer to drop from; dropout is for arch1 and elman.")

    def replace(self, **changes) -> "Config":
        """A copy with `changes` applied (and validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown config key(s) {unknown}; valid keys: {field_names()}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        return cls().replace(**values)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))


def _check(name, value, ok, expected, integer=False):
    bad_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
    if bad_type or not ok(value) or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(
            f"Received an invalid value for config field `{name}`, expected {expected}, "
            f"got {value!r}.")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
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
        raise ValueError(
            f"Received an invalid value for config field `{name}`, expected {kind}, "
            f"got {text!r}.") from None


def with_overrides(config: Config, assignments) -> Config:
    """Applies `key=value` strings (the CLI's `--set`) to `config`.

    Raises:
      ValueError: an assignment without '=', an unknown key, or a value of the wrong
        type or range; the message names the key and the value.
    """
    hints = typing.get_type_hints(Config)
    changes = {}
    for item in assignments or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"Expected --set KEY=VALUE, got {item!r}.")
        if key not in hints:
            raise ValueError(f"Unknown config key {key!r}; valid keys: {field_names()}.")
        changes[key] = _parse_value(key, text, hints[key])
    return config.replace(**changes)


PRESETS = {
    # S4: Arch 1 on text8 exactly as the seed ran it.
    "text8_arch1": Config(),
    # S4 tuned for quality per minute (`benchmark --quality`): the seed's model and shape,
    # a Glorot/orthogonal start (the seed's mean -0.1 starts with ~0% of the recurrent
    # relus active), Adam (best of 2e-3..1e-2 here) and XLA: valid BPC 2.69 vs 3.35
    # after 2 minutes on tinyshakespeare_text8.
    "text8_arch1_tuned": Config(
        init="glorot", optimizer="adam", learning_rate=3e-3, jit_compile=True),
    # S4b: Arch 1 with element-wise addition, the seed author's published variant:
    # a = x·U + h·W + b, tanh, n = 50, batch 64, unroll 20, SGD 5.0·0.5^⌊step/5000⌋,
    # clip 1.25, the seed's init. (The author's step count is not given: Arch 2's.)
    "text8_arch1_sum": Config(
        combine="sum", activation="tanh", num_nodes=50, batch_size=64, num_unrollings=20,
        optimizer="sgd", learning_rate=5.0, decay_steps=5000, decay_rate=0.5, steps=50001),
    # The lowest validation BPC per CPU-minute found here (`python -m experiments.quality`;
    # README, Performance): Arch 1 with multiplicative integration (S4c), tanh, n = 384,
    # Glorot/orthogonal init, Adam 2e-3 halved every 3000 steps, XLA. A simple RNN still.
    "text8_best": Config(
        combine="mul", activation="tanh", num_nodes=384, init="glorot", optimizer="adam",
        learning_rate=2e-3, decay_steps=3000, decay_rate=0.5, dropout=0.4, jit_compile=True),
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
}


def get_preset(name: str) -> Config:
    """The preset `name`; ValueError listing the presets when it does not exist."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; available presets: {sorted(PRESETS)}.")
    return PRESETS[name]
