"""Config: presets reproduce the seeds, validation names the field, --set parsing."""

import types

import pytest

from tf_rnn.base import config, model_table


def test_text8_presets_are_the_seed_settings():
    a1 = config.get_preset("text8_arch1")
    assert (a1.model, a1.batch_size, a1.num_nodes, a1.num_unrollings) == ("arch1", 32, 100, 40)
    assert (a1.init, a1.init_mean, a1.init_stddev) == ("seed", -0.1, 0.1)
    assert (a1.optimizer, a1.learning_rate, a1.decay_steps, a1.decay_rate) == \
        ("adadelta", 2.5, 80000, 0.75)
    assert (a1.clip_norm, a1.steps) == (1.25, 800001)
    a2 = config.get_preset("text8_arch2")
    assert (a2.model, a2.batch_size, a2.num_nodes, a2.num_unrollings) == ("arch2", 64, 50, 20)
    assert (a2.optimizer, a2.learning_rate, a2.decay_steps, a2.decay_rate) == \
        ("sgd", 2.5, 5000, 0.1)
    assert (a2.clip_norm, a2.steps, a2.init_mean) == (1.25, 50001, -0.1)
    s3 = config.get_preset("charrnn_adagrad")
    assert (s3.model, s3.num_nodes, s3.num_unrollings, s3.init) == ("elman", 75, 20, "charrnn")
    assert (s3.optimizer, s3.learning_rate, s3.epsilon, s3.clip_value, s3.clip_norm) == \
        ("adagrad", 1e-2, 1e-8, 5.0, 0.0)
    assert s3.vocab == "corpus" and s3.epochs == 50


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="Unknown preset 'text9'; available presets: ") as e:
        config.get_preset("text9")
    assert str(e.value).endswith(f"{sorted(config.PRESETS)}.")
    assert str(e.value) == (  # as docs/troubleshooting.md's error table quotes it
        "Unknown preset 'text9'; available presets: ['charrnn_adagrad', 'keras_gru_256', "
        "'keras_lstm_256', 'keras_simplernn_200', 'keras_simplernn_400', 'text8_arch1', "
        "'text8_arch1_sum', 'text8_arch1_tuned', 'text8_arch2', 'text8_best', "
        "'text8_best_10min', 'text8_best_30min', 'text8_best_3min', 'text8_indrnn'].")


@pytest.mark.parametrize("field,value,match", [
    ("batch_size", 0, "batch_size"), ("num_nodes", -3, "num_nodes"),
    ("learning_rate", -0.1, "learning_rate"), ("learning_rate", float("nan"), "learning_rate"),
    ("model", "lstm", "model"), ("decay_rate", 1.5, "decay_rate"),
    ("num_unrollings", 2.5, "num_unrollings"), ("clip_norm", -1.0, "clip_norm"),
])
def test_invalid_values_name_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        config.Config().replace(**{field: value})


def test_with_overrides_parses_types():
    c = config.with_overrides(config.Config(), [
        "batch_size=64", "learning_rate=0.5", "jit_compile=true", "optimizer=adam",
        "steps=1e3"])
    assert (c.batch_size, c.learning_rate, c.jit_compile, c.optimizer, c.steps) == \
        (64, 0.5, True, "adam", 1000)


@pytest.mark.parametrize("item,match", [
    ("batchsize=3", "Unknown config key 'batchsize'"), ("batch_size", "KEY=VALUE"),
    ("batch_size=abc", "expected an integer"), ("batch_size=0", "positive integer"),
    ("jit_compile=maybe", "true/false"), ("learning_rate=-1", "positive number"),
])
def test_with_overrides_rejects_bad_input(item, match):
    with pytest.raises(ValueError, match=match):
        config.with_overrides(config.Config(), [item])


def test_json_round_trip():
    c = config.get_preset("text8_arch2").replace(seed=5)
    assert config.Config.from_json(c.to_json()) == c


# Settings that do not apply are refused (issue 18, item 3). --------------------------

# Every model, and each of Arch 1's combinations (their recurrent kernels differ in shape).
# A Keras cell as the config field `cell` holds it (tf_rnn.models.keras_cell.cell_setting).
GRU_CELL = '{"class_name": "GRUCell", "config": {"units": 4}, "module": "keras.layers"}'
# What a model needs set beside it (keras_cell: its cell).
MODEL_NEEDS = {"keras_cell": {"cell": GRU_CELL}}
MODEL_VARIANTS = {"arch1": {}, "arch1_sum": {"combine": "sum"},
                  "arch1_mul": {"combine": "mul"}, "arch2": {"model": "arch2"},
                  "elman": {"model": "elman"}, "indrnn": {"model": "indrnn"},
                  "indrnn_2": {"model": "indrnn", "num_layers": 2},
                  "keras_simplernn": {"model": "keras_simplernn"},
                  "keras_gru": {"model": "keras_gru"}, "keras_lstm": {"model": "keras_lstm"},
                  "keras_cell": {"model": "keras_cell", "cell": GRU_CELL},
                  "esn": {"model": "esn"}}
