"""The compiled sampler: reproducible, greedy, top-k, primes, many streams."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_rnn import models
from tf_rnn.base import config, draws, errors
from tf_rnn.data import vocab as vocab_lib
from tf_rnn.engine import sampling

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
    assert len(set(texts)) == 8


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


# Each option of `sample` against the model run by hand (issue 36, item 10) ------------
#
# `sharp` is an Elman model whose weights are scaled up from a seeded glorot draw: its
# state remembers the prime's every character (each of PRIME_VARIANTS moves the
# next-character distribution by a total variation of 0.5 or more) and its distributions
# are far from uniform (entropy ~2 nats), so an option that is ignored moves the sampled
# frequencies by many standard deviations.

PRIME = "the cat"
# PRIME with one character changed, at each position but the last.
PRIME_VARIANTS = ["bhe cat", "twe cat", "thu cat", "theicat", "the pat", "the cit"]


@pytest.fixture(scope="module")
def sharp():
    keras.utils.set_random_seed(1)
    model = models.build_model(config.Config(model="elman", num_nodes=16, init="glorot"),
                               VOCAB.size)
    cell = model.cell
    for weight, factor in ((cell.W_xh, 2.0), (cell.W_hh, 2.0), (cell.W_hy, 4.0)):
        weight.assign(weight * factor)
    return model


@pytest.fixture(scope="module")
def sharp_generator(sharp):
    return sampling.make_generator(sharp.step)


def by_hand(model, prime, batch=1):
    """(logits (batch, A), state) after `model.step` has read `prime`'s every character,
    one at a time from the zero state: the distribution of the first sampled character."""
    state = model.zero_state(batch)
    for c in VOCAB.encode(prime):
        logits, state = model.step(tf.fill([batch], int(c)), state)
    return logits.numpy().astype(np.float64), state


def probabilities(logits, temperature=1.0, top_k=0):
    """softmax(logits / T) over the k most likely characters (all with k = 0), (..., A)."""
    logits = np.asarray(logits, np.float64)
    if top_k:
        kth = np.sort(logits, axis=-1)[..., -top_k][..., None]
        logits = np.where(logits < kth, -np.inf, logits)
    z = (logits - logits.max(axis=-1, keepdims=True)) / temperature
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def first_characters(model, generator, prime, n, temperature=1.0, top_k=0, seed=0):
    """The frequencies (A,) of the first character after `prime` over `n` streams."""
    texts = sampling.sample(model, VOCAB, prime, 1, temperature=temperature, top_k=top_k,
                            seed=seed, num_streams=n, generator=generator)
    ids = VOCAB.encode("".join(t[len(prime)] for t in texts))
    return np.bincount(ids, minlength=VOCAB.size) / n


def assert_frequencies(freq, p, n, what):
    """Each character's frequency over n draws within 5 standard deviations of p (+0.005:
    a character of probability ~0 is drawn ~0 times)."""
    tolerance = 5 * np.sqrt(p * (1 - p) / n) + 0.005
    off = np.abs(freq - p) > tolerance
    assert not off.any(), (f"{what}: frequencies {np.round(freq[off], 3)} of characters "
                           f"{VOCAB.decode(np.flatnonzero(off))!r} are not p = "
                           f"{np.round(p[off], 3)} (tolerance "
                           f"{np.round(tolerance[off], 3)})")


def total_variation(p, q):
    return 0.5 * np.abs(p - q).sum(axis=-1)


def test_sharp_premises(sharp):
    """What the tests below rely on: every character of PRIME moves the distribution of
    the next one (so does reading PRIME whole rather than its last character), and
    temperature and top-k move it by far more than the frequency tolerance."""
    p = probabilities(by_hand(sharp, PRIME)[0][0])
    assert total_variation(p, probabilities(by_hand(sharp, PRIME[-1])[0][0])) > 0.4
    assert total_variation(p, probabilities(by_hand(sharp, PRIME[1:])[0][0])) > 0.4
    for i, variant in enumerate(PRIME_VARIANTS):
        assert variant[:i] == PRIME[:i] and variant[i + 1:] == PRIME[i + 1:] != variant[i]
        assert total_variation(p, probabilities(by_hand(sharp, variant)[0][0])) > 0.4, i
    logits = by_hand(sharp, PRIME)[0][0]
    for a, b in ((0.5, 1.0), (1.0, 2.0)):
        assert total_variation(probabilities(logits, a), probabilities(logits, b)) > 0.25
    assert probabilities(logits)[np.argsort(logits)[:-3]].sum() > 0.2  # outside the top 3


@pytest.mark.parametrize("prime", [PRIME, *PRIME_VARIANTS])
def test_the_prime_is_read_whole(sharp, sharp_generator, prime):
    """The first sampled character is drawn from the distribution the model gives after
    reading the prime's every character: primes that end alike but differ earlier (by
    one character, at any position) give frequencies of their own distribution, over
    2000 streams (the premise: `test_sharp_premises`)."""
    n = 2000
    freq = first_characters(sharp, sharp_generator, prime, n, seed=3)
    assert_frequencies(freq, probabilities(by_hand(sharp, prime)[0][0]), n,
                       f"after {prime!r}")


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_divides_the_logits(sharp, sharp_generator, temperature):
    """Over 4000 streams the first character has the frequencies softmax(logits / T)
    (T = 0.5, 1 and 2 are > 0.25 apart in total variation: `test_sharp_premises`)."""
    n = 4000
    freq = first_characters(sharp, sharp_generator, PRIME, n, temperature, seed=4)
    logits = by_hand(sharp, PRIME)[0][0]
    assert_frequencies(freq, probabilities(logits, temperature), n, f"T={temperature}")


def test_temperature_zero_is_the_argmax_in_every_stream(sharp, sharp_generator):
    texts = sampling.sample(sharp, VOCAB, PRIME, 1, temperature=0, seed=4, num_streams=64,
                            generator=sharp_generator)
    best = VOCAB.decode([int(np.argmax(by_hand(sharp, PRIME)[0][0]))])
    assert texts == [PRIME + best] * 64


def test_top_k_draws_from_the_k_most_likely_renormalised(sharp, sharp_generator):
    """With top_k=3 the first character has the frequencies of softmax over the 3 most
    likely characters (the others, > 0.2 of the mass without top-k, never drawn)."""
    n = 4000
    logits = by_hand(sharp, PRIME)[0][0]
    freq = first_characters(sharp, sharp_generator, PRIME, n, top_k=3, seed=5)
    assert_frequencies(freq, probabilities(logits, top_k=3), n, "top_k=3")
    assert freq[np.argsort(logits)[:-3]].sum() == 0
    premise = first_characters(sharp, sharp_generator, PRIME, n, seed=5)
    assert premise[np.argsort(logits)[:-3]].sum() > 0.15


def generated_ranks(model, texts, prime):
    """For each stream and generated character, its rank among the model's logits at that
    step (0: the most likely), the model run by hand along the stream's own text."""
    ids = np.stack([VOCAB.encode(t) for t in texts])  # (B, P + length)
    logits, state = by_hand(model, prime, len(texts))
    ranks = []
    for t in range(len(prime), ids.shape[1]):
        drawn = logits[np.arange(len(texts)), ids[:, t]][:, None]
        ranks.append(np.sum(logits > drawn + 1e-4, axis=-1))  # ties: the better rank
        logits, state = model.step(tf.constant(ids[:, t]), state)
        logits = logits.numpy().astype(np.float64)
    return np.stack(ranks, axis=1)  # (B, length)


