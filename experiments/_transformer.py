"""A small character transformer, the quality comparison's strongest non-recurrent peer.

nanoGPT's "baby GPT" for Shakespeare-char on a CPU (its README's CPU recipe): 4
pre-LayerNorm blocks of causal self-attention (4 heads) and a GELU MLP (4x), width 128,
learned position embeddings over a context of 64, no biases (nanoGPT's `bias=False`),
the output head tied to the token embedding (as nanoGPT's), dropout 0. Trained with
AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on the matrices of the Dense layers
only: not on LayerNorm scales, biases or the embeddings), global-norm clip 1.0, a
linear warm-up of 100 steps, then a cosine decay to 1e-4 at the end of the time
budget (over the fraction of it spent: `tf_rnn.train.budget`). Batches are 12 slices of 65 characters at
random offsets of the training text (nanoGPT's `get_batch`), from a seeded NumPy RNG.

Scoring (`_windows.window_plan`): the same characters the recurrent contenders score
(`tf_rnn.engine.steps.scoring_streams` with 32 streams: characters 1 .. 32·L of the split),
each with at least half the context window before it where the text allows: windows of
64 inputs every 32 characters, the first scoring all its positions, the others their
last 32 (the last window is moved back to end at the last scored character).

The batches, the budget's loop and the scoring windows are `experiments._windows`'s,
shared with the same recipe in PyTorch (`experiments._nanogpt`); their names stay
importable from here for the modules that used them before.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from experiments import _windows
from experiments._windows import RandomWindows, scored_targets, window_plan  # noqa: F401

LN2 = math.log(2.0)


class Block(keras.layers.Layer):
    """x + attn(ln1(x)), then x + mlp(ln2(x)): one pre-LayerNorm transformer block."""

    def __init__(self, width, heads, num_layers, **kwargs):
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"Received an invalid value for `heads`, expected a divisor "
                             f"of width {width}, got {heads}.")
        self.width, self.heads, self.num_layers = width, heads, num_layers
        init = keras.initializers.RandomNormal(stddev=0.02)
        # GPT-2's scaled init of the two projections that add into the residual stream.
        resid = keras.initializers.RandomNormal(stddev=0.02 / math.sqrt(2 * num_layers))
        self.ln1 = keras.layers.LayerNormalization(epsilon=1e-5, center=False)
        self.qkv = keras.layers.Dense(3 * width, use_bias=False, kernel_initializer=init)
        self.proj = keras.layers.Dense(width, use_bias=False, kernel_initializer=resid)
        self.ln2 = keras.layers.LayerNormalization(epsilon=1e-5, center=False)
        self.fc = keras.layers.Dense(4 * width, use_bias=False, kernel_initializer=init)
        self.fc_proj = keras.layers.Dense(width, use_bias=False, kernel_initializer=resid)

    def attention(self, x):
        """(B, T, C) -> (B, T, C): causal multi-head self-attention."""
        B, T = tf.shape(x)[0], tf.shape(x)[1]
        H, D = self.heads, self.width // self.heads
        q, k, v = tf.split(self.qkv(x), 3, axis=-1)  # (B, T, C) each
        q, k, v = (tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]) for t in (q, k, v))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(D)  # (B, H, T, T)
        causal = tf.linalg.band_part(tf.ones([T, T], tf.bool), -1, 0)  # j <= i
        scores = tf.where(causal, scores, tf.constant(-1e9, scores.dtype))
        y = tf.matmul(tf.nn.softmax(scores, axis=-1), v)  # (B, H, T, D)
        return self.proj(tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, self.width]))

    def call(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc_proj(tf.nn.gelu(self.fc(self.ln2(x)), approximate=False))

    def get_config(self):
        return {**super().get_config(), "width": self.width, "heads": self.heads,
                "num_layers": self.num_layers}


class BabyGPT(keras.Model):
    """ids (B, T <= context) -> logits (B, T, A): token + position embeddings, blocks,
    a final LayerNorm, and the head tied to the token embedding (logits = x·Eᵀ)."""

    def __init__(self, alphabet_size, width=128, heads=4, num_layers=4, context=64,
                 **kwargs):
        super().__init__(**kwargs)
        self.alphabet_size, self.width, self.heads = alphabet_size, width, heads
        self.num_layers, self.context = num_layers, context
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.tokens = keras.layers.Embedding(alphabet_size, width, embeddings_initializer=init)
        self.positions = self.add_weight(shape=(context, width), initializer=init,
                                         name="position_embedding")
        self.blocks = [Block(width, heads, num_layers) for _ in range(num_layers)]
        self.ln_f = keras.layers.LayerNormalization(epsilon=1e-5, center=False)

    def call(self, ids):
        T = tf.shape(ids)[1]
        x = self.tokens(ids) + self.positions[:T]  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return tf.matmul(self.ln_f(x), self.tokens.embeddings, transpose_b=True)  # (B, T, A)

    def decayed_variables(self):
        """The variables weight decay applies to: the Dense layers' kernels (matrices)."""
        return [layer.kernel for block in self.blocks
                for layer in (block.qkv, block.proj, block.fc, block.fc_proj)]

    def get_config(self):
        return {**super().get_config(), "alphabet_size": self.alphabet_size,
                "width": self.width, "heads": self.heads, "num_layers": self.num_layers,
                "context": self.context}


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """nanoGPT's `get_lr`: linear warm-up to `peak` over `warmup` steps, then a cosine
    from `peak` down to `floor` over the budget: `progress`, a float32 variable, is the
    fraction of it spent (`tf_rnn.train.budget`; `floor` once it is 1)."""

    def __init__(self, peak, floor, warmup, progress):
        self.peak, self.floor, self.warmup, self.progress = peak, floor, warmup, progress

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(self.warmup)
        rising = self.peak * (step + 1.0) / (warm + 1.0)
        done = tf.clip_by_value(tf.cast(self.progress, tf.float32), 0.0, 1.0)
        cosine = self.floor + 0.5 * (1.0 + tf.cos(math.pi * done)) * (self.peak - self.floor)
        return tf.where(step < warm, rising, cosine)

    def get_config(self):
        return {"peak": self.peak, "floor": self.floor, "warmup": self.warmup,
                "progress": float(self.progress.numpy())}


