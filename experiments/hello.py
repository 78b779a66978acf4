"""S2: the mini char-RNN of the "hello" seed: learn each next symbol, then generate.

One-hot symbols, 10 sigmoid hidden units with context units, softmax over the
symbols; trained full-batch with true BPTT on one string ('hell' -> 'ello'), K seeds
side by side. A seed succeeds when its teacher-forced predictions are the string's
next symbols AND, from the prime (its first symbol), the project's sampler
(greedy) regenerates the whole string. With the `plot` extra, --plot FILE.png draws
each seed's loss over training and the probability each gives the right next symbol
at the end (after 'l' comes 'l' once and 'o' once: only the context can tell).

    python -m experiments.hello [--text "hello"] [--alphabet "etaoinshrd "] [--seeds 20]
                                [--plot FILE.png] [--report FILE.html]
"""

import sys

import numpy as np

from experiments import _run
from tf_rnn import cli
from tf_rnn.cli import arguments


def parse_args(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments.hello",
                                 description=__doc__.splitlines()[0])
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
    p.add_argument("--plot", metavar="FILE.png", type=arguments.output_path,
                   help="draw the loss per seed and the final predictions (the `plot` extra)")
    p.add_argument("--report", metavar="FILE.html", type=arguments.output_path,
                   help="tf-rnn inspect's page of the first "
                   "seed that succeeded (else seed 0) over --text: its units one by one")
    return p.parse_args(argv)


def per_seed_loss(logits, targets):
    """Each seed's cross-entropy (nats per symbol): logits (N, T, K, A) of
    `tasks.predict`, one-hot targets (N, T, A) -> (K,)."""
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -(np.asarray(targets)[:, :, None, :] * log_p).sum(-1).mean(axis=(0, 1))


def run(args):
    settings = _run.toy_settings(args, "hello")
    import keras
    import tensorflow as tf

    from tf_rnn.base.errors import ArgumentError
    from tf_rnn.engine import steps, summaries
    from tf_rnn.inspect import plots
    from tf_rnn.run.directory import Workdir
    from tf_rnn.toys import sequence, tasks

    if args.plot:
        plots.require_matplotlib()  # a missing extra fails before training

    prime = args.text[:1] if args.prime is None else args.prime
    if not args.text.startswith(prime) or len(prime) >= len(args.text):
        raise ArgumentError(f"Received an invalid value for `--prime`, expected a proper "
                            f"prefix of --text {args.text!r}, got {prime!r}.")
    keras.utils.set_random_seed(args.seed)
    vocab = tasks.alphabet_of(args.text, args.alphabet)
    inputs, targets = tasks.next_symbol_task(args.text, vocab)  # (1, L-1, A) each
    model = sequence.ElmanSequenceModel(vocab.size, args.hidden, vocab.size, "sigmoid",
                                        members=args.seeds)
    train_step = steps.make_train_step(model, keras.optimizers.Adam(args.lr),
                                       loss_fn=sequence.make_loss("ce"), **settings)
    workdir = Workdir(args.workdir).create()
    writer = tf.summary.create_file_writer(str(workdir.events_dir))
    history = []  # (step, (K,) loss per seed), for the picture

    def record(done):
        history.append((done, per_seed_loss(tasks.predict(model, inputs), targets)))
        return False  # train all the steps

    fit = sequence.fit(model, train_step, (inputs, targets), args.steps, writer=writer,
                       check=record if args.plot else None, check_every=10,
                       progress=not args.no_progress, desc="hello")

    predicted = tasks.predict(model, inputs)[0].argmax(-1).T  # (K, L-1)
    forced = [vocab.decode(row) for row in predicted]  # 'hell' -> 'ello' per seed
    generated = tasks.greedy_continuations(model, vocab, prime, len(args.text) - len(prime))
    ok = [f == args.text[1:] and g == args.text for f, g in zip(forced, generated)]
    with writer.as_default():
        tf.summary.text("generated", "\n\n".join(
            f"seed {k}: {g!r} ({'ok' if good else 'wrong'})"
            for k, (g, good) in enumerate(zip(generated, ok))), step=fit["steps"],
            description=summaries.describe("generated"))
    writer.flush()
    if args.plot:
        _plot(args, history, tasks.predict(model, inputs)[0], targets[0], generated, ok,
              prime)
    report_seed = _report(args, model, vocab, ok) if args.report else None
    model.save(workdir.path / "model.keras")  # all K seeds; keras.saving.load_model reads it
    print(f"{sum(ok)}/{args.seeds} seeds regenerate {args.text!r} from {prime!r}",
          file=sys.stderr)
    return {"seeds": args.seeds, "succeeded": int(sum(ok)), "generated": generated,
            "text": args.text, "alphabet": vocab.chars, "prime": prime,
            "teacher_forced_ok": int(sum(f == args.text[1:] for f in forced)),
            "steps": fit["steps"], "train_loss": fit["loss"], "plot": args.plot,
            "report": args.report, "report_seed": report_seed,
            "workdir": str(workdir.path)}


def _plot(args, history, logits, targets, generated, ok, prime):
    """The picture: loss per seed, and P(right next symbol) per seed and position."""
    from tf_rnn.inspect import plots

    z = np.exp(logits - logits.max(-1, keepdims=True))  # (T, K, A)
    right = ((z / z.sum(-1, keepdims=True)) * targets[:, None, :]).sum(-1).T  # (K, T)
    steps = np.array([s for s, _ in history])
    losses = np.stack([loss for _, loss in history], 1)  # (K, N)
    plots.hello_figure(
        args.plot, steps, {f"seed {k}": losses[k] for k in range(args.seeds)}, right,
        [f"{a}→{b}" for a, b in zip(args.text, args.text[1:])],
        [f"seed {k}: {g!r} {'✓' if good else '✗'}" for k, (g, good) in
         enumerate(zip(generated, ok))],
        title=(f"S2 {args.text!r} (--seed {args.seed}): {args.seeds} networks of "
               f"{args.hidden} sigmoid units, {args.steps} steps of Adam {args.lr:g}; "
               f"{sum(ok)}/{args.seeds} regenerate the text from {prime!r} (✓)"))


def _report(args, model, vocab, ok):
    """Writes `tf_rnn.inspect.report`'s page of one seed's network (a one-member copy) reading
    the text's one-hot symbols; returns the seed shown."""
    from tf_rnn.base import files
    from tf_rnn.inspect import report

    k = ok.index(True) if any(ok) else 0
    ids = vocab.encode(args.text)
    page, _ = report.render(
        model.member(k), ids, vocab.chars, inputs=np.eye(vocab.size, dtype=np.float32)[ids],
        num_unrollings=len(ids) - 1, title=f"experiments.hello: seed {k} of {args.seeds}",
        about={"text": args.text, "seed": k, "steps": args.steps, "hidden": args.hidden})
    files.atomic_write(args.report, page.encode("utf-8"))
    return k


def main(argv=None):
    args = parse_args(argv)
    return cli.run_and_report(run, args, prog="experiments.hello")


if __name__ == "__main__":
    sys.exit(main())
