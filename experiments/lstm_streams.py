"""Why the Keras LSTM's validation curve jumps in `experiments.quality`: BPC per stream.

Trains a Keras `LSTM(256)` layer by Keras's `train_on_batch`, as the quality run's LSTM
peer was trained before it became a model of tf_rnn's table (seed 0, Adam 2e-3, clip 1.25,
batch 32, unroll 40, the same training cursors) for `--steps` steps, then scores the
validation split exactly as the quality run does (32 streams from the zero state, each
carrying its state across windows) and reports every stream's BPC, the worst stream's
largest |cell state| per window, and the text it starts with. With a stream whose cell
state runs away, the mean over streams jumps while the other streams stay put.

    python -m experiments.lstm_streams --data PATH [--steps 2700]

stdout: one JSON line.
"""

import sys

from tf_rnn import cli
from tf_rnn.cli import arguments


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.lstm_streams",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="corpus (text8 format, or normalised)")
    p.add_argument("--steps", type=int, default=2700, help="training steps (default 2700)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    return args


def run(args):
    """Trains the Keras LSTM, scores it per stream; returns the JSON result."""
    import numpy as np
    import tensorflow as tf

    import keras

    from experiments import _baselines
    from tf_rnn import data
    from tf_rnn.engine.steps import scoring_streams

    corpus = data.load_corpus(args.data, vocab="text8")
    keras.utils.set_random_seed(0)
    B, T = 32, 40
    model = _baselines.KerasCharRNN(corpus.vocab.size, 256, B, T, layer="lstm",
                                    optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=1.25))
    cursors = data.BatchCursors(corpus.train, B, T)
    for _ in range(args.steps):
        model.train(cursors.next())

    # The quality run's scoring, kept per stream and with the cell state watched.
    ids = np.asarray(corpus.valid)
    streams = scoring_streams(ids, B)  # the cut every contender is scored on
    length = streams.shape[1] - 1
    model.rnn.reset_states()
    bits, cell_max = [], []
    for start in range(0, length, T):
        window = streams[:, start:start + T + 1]
        logits = model.model(window[:, :-1], training=False)
        bits.append(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=window[:, 1:], logits=logits).numpy() / np.log(2.0))
        cell_max.append(np.abs(model.rnn.states[1].numpy()).max(axis=1))
    bits = np.concatenate(bits, axis=1)  # (B, length)
    per_stream = bits.mean(axis=1)
    worst = int(per_stream.argmax())
    others = np.delete(per_stream, worst)
    result = {
        "steps": args.steps, "valid_bpc": float(bits.mean()),
        "quality_scoring_bpc": float(model.evaluate(corpus.valid)),
        "stream_bpc": [round(float(b), 3) for b in per_stream],
        "worst_stream": worst, "worst_stream_bpc": float(per_stream[worst]),
        "other_streams_mean_bpc": float(others.mean()),
        "worst_stream_cell_max_by_window": [round(float(c), 1)
                                            for c in np.stack(cell_max, 1)[worst]],
        "worst_stream_starts": corpus.vocab.decode(streams[worst, :60]),
    }
    return result


def main(argv=None):
    return cli.run_and_report(run, parse_args(argv), prog="experiments.lstm_streams")


if __name__ == "__main__":
    sys.exit(main())