class GPTTrainer:
    """BabyGPT with its optimizer and compiled train step: train(window) -> loss and
    evaluate(ids) -> BPC, as the quality contenders have, and evaluate_windows(ids,
    count) -> nats, nanoGPT's way.

    Args:
      alphabet_size: A.
      progress: float32 tf.Variable, the fraction of the budget spent (the cosine ends
        at 1).
      width, heads, num_layers, context, batch_size: the model and batch shape.
      learning_rate, min_learning_rate, warmup, weight_decay, beta_2, clip_norm: AdamW.
      jit_compile: XLA for the train step.
      seed: weights' seed.
    """

    def __init__(self, alphabet_size, progress, width=128, heads=4, num_layers=4,
                 context=64, batch_size=12, learning_rate=1e-3, min_learning_rate=1e-4,
                 warmup=100, weight_decay=0.1, beta_2=0.99, clip_norm=1.0, jit_compile=False,
                 seed=0):
        keras.utils.set_random_seed(seed)
        self.model = BabyGPT(alphabet_size, width, heads, num_layers, context)
        self.model(tf.zeros([1, context], tf.int32))  # builds the weights
        self.context, self.batch_size = context, batch_size
        self.learning_rate, self.seed = learning_rate, seed
        self.schedule = WarmupCosine(learning_rate, min_learning_rate, warmup, progress)
        self.optimizer = keras.optimizers.AdamW(self.schedule, weight_decay=weight_decay,
                                                beta_1=0.9, beta_2=beta_2)
        decayed = {id(v) for v in self.model.decayed_variables()}
        self.optimizer.exclude_from_weight_decay(
            var_list=[v for v in self.model.trainable_variables if id(v) not in decayed])
        self.clip_norm = clip_norm
        self._train_step = tf.function(self._step, jit_compile=jit_compile)
        self._logits = tf.function(lambda ids: self.model(ids), reduce_retracing=True)

    def _step(self, inputs, targets):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(inputs)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=targets, logits=logits))
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), self.clip_norm)
        self.optimizer.apply(grads, variables)
        return loss

    def train(self, window):
        """One update on a (B, context + 1) window; returns the loss (nats)."""
        window = tf.constant(window, tf.int32)
        return float(self._train_step(window[:, :-1], window[:, 1:]))

    def evaluate(self, ids, chunk=256):
        """Bits per character over the characters `tf_rnn.engine.steps.scoring_streams(ids, 32)`
        scores, each given its window of `_windows.scoring_windows` (at least half the
        context before it where the text allows)."""
        ids = np.asarray(ids, np.int32)
        index, scored, n = _windows.scoring_windows(len(ids), self.context)
        return self._summed_nats(ids[index], scored, chunk) / n / LN2

    def evaluate_windows(self, ids, count, length=None, seed=0, chunk=256):
        """Nats per character nanoGPT's way (`estimate_loss`): `count` random windows of
        `length` (default the context) + 1 characters (`_windows.random_windows`), the
        loss averaged over every position."""
        length = length or self.context
        index = _windows.random_windows(len(ids), count, length, seed)
        windows = np.asarray(ids, np.int32)[index]
        return self._summed_nats(windows, np.ones(windows[:, 1:].shape, bool), chunk) / (
            count * length)

    def _summed_nats(self, windows, scored, chunk):
        """The summed loss (nats) of windows (K, W + 1)'s targets where scored (K, W)."""
        nats = 0.0
        for i in range(0, len(windows), chunk):
            window = windows[i:i + chunk]
            logits = self._logits(tf.constant(window[:, :-1]))
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=window[:, 1:], logits=logits).numpy()  # (k, W)
            nats += float(losses[scored[i:i + chunk]].sum())
        return nats