def test_top_k_never_leaves_the_k_most_likely_along_the_text(sharp, sharp_generator):
    """256 streams of 20 characters at T=2: with top_k=3 every character is one of the 3
    most likely at its step; without top-k, many are not (the premise); top_k=1 is greedy
    whatever the temperature."""
    kwargs = dict(temperature=2.0, seed=6, num_streams=256, generator=sharp_generator)
    top3 = sampling.sample(sharp, VOCAB, PRIME, 20, top_k=3, **kwargs)
    assert generated_ranks(sharp, top3, PRIME).max() < 3
    free = sampling.sample(sharp, VOCAB, PRIME, 20, **kwargs)
    assert np.mean(generated_ranks(sharp, free, PRIME) >= 3) > 0.3
    top1 = sampling.sample(sharp, VOCAB, PRIME, 20, top_k=1, **kwargs)
    assert generated_ranks(sharp, top1, PRIME).max() == 0
    assert len(set(top1)) == 1


@pytest.mark.parametrize("prime, temperature, top_k, seed, streams", [
    (PRIME, 1.0, 0, 5, 3), (PRIME_VARIANTS[0], 1.0, 0, 5, 3), (PRIME, 0.5, 4, 11, 5),
    (PRIME, 2.0, 0, 12345, 2), ("q", 1.5, 2, 7, 1), (PRIME_VARIANTS[3], 0.0, 0, 8, 2)])
