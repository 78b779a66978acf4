"""Counter-based random numbers that are the same with and without XLA.

`tf.random.stateless_uniform`'s Philox gives other numbers under XLA than without (with a
seed that is not a constant), whatever `alg` is named. Where two compiled forms of one
computation must draw the same numbers (the sampler and its export; a train step with
and without XLA, or resumed under the other), the draws are an integer hash of the seed
and the element's index: integer ops are exact everywhere.
"""

import tensorflow as tf

_HASH = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x7FEB352D, 0x846CA68B)  # odd 32-bit mixers


def uniform(seed, shape):
    """float32 numbers in [0, 1) of `shape`, from `seed` (2,) ints and each element's
    flat index: the "lowbias32" integer hash, 24 bits of it."""
    u32 = lambda v: tf.constant(v, tf.uint32)  # noqa: E731
    s = tf.cast(tf.cast(seed, tf.int32), tf.uint32)
    index = tf.cast(tf.range(tf.reduce_prod(shape)), tf.uint32)
    x = s[0] * u32(_HASH[0]) + s[1] * u32(_HASH[1]) + index * u32(_HASH[2])
    for multiplier in _HASH[3:]:
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, u32(16))) * u32(multiplier)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, u32(16)))
    draws = tf.cast(tf.bitwise.right_shift(x, u32(8)), tf.float32) * (1.0 / (1 << 24))
    return tf.reshape(draws, shape)
