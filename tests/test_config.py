"""Config: presets reproduce the seeds, validation names the field, --set parsing."""

import pytest

from tf_rnn import config


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
    with pytest.raises(ValueError, match="text8_arch1"):
        config.get_preset("text9")


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
