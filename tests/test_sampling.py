"""The compiled sampler: reproducible, greedy, top-k, primes, many streams."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import config, models, sampling
from tf_rnn import errors
from tf_rnn import vocab as vocab_lib

VOCAB = vocab_lib.Vocabulary.text8()


@pytest.fixture(scope="module", params=["arch1", "arch2"])
def model(request):
    keras.utils.set_random_seed(1)
    return models.build_model(config.Config(model=request.param, num_nodes=16,
                                            init="glorot"), VOCAB.size)


@pytest.fixture(scope="module")
def generator(model):
    return sampling.make_generator(model.step)


def test_same_seed_same_text_other_seed_other_text(model, generator):
    a = sampling.sample(model, VOCAB, "the ", 60, seed=5, generator=generator)
    b = sampling.sample(model, VOCAB, "the ", 60, seed=5, generator=generator)
    c = sampling.sample(model, VOCAB, "the ", 60, seed=6, generator=generator)
    assert a == b and a != c
    assert a[0].startswith("the ") and len(a[0]) == 64


def test_greedy_follows_the_argmax_of_the_model(model, generator):
    text = sampling.sample(model, VOCAB, "a", 12, temperature=0, generator=generator)[0]
    ids = VOCAB.encode(text)
    state = model.zero_state(1)
    for t in range(len(ids) - 1):
        logits, state = model.step(tf.constant(ids[t:t + 1]), state)
        assert int(tf.argmax(logits[0])) == ids[t + 1]


def test_top_k_one_is_greedy(model, generator):
    greedy = sampling.sample(model, VOCAB, "ab", 30, temperature=0, generator=generator)
    top1 = sampling.sample(model, VOCAB, "ab", 30, temperature=1.5, top_k=1, seed=3,
                           generator=generator)
    assert greedy == top1


def test_top_k_restricts_choices():
    logits = tf.constant([[5.0, 4.0, -1.0, -2.0, -3.0]] * 2000)
    ids = sampling.choose(logits, 10.0, 2, tf.constant([1, 2]))
    assert set(np.unique(ids.numpy())) == {0, 1}


def test_temperature_sharpens_or_flattens_the_distribution():
    logits = tf.constant([[2.0, 1.0, 0.0, -1.0]] * 4000)
    seed = tf.constant([4, 5])
    cold = np.bincount(sampling.choose(logits, 0.1, 0, seed).numpy(), minlength=4) / 4000
    warm = np.bincount(sampling.choose(logits, 1.0, 0, seed).numpy(), minlength=4) / 4000
    hot = np.bincount(sampling.choose(logits, 10.0, 0, seed).numpy(), minlength=4) / 4000
    assert cold[0] > 0.99
    np.testing.assert_allclose(warm, tf.nn.softmax(logits[0]).numpy(), atol=0.03)
    assert hot[3] > 0.18 and hot[0] < 0.32


def test_many_streams_differ_and_share_the_prime(model, generator):
    texts = sampling.sample(model, VOCAB, "q", 40, seed=2, num_streams=8, generator=generator)
    assert len(texts) == 8 and all(t.startswith("q") and len(t) == 41 for t in texts)


def test_streams_are_independent_draws_from_the_model(model, generator):
    """Independence: from one prime, each stream draws its own next character from the
    model's distribution p. Over 4000 streams the first characters then have frequencies
    p, and two streams agree as often as two independent draws do, sum(p^2); streams that
    shared (or correlated) their random numbers would agree far more often."""
    n = 4000
    texts = sampling.sample(model, VOCAB, "q", 1, seed=2, num_streams=n, generator=generator)
    ids = VOCAB.encode("".join(t[1] for t in texts))
    logits, _ = model.step(tf.constant(VOCAB.encode("q")), model.zero_state(1))
    p = tf.nn.softmax(logits[0]).numpy()
    np.testing.assert_allclose(np.bincount(ids, minlength=VOCAB.size) / n, p, atol=0.035)
    agree = np.mean(ids[0::2] == ids[1::2])
    assert agree == pytest.approx(np.sum(p ** 2), abs=0.03)


def test_prime_with_unknown_character_is_rejected(model):
    with pytest.raises(errors.DataError):
        sampling.sample(model, VOCAB, "Hello!", 5)
