"""S2: the mini char-RNN of the "hello" seed: learn each next symbol, then generate.

One-hot symbols, 10 sigmoid hidden units with context units, softmax over the
symbols; trained full-batch with true BPTT on one string ('hell' -> 'ello'), K seeds
side by side. A seed succeeds when its teacher-forced predictions are the string's
next symbols AND, from the prime (its first symbol), the project's sampler
(greedy) regenerates the whole string.

    python -m experiments.hello [--text "hello"] [--alphabet "etaoinshrd "] [--seeds 20]
"""

import argparse
import sys

from experiments import _run
from tf_rnn import cli


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", default="hello", help="the string to memorise")
    p.add_argument("--alphabet", help="the symbols, in one-hot order (default: the "
                   "distinct characters of --text)")
    p.add_argument("--prime", help="generation starts from this (default: the first symbol)")
    p.add_argument("--seeds", type=int, default=20, help="independent runs (K members)")
    p.add_argument("--seed", type=int, default=0, help="base random seed")
    p.add_argument("--hidden", type=int, default=10, help="hidden (= context) units")
    p.add_argument("--steps", type=int, default=1000, help="full-batch updates")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    _run.add_toy_arguments(p, "hello")
    return p.parse_args(argv)


def run(args):
    settings = _run.toy_settings(args, "hello")
    import keras
    import tensorflow as tf

    from tf_rnn import sequence, steps, tasks
    from tf_rnn.workdir import Workdir

    prime = args.text[:1] if args.prime is None else args.prime
    if not args.text.startswith(prime) or len(prime) >= len(args.text):
        raise ValueError(f"Received an invalid value for `--prime`, expected a proper prefix "
                         f"of --text {args.text!r}, got {prime!r}.")
    keras.utils.set_random_seed(args.seed)
    vocab = tasks.alphabet_of(args.text, args.alphabet)
    inputs, targets = tasks.next_symbol_task(args.text, vocab)  # (1, L-1, A) each
    model = sequence.ElmanSequenceModel(vocab.size, args.hidden, vocab.size, "sigmoid",
                                        members=args.seeds)
    train_step = steps.make_train_step(model, keras.optimizers.Adam(args.lr),
                                       loss_fn=sequence.make_loss("ce"), **settings)
    workdir = Workdir(args.workdir).create()
    writer = tf.summary.create_file_writer(str(workdir.events_dir))
    fit = sequence.fit(model, train_step, (inputs, targets), args.steps, writer=writer,
                       progress=not args.no_progress, desc="hello")

    predicted = tasks.predict(model, inputs)[0].argmax(-1).T  # (K, L-1)
    forced = [vocab.decode(row) for row in predicted]  # 'hell' -> 'ello' per seed
    generated = tasks.greedy_continuations(model, vocab, prime, len(args.text) - len(prime))
    ok = [f == args.text[1:] and g == args.text for f, g in zip(forced, generated)]
    with writer.as_default():
        tf.summary.text("generated", "\n\n".join(
            f"seed {k}: {g!r} ({'ok' if good else 'wrong'})"
            for k, (g, good) in enumerate(zip(generated, ok))), step=fit["steps"])
    writer.flush()
    model.save(workdir.path / "model.keras")  # all K seeds; keras.saving.load_model reads it
    print(f"{sum(ok)}/{args.seeds} seeds regenerate {args.text!r} from {prime!r}",
          file=sys.stderr)
    return {"seeds": args.seeds, "succeeded": int(sum(ok)), "generated": generated,
            "text": args.text, "alphabet": vocab.chars, "prime": prime,
            "teacher_forced_ok": int(sum(f == args.text[1:] for f in forced)),
            "steps": fit["steps"], "train_loss": fit["loss"],
            "workdir": str(workdir.path)}


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="experiments.hello")


if __name__ == "__main__":
    sys.exit(main())