# A valid value other than the default, for each field some settings ignore.
OTHER_VALUE = {"combine": "mul", "activation": "tanh", "feedback": "probs", "dropout": 0.2,
               "init_mean": 0.0, "init_stddev": 0.2, "init_gain": 0.5, "epsilon": 1e-7,
               "num_layers": 2, "residual": True, "indrnn_gamma": 1.5,
               "cooldown_fraction": 0.5, "esn_radius": 0.5,
               "cell": '{"class_name": "LSTMCell", "config": {"units": 3}, '
                       '"module": "keras.layers"}'}
# What a field's other value needs beside it where it applies (Arch 1 stacks sum or mul).
NEEDS = {("num_layers", "arch1"): {"combine": "sum"}}


def test_other_value_covers_every_conditional_field():
    assert set(OTHER_VALUE) == set(config.APPLIES_ONLY)
    for name, value in OTHER_VALUE.items():
        assert value != config.Config.__dataclass_fields__[name].default, name


@pytest.mark.parametrize("name", sorted(config.APPLIES_ONLY))
def test_a_field_is_refused_where_it_does_not_apply(name):
    decider, used_by = config.APPLIES_ONLY[name]
    choices = {"model": config.MODELS, "init": config.INITS,
               "optimizer": config.OPTIMIZERS, "schedule": config.SCHEDULES}[decider]
    others = [v for v in choices if v not in used_by]
    assert others, name  # a field some settings ignore
    for value in used_by:  # where it applies, any valid value is taken
        settings = {**MODEL_NEEDS.get(value, {}), decider: value, name: OTHER_VALUE[name],
                    **NEEDS.get((name, value), {})}
        assert getattr(config.Config(**settings), name) == OTHER_VALUE[name]
    for value in others:
        base = {decider: value, **MODEL_NEEDS.get(value, {})}
        config.Config(**base)  # the setting alone is fine...
        with pytest.raises(ValueError) as raised:  # ...with the field it ignores, not
            config.Config(**base, **{name: OTHER_VALUE[name]})
        message = str(raised.value)
        # Names the field and its value, the setting, and what to do instead.
        assert f"{name}={OTHER_VALUE[name]!r}" in message and f"{decider}={value!r}" in message
        assert f"at its default {config.Config.__dataclass_fields__[name].default!r}" in message
        assert f"{decider} {used_by[0]!r}" in message


def test_the_issue_commands_are_refused_with_the_keras_style_message():
    arch2 = config.get_preset("text8_arch2")
    with pytest.raises(ValueError, match=r"Received combine='mul' for model='arch2', which "
                       r"does not use it: `combine` applies only to model 'arch1'\. Leave "
                       r"`combine` at its default 'concat', or use model 'arch1'\."):
        config.with_overrides(arch2, ["combine=mul"])
    with pytest.raises(ValueError, match="Received activation='tanh' for model='arch2'"):
        config.with_overrides(arch2, ["activation=tanh"])
    with pytest.raises(ValueError) as e:  # as docs/troubleshooting.md's error table quotes it
        config.with_overrides(arch2, ["init=irnn"])
    assert str(e.value) == (
        "Received init='irnn' for model='arch2', which cannot use it: Arch 2's fed-back "
        "kernel W maps the previous output (one unit per character) to the hidden units: "
        "it is no recurrent square matrix to start at the identity. Use one of ['seed', "
        "'glorot', 'charrnn', 'uniform'] with model 'arch2'.")
    # Arch 2's dropout refusal is the same rule.
    with pytest.raises(ValueError, match="Received dropout=0.2 for model='arch2'"):
        config.with_overrides(arch2, ["dropout=0.2"])


def test_every_preset_validates_and_applies_all_it_sets():
    for name, preset in config.PRESETS.items():
        assert config.Config(**preset.to_dict()) == preset, name
        assert config.Config.from_json(preset.to_json()) == preset, name


def test_a_saved_config_with_defaults_or_an_ignored_value_still_loads():
    # A config.json holds every field, the ignored ones at their defaults...
    saved = config.get_preset("text8_arch2").to_dict()
    assert config.Config.from_dict(saved) == config.get_preset("text8_arch2")
    # ...or, written before such values were refused, a value the run never read.
    older = dict(saved, combine="mul", activation="tanh", init_mean=0.3, epsilon=1e-3)
    assert config.Config.from_dict(older) == \
        config.get_preset("text8_arch2").replace(init_mean=0.3)  # init=seed reads init_mean
    older = dict(config.get_preset("text8_arch1_tuned").to_dict(), init_gain=2.0,
                 init_stddev=0.5, feedback="probs")
    assert config.Config.from_dict(older) == config.get_preset("text8_arch1_tuned")
    # What the model does read is still validated.
    with pytest.raises(ValueError, match="`num_nodes`"):
        config.Config.from_dict(dict(saved, num_nodes=0))