def test_each_character_is_the_inverse_cdf_draw_of_the_model_run_by_hand(
        sharp, sharp_generator, prime, temperature, top_k, seed, streams):
    """Step t of stream b draws u = draws.uniform((seed, t))[b] (`sampling.choose`: one
    uniform number per stream, from the seed and the position) and picks the character
    whose interval of the cumulative softmax(top-k logits / T) holds u. Run by hand: the
    model reads the whole prime one step at a time, then each stream's own text; every
    option of `sample` (the prime, T, top-k, the seed, the stream's row) enters."""
    length = 25
    texts = sampling.sample(sharp, VOCAB, prime, length, temperature=temperature,
                            top_k=top_k, seed=seed, num_streams=streams,
                            generator=sharp_generator)
    assert len(texts) == streams and all(t.startswith(prime) for t in texts)
    ids = np.stack([VOCAB.encode(t) for t in texts])
    assert ids.shape == (streams, len(prime) + length)
    logits, state = by_hand(sharp, prime, streams)
    for t in range(length):
        drawn = ids[:, len(prime) + t]
        if temperature <= 0:
            np.testing.assert_array_equal(drawn, np.argmax(logits, axis=-1), f"step {t}")
        else:
            cdf = np.cumsum(probabilities(logits, temperature, top_k), axis=-1)
            low = np.where(drawn > 0, cdf[np.arange(streams), drawn - 1], 0.0)
            high = cdf[np.arange(streams), drawn]
            u = draws.uniform(tf.constant([seed, t]), [streams]).numpy()
            inside = (low - 1e-5 <= u) & (u < high + 1e-5)
            assert inside.all(), (f"step {t}: u={u} outside the drawn characters' "
                                  f"intervals [{low}, {high})")
        logits, state = sharp.step(tf.constant(drawn), state)
        logits = logits.numpy().astype(np.float64)


def test_the_seed_fixes_the_text_of_every_stream(sharp, sharp_generator):
    """The same seed, the same texts; another seed, another text in every stream; no
    seed, a fresh one each call; an empty prime's random first characters too."""
    kwargs = dict(length=30, num_streams=4, generator=sharp_generator)
    a = sampling.sample(sharp, VOCAB, PRIME, seed=21, **kwargs)
    assert a == sampling.sample(sharp, VOCAB, PRIME, seed=21, **kwargs)
    b = sampling.sample(sharp, VOCAB, PRIME, seed=22, **kwargs)
    assert all(x != y for x, y in zip(a, b))  # each stream, not only some
    # No seed: a fresh one each call.
    assert sampling.sample(sharp, VOCAB, PRIME, **kwargs) != \
        sampling.sample(sharp, VOCAB, PRIME, **kwargs)
    # An empty prime's first (random) characters come from the seed too.
    starts = lambda seed: [t[0] for t in sampling.sample(  # noqa: E731
        sharp, VOCAB, "", 1, seed=seed, num_streams=64, generator=sharp_generator)]
    assert starts(21) == starts(21) != starts(22)


def test_streams_are_as_many_as_asked_and_each_its_own(sharp, sharp_generator):
    """num_streams texts, pairwise different; stream b draws with its own row index
    (`sampling._batch_bucket`: rows are independent), so the first streams of a run are
    those of a run with fewer streams and the same seed."""
    kwargs = dict(length=30, seed=9, generator=sharp_generator)
    eight = sampling.sample(sharp, VOCAB, PRIME, num_streams=8, **kwargs)
    assert len(eight) == 8 and len(set(eight)) == 8
    assert all(t.startswith(PRIME) and len(t) == len(PRIME) + 30 for t in eight)
    assert sampling.sample(sharp, VOCAB, PRIME, num_streams=3, **kwargs) == eight[:3]
    assert sampling.sample(sharp, VOCAB, PRIME, num_streams=1, **kwargs) == eight[:1]
