"""Quality per minute, `benchmark --quality`: validation bits per character after equal
training time for the faithful preset, the tuned preset and the Keras baseline.

The contenders train in turns, a slice of seconds each, until each has trained for the
same wall-clock budget (its compile included); taking turns keeps a machine shared
with other work from favouring whichever ran first. Each is then scored over the whole
validation split the same way (`tf_rnn.steps.evaluate`'s streams and windows).
"""

import math
import time

SLICE_SECONDS = 5.0  # one turn of a contender


class Contender:
    """A model being trained for a time budget: train(window) and valid_bpc(ids)."""

    def __init__(self, name, train, valid_bpc, batch_size, num_unrollings):
        self.name, self.train, self.valid_bpc = name, train, valid_bpc
        self.batch_size, self.num_unrollings = batch_size, num_unrollings
        self.seconds, self.steps, self.last_loss = 0.0, 0, math.nan


def tf_rnn_contender(name, preset, make_trainer, alphabet):
    from tf_rnn import steps

    cfg, model, train = make_trainer(preset, alphabet)
    eval_step = steps.make_eval_step(model)

    def valid_bpc(ids):
        return steps.evaluate(model, ids, cfg.eval_batch_size, cfg.num_unrollings,
                              eval_step)["bpc"]

    return Contender(name, train, valid_bpc, cfg.batch_size, cfg.num_unrollings)


def keras_contender(alphabet):
    """The Keras baseline of the speed rows: width 200, stateful, the seed's Adadelta and
    clip (Adam at Keras's default rate reached the same BPC here: 2.285 vs 2.280)."""
    import keras

    from experiments import _baselines

    keras.utils.set_random_seed(0)
    model = _baselines.KerasSimpleRNN(alphabet, 200, 32, 40)
    return Contender("keras_simplernn", model.train, model.evaluate, 32, 40)


def train_for(contenders, corpus_ids, seconds, log):
    """Trains every contender for `seconds` of its own wall-clock time, in turns."""
    from tf_rnn import data

    cursors = {c.name: data.BatchCursors(corpus_ids, c.batch_size, c.num_unrollings)
               for c in contenders}
    while any(c.seconds < seconds for c in contenders):
        for c in contenders:
            turn_end = min(seconds, c.seconds + SLICE_SECONDS)
            while c.seconds < turn_end:
                window = cursors[c.name].next()
                start = time.perf_counter()
                c.last_loss = c.train(window)
                c.seconds += time.perf_counter() - start
                c.steps += 1
        log("  " + ", ".join(f"{c.name} {c.seconds:.0f} s {c.steps} steps loss "
                             f"{c.last_loss:.3f}" for c in contenders))


def run(report, args, make_trainer):
    """Adds one `quality/...` row per contender; returns the summary's quality figures."""
    from tf_rnn import data

    corpus = data.load_corpus(args.data, vocab="text8")
    alphabet = corpus.vocab.size
    contenders = [
        tf_rnn_contender("text8_arch1", "text8_arch1", make_trainer, alphabet),
        tf_rnn_contender("text8_arch1_tuned", "text8_arch1_tuned", make_trainer, alphabet),
        keras_contender(alphabet),
    ]
    report.log(f"Quality: {args.minutes:g} min of training each on {corpus.source} "
               f"({len(corpus.train):,} training characters), then validation BPC:")
    train_for(contenders, corpus.train, 60 * args.minutes, report.log)
    bpc = {}
    for c in contenders:
        bpc[c.name] = c.valid_bpc(corpus.valid)
        report.add(f"quality/{c.name}", c.steps * c.batch_size * c.num_unrollings / c.seconds,
                   valid_bpc=bpc[c.name], steps=c.steps, train_seconds=c.seconds,
                   valid_chars=len(corpus.valid))
    tuned = bpc["text8_arch1_tuned"]
    return {"quality_minutes": args.minutes, "tuned_valid_bpc": tuned,
            "faithful_valid_bpc": bpc["text8_arch1"], "keras_valid_bpc": bpc["keras_simplernn"],
            "tuned_beats_both": bool(tuned < bpc["text8_arch1"] and
                                     tuned < bpc["keras_simplernn"])}
