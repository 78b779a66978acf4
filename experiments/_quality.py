"""Quality per CPU-minute: validation bits per character after equal training time.

The contenders train in turns, a slice of seconds each, until each has trained for the
same wall-clock budget (its compile included); taking turns keeps a machine shared
with other work from favouring whichever ran first. At `points` moments of each
contender's own training time its validation BPC is measured (not counted as
training time), giving a learning curve per contender; the last point is the row.
Every contender is scored over the whole validation split the same way: the split
cut into 32 streams, each carrying its state from the zero state across windows.
"""

import math
import time

from tf_rnn.errors import ArgumentError

SLICE_SECONDS = 5.0  # one turn of a contender

# The tf_rnn contenders: a preset, with a few overrides. The best setting found for each
# of Arch 1's combinations (docs/performance.md lists the sweeps behind them).
TF_RNN_CONTENDERS = {
    "text8_arch1": ("text8_arch1", {"jit_compile": True}),  # the seed's settings
    "arch1_concat_best": ("text8_arch1_tuned", {}),
    "arch1_sum_best": ("text8_best", {"combine": "sum", "activation": "relu", "num_nodes": 256,
                                      "init": "irnn", "init_gain": 0.5}),
    "text8_best": ("text8_best", {}),  # multiplicative integration
}

# The Keras peers a user would try, each with the optimizer that suits it here:
# (layer, units, Adam learning rate), all with global-norm clip 1.25, batch 32, unroll 40.
KERAS_CONTENDERS = {
    "keras_simplernn_200": ("simple_rnn", 200, 1e-3),
    "keras_simplernn_400": ("simple_rnn", 400, 1e-3),
    "keras_lstm_256": ("lstm", 256, 2e-3),
}


class Contender:
    """A model being trained for a time budget: train(window) and valid_bpc(ids).

    `model` is the model behind them (a tf_rnn model, or the Keras peers'
    `_baselines.KerasCharRNN`), for a closer look than the two figures.
    """

    def __init__(self, name, train, valid_bpc, batch_size, num_unrollings, model=None):
        self.name, self.train, self.valid_bpc = name, train, valid_bpc
        self.model = model
        self.batch_size, self.num_unrollings = batch_size, num_unrollings
        self.seconds, self.steps, self.last_loss = 0.0, 0, math.nan
        self.curve = []  # (training seconds, steps, valid BPC)

    @property
    def chars_per_sec(self):
        return self.steps * self.batch_size * self.num_unrollings / max(self.seconds, 1e-9)


def tf_rnn_contender(name, preset, changes, make_trainer, alphabet):
    from tf_rnn import steps

    cfg, model, train = make_trainer(preset, alphabet, **changes)
    eval_step = steps.make_eval_step(model)

    def valid_bpc(ids):
        return steps.evaluate(model, ids, cfg.eval_batch_size, cfg.num_unrollings,
                              eval_step)["bpc"]

    return Contender(name, train, valid_bpc, cfg.batch_size, cfg.num_unrollings, model)


def keras_contender(name, layer, units, learning_rate, alphabet):
    import keras

    from experiments import _baselines

    keras.utils.set_random_seed(0)
    optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=1.25)
    model = _baselines.KerasCharRNN(alphabet, units, 32, 40, layer=layer, optimizer=optimizer)
    return Contender(name, model.train, model.evaluate, 32, 40, model)


def make_contenders(names, make_trainer, alphabet):
    contenders = []
    for name in names:
        if name in TF_RNN_CONTENDERS:
            preset, changes = TF_RNN_CONTENDERS[name]
            contenders.append(tf_rnn_contender(name, preset, changes, make_trainer, alphabet))
        elif name in KERAS_CONTENDERS:
            contenders.append(keras_contender(name, *KERAS_CONTENDERS[name], alphabet))
        else:
            raise ArgumentError(f"Unknown contender {name!r}; known: "
                                f"{sorted(TF_RNN_CONTENDERS) + sorted(KERAS_CONTENDERS)}.")
    return contenders


def train_for(contenders, corpus_ids, valid_ids, seconds, log, points=1, on_point=None):
    """Trains every contender for `seconds` of its own wall-clock time, in turns.

    Measures each contender's validation BPC when its training time reaches each of
    `points` equally spaced moments (the last one is `seconds`); `on_point(contender)`
    is called after each measurement.
    """
    from tf_rnn import data

    cursors = {c.name: data.BatchCursors(corpus_ids, c.batch_size, c.num_unrollings)
               for c in contenders}
    marks = [seconds * (i + 1) / points for i in range(points)]
    while any(c.seconds < seconds for c in contenders):
        for c in contenders:
            turn_end = min(seconds, c.seconds + SLICE_SECONDS)
            while c.seconds < turn_end:
                window = cursors[c.name].next()
                start = time.perf_counter()
                c.last_loss = c.train(window)
                c.seconds += time.perf_counter() - start
                c.steps += 1
                while len(c.curve) < points and c.seconds >= marks[len(c.curve)]:
                    c.curve.append((c.seconds, c.steps, float(c.valid_bpc(valid_ids))))
                    if on_point:
                        on_point(c)
        log("  " + ", ".join(f"{c.name} {c.seconds:.0f} s {c.steps} steps loss "
                             f"{c.last_loss:.3f}" for c in contenders))


def run(report, args, make_trainer):
    """Adds one `quality/...` row per contender; returns the summary's quality figures."""
    from tf_rnn import data

    corpus = data.load_corpus(args.data, vocab="text8")
    names = list(TF_RNN_CONTENDERS) + list(KERAS_CONTENDERS)
    contenders = make_contenders(names, make_trainer, corpus.vocab.size)
    report.log(f"Quality: {args.minutes:g} min of training each on {corpus.source} "
               f"({len(corpus.train):,} training characters), then validation BPC:")
    train_for(contenders, corpus.train, corpus.valid, 60 * args.minutes, report.log)
    bpc = {}
    for c in contenders:
        bpc[c.name] = c.curve[-1][2]
        report.add(f"quality/{c.name}", c.chars_per_sec, valid_bpc=bpc[c.name],
                   steps=c.steps, train_seconds=c.seconds, valid_chars=len(corpus.valid))
    return summary(bpc, args.minutes)


def summary(bpc, minutes):
    """The quality figures of one budget: text8_best against the best Keras contender."""
    keras_best = min((v for k, v in bpc.items() if k in KERAS_CONTENDERS), default=math.nan)
    if "text8_best" not in bpc:
        return {"quality_minutes": minutes, "best_keras_valid_bpc": keras_best}
    return {"quality_minutes": minutes, "best_valid_bpc": bpc["text8_best"],
            "faithful_valid_bpc": bpc.get("text8_arch1"), "best_keras_valid_bpc": keras_best,
            "best_margin_over_keras": keras_best - bpc["text8_best"],
            "best_beats_keras_by_0_05": bool(keras_best - bpc["text8_best"] >= 0.05)}