def _model_fingerprint(cfg, alphabet=5):
    """What a model built from `cfg` does: its initial weights, its training-mode outputs
    over a window (dropout masks included) and three steps of generation."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_rnn import models
    from tf_rnn.engine import steps

    class _FirstStep:  # what dropout_kwargs reads of an optimizer
        iterations = tf.constant(0)

    keras.utils.set_random_seed(0)
    model = models.build_model(cfg, alphabet)
    ids = tf.constant(np.random.default_rng(0).integers(0, alphabet, (2, 6)))
    state = model.zero_state(2)
    outputs, _ = model(ids, state, **steps.dropout_kwargs(model, _FirstStep(), cfg.seed))
    found = [v.numpy() for v in model.weights] + [outputs.numpy()]
    for t in range(3):
        logits, state = model.step(ids[:, t], state)
        found.append(logits.numpy())
    return found


def _same_model(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and (x == y).all()
                                    for x, y in zip(a, b))


@pytest.mark.parametrize("init", config.INITS)
@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_every_model_field_a_model_ignores_is_refused(variant, init):
    """Change one model field: either the model built does something else, or Config
    refuses the change (a model that raises on it counts as ignoring it unannounced)."""
    try:
        base = config.Config(num_nodes=8, init=init, **MODEL_VARIANTS[variant])
    except ValueError:
        return  # a refused pair: the next test checks that refusal
    reference = _model_fingerprint(base)
    ignored = []
    for name in ("combine", "activation", "feedback", "dropout", "init_mean", "init_stddev",
                 "init_gain"):
        value = OTHER_VALUE[name]
        if value == getattr(base, name):  # arch1_mul: change to the sum instead
            value = "sum"
        try:
            changed = base.replace(**{name: value})
        except ValueError:
            continue  # refused up front
        try:
            if _same_model(reference, _model_fingerprint(changed)):
                ignored.append(name)
        except ValueError as e:
            ignored.append(f"{name} (the model refuses it: {e})")
    assert ignored == [], f"{variant} with init={init!r} ignores {ignored}, yet Config " \
        f"accepts them"


def _one_train_step(settings):
    """Builds the model of `settings` (bypassing Config's checks) and trains one step.

    Returns:
      None when the step ran, with a finite loss and moved weights; else what failed.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_rnn import models
    from tf_rnn.engine import steps

    cfg = types.SimpleNamespace(**{**config.Config().to_dict(), **settings})
    keras.utils.set_random_seed(0)
    try:
        model = models.build_model(cfg, 5)
        train_step = steps.make_train_step(model, steps.make_optimizer(cfg), cfg.clip_norm)
        before = [v.numpy() for v in model.trainable_variables]
        ids = tf.constant(np.random.default_rng(0).integers(0, 5, (2, 5)))
        metrics, _ = train_step(ids[:, :-1], ids[:, 1:], model.zero_state(2))
    except Exception as e:  # noqa: BLE001 -- any failure counts
        return f"{type(e).__name__}: {e}"
    if not (bool(metrics["finite"]) and np.isfinite(float(metrics["loss"]))):
        return f"non-finite loss {float(metrics['loss'])}"
    if all(np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables)):
        return "no weight moved"
    return None


# Pairs refused because the init would be silently ignored, not because they fail.
# (model, init): what the refusal says.
INITS_WITHOUT_EFFECT = {("indrnn", "irnn"): "there is no recurrent matrix",
                        ("keras_cell", "irnn"): "there is no recurrent matrix",
                        ("esn", "irnn"): "whatever the gain"}


@pytest.mark.slow  # 24 traced train steps, ~1.5 s each
@pytest.mark.parametrize("variant", MODEL_VARIANTS)
@pytest.mark.parametrize("init", config.INITS)
def test_every_model_and_init_trains_or_is_refused_up_front(variant, init):
    """Each pair builds and takes one train step, or Config refuses it, and only then."""
    model_name = MODEL_VARIANTS[variant].get("model", "arch1")
    # alphabet 5 < num_nodes 8: the kernels from the characters are flatter than the
    # recurrent one (RecurrentIdentity needs rows >= cols).
    settings = dict(MODEL_VARIANTS[variant], init=init, num_nodes=8, batch_size=2,
                    num_unrollings=4, optimizer="adam", learning_rate=0.01)
    for field in model_table.MODELS[model_name].ignores:  # keras_cell: the cell's width
        del settings[field]
    failure = _one_train_step(settings)
    try:
        config.Config(**settings)
    except ValueError as e:
        assert f"Received init={init!r} for model={model_name!r}, which cannot use it" \
            in str(e)
        if (model_name, init) in INITS_WITHOUT_EFFECT:
            # It would train, but the init has nothing to act on: refused as a setting
            # that does not apply, like the fields of config.APPLIES_ONLY.
            assert failure is None and INITS_WITHOUT_EFFECT[model_name, init] in str(e), \
                failure
        else:
            assert failure is not None, "refused, yet the pair trains"
        return
    assert failure is None, f"model {model_name!r} with init={init!r} is accepted by " \
        f"Config but does not train: {failure}"
