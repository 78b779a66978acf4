"""The speed rows of stacked models (`experiments.benchmark --sections indrnn,stacks`): IndRNN
at text8_indrnn's shape, one layer and the preset's two, and every other stacked preset, each
against the Keras stack a user would write for it: `SimpleRNN` layers of the same width,
with the preset's residual connections and dropout."""

from experiments._run import tf_rnn_trainer
from experiments._speed import ALPHABET, matmul_peak_task, measure, ratio, train_task


def indrnn_flops_per_char(n, num_layers, alphabet=ALPHABET):
    """Dense training FLOPs per character of an IndRNN stack: 3x the forward matmuls.

    x (A) by W (A, n), each upper layer's h (n) by W (n, n), the top h by V (n, A); the
    element-wise recurrence u ⊙ h adds no matmul.
    """
    return 6 * (alphabet * n + (num_layers - 1) * n * n + n * alphabet)


def simplernn_flops_per_char(n, num_layers, alphabet=ALPHABET):
    """Dense training FLOPs per character of a stack of `num_layers` full recurrences of
    width n with a Dense(A) head: Keras SimpleRNN(n), and Arch 1 `sum` or `mul` (the
    products with U, W and V; `mul`'s element-wise terms are left out)."""
    return gated_flops_per_char(n, num_layers, 1, alphabet)


def gated_flops_per_char(n, num_layers, gates, alphabet=ALPHABET):
    """The same for a stack whose layers compute `gates` blocks of n from x and h: 4 for
    Keras LSTM(n), 3 for GRU(n), 1 for a plain recurrence."""
    g = gates * n
    return 6 * (alphabet * g + (num_layers - 1) * n * g + num_layers * n * g + n * alphabet)


def row_fields(stats, flops, peak, with_peak=False, **shape):
    """A stacked row's fields: its median, the shape it ran at (`shape`), its dense
    training FLOPs per character, the fraction of the matmul `peak` they reach and, if
    `with_peak`, that peak in GFLOP/s."""
    fields = dict(median=stats["median"], **shape, train_flops_per_char=flops,
                  peak_fraction=stats["best"] * flops / peak)
    return {**fields, "peak_gflops": peak / 1e9} if with_peak else fields


class KerasStack:
    """One-hot -> `num_layers` x SimpleRNN(units) (or `cell` LSTM, GRU), stateful ->
    Dense(A), Adam. The gated layers keep Keras's defaults, which take cuDNN's kernel on
    a GPU.

    The Keras stack a user writes for a stacked char-RNN, as tf_rnn's stacks connect
    theirs (`tf_rnn.models.stacking`): layer l + 1 reads layer l's output through `dropout`, and
    with `residual` adds it to its own; the head reads the top output through `dropout`.
    `train(window) -> loss` as the peers of `experiments._baselines`.
    """

    def __init__(self, alphabet_size, units, num_layers, batch_size, learning_rate,
                 clip_norm, activation="relu", residual=False, dropout=0.0,
                 cell="SimpleRNN"):
        import keras

        def dropped(x):
            return keras.layers.Dropout(dropout)(x) if dropout else x

        kind = getattr(keras.layers, cell)
        options = {"activation": activation} if cell == "SimpleRNN" else {}
        inputs = keras.Input(batch_shape=(batch_size, None), dtype="int32")
        x = keras.layers.Lambda(lambda ids: keras.ops.one_hot(ids, alphabet_size))(inputs)
        for layer in range(num_layers):
            h = kind(units, stateful=True, return_sequences=True,
                     **options)(dropped(x) if layer else x)
            x = keras.layers.Add()([h, x]) if residual and layer else h
        self.model = keras.Model(inputs, keras.layers.Dense(alphabet_size)(dropped(x)))
        self.model.compile(keras.optimizers.Adam(learning_rate, global_clipnorm=clip_norm),
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def train(self, window):
        return self.model.train_on_batch(window[:, :-1], window[:, 1:])


def run_indrnn(report, args, ids):
    """IndRNN at text8_indrnn's shape (1 layer and the preset's 2) against Keras SimpleRNN."""
    from tf_rnn.base import config

    preset = config.get_preset("text8_indrnn")
    B, T, n, L = preset.batch_size, args.arch1_unroll, preset.num_nodes, preset.num_layers
    report.log(f"IndRNN training (text8_indrnn shape: batch {B}, unroll {T}, n {n}, "
               f"1 and {L} layers, Adam) against Keras SimpleRNN({n}) x 1 and x {L}:")
    tasks = {"peak": matmul_peak_task()}
    for layers in (1, L):
        _, _, train = tf_rnn_trainer("text8_indrnn", num_layers=layers, num_unrollings=T)
        tasks[f"tf_rnn_{layers}_layer"] = train_task(train, ids, B, T)
        keras_rnn = KerasStack(ALPHABET, n, layers, B, preset.learning_rate,
                               preset.clip_norm)
        tasks[f"keras_simplernn_{layers}_layer"] = train_task(keras_rnn.train, ids, B, T)
    r = measure(tasks, args.seconds, args.rounds, report.log)
    peak = r.pop("peak")["best"]
    report.add("matmul_peak_indrnn_bound", peak / indrnn_flops_per_char(n, 1), gflops=peak / 1e9)
    ratios = {}
    for layers in (1, L):
        keras_best = r[f"keras_simplernn_{layers}_layer"]["best"]
        for peer, flops in (("tf_rnn", indrnn_flops_per_char(n, layers)),
                            ("keras_simplernn", simplernn_flops_per_char(n, layers))):
            stats = r[f"{peer}_{layers}_layer"]
            fields = row_fields(stats, flops, peak, batch=B, unroll=T, state=n, layers=layers)
            if peer == "tf_rnn":
                fields["vs_keras"] = ratios[layers] = ratio(stats["best"], keras_best)
            report.add(f"train/indrnn/{peer}_{layers}_layer", stats["best"], **fields)
    return {"indrnn_vs_keras": ratios[1], f"indrnn_{L}_layers_vs_keras_stack": ratios[L]}


def stacked_presets():
    """The presets with more than one layer that `run_stacks` measures: every one but
    text8_indrnn (`run_indrnn` measures it, beside its one-layer form), and none that
    trains the same model as an earlier one for another budget (text8_best_30min is
    text8_best_10min over 30 minutes: one speed)."""
    from tf_rnn.base import config

    names, models = [], []
    for name, cfg in config.PRESETS.items():
        model = cfg.replace(budget_minutes=0.0)
        if cfg.num_layers > 1 and name != "text8_indrnn" and model not in models:
            names.append(name)
            models.append(model)
    return names


def run_stacks(report, args, ids):
    """Every stacked Arch 1 preset against its Keras stack, interleaved, with the peak."""
    from tf_rnn.base import config

    names = stacked_presets()
    report.log(f"Stacked presets against their Keras stacks ({', '.join(names)}):")
    tasks, shapes = {"peak": matmul_peak_task()}, {}
    for name in names:
        cfg = config.get_preset(name)
        B, T, n, L = cfg.batch_size, args.arch1_unroll, cfg.num_nodes, cfg.num_layers
        if cfg.model != "arch1" or cfg.combine not in ("sum", "mul"):
            raise ValueError(f"run_stacks counts FLOPs of Arch 1 sum and mul only, not "
                             f"{name} ({cfg.model}, {cfg.combine})")
        shapes[name] = (B, T, n, L)
        _, _, train = tf_rnn_trainer(name, num_unrollings=T)
        tasks[f"{name}/tf_rnn"] = train_task(train, ids, B, T)
        keras_stack = KerasStack(ALPHABET, n, L, B, cfg.learning_rate, cfg.clip_norm,
                                 activation=cfg.activation, residual=cfg.residual,
                                 dropout=cfg.dropout)
        tasks[f"{name}/keras_simplernn_stack"] = train_task(keras_stack.train, ids, B, T)
    r = measure(tasks, args.seconds, args.rounds, report.log)
    peak = r.pop("peak")["best"]
    summary = {}
    for name, (B, T, n, L) in shapes.items():
        flops = simplernn_flops_per_char(n, L)
        keras_best = r[f"{name}/keras_simplernn_stack"]["best"]
        for peer in ("tf_rnn", "keras_simplernn_stack"):
            stats = r[f"{name}/{peer}"]
            fields = row_fields(stats, flops, peak, batch=B, unroll=T, state=n, layers=L,
                                with_peak=True)
            if peer == "tf_rnn":
                fields["vs_keras"] = summary[f"{name}_vs_keras_stack"] = ratio(
                    stats["best"], keras_best)
            report.add(f"train/stacks/{name}/{peer}", stats["best"], **fields)
    return summary


def run_gated(report, args, ids):
    """IndRNN at text8_indrnn's shape against Keras LSTM and GRU stacks of its width and
    depth (section `gated`, measured only when asked: on a GPU, the cuDNN kernels)."""
    import tensorflow as tf

    from tf_rnn.base import config

    preset = config.get_preset("text8_indrnn")
    B, T, n, L = preset.batch_size, args.arch1_unroll, preset.num_nodes, preset.num_layers
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    report.log(f"IndRNN (text8_indrnn: batch {B}, unroll {T}, n {n}, {L} layers) against "
               f"Keras LSTM({n}) x {L} and GRU({n}) x {L}, on the {device}:")
    _, _, train = tf_rnn_trainer("text8_indrnn", num_unrollings=T)
    tasks = {"peak": matmul_peak_task(), "tf_rnn_indrnn": train_task(train, ids, B, T)}
    for cell in ("LSTM", "GRU"):
        stack = KerasStack(ALPHABET, n, L, B, preset.learning_rate, preset.clip_norm,
                           cell=cell)
        tasks[f"keras_{cell.lower()}"] = train_task(stack.train, ids, B, T)
    r = measure(tasks, args.seconds, args.rounds, report.log)
    peak = r.pop("peak")["best"]
    flops = {"tf_rnn_indrnn": indrnn_flops_per_char(n, L),
             "keras_lstm": gated_flops_per_char(n, L, 4),
             "keras_gru": gated_flops_per_char(n, L, 3)}
    ours = r["tf_rnn_indrnn"]["best"]
    for name, stats in r.items():
        fields = row_fields(stats, flops[name], peak, batch=B, unroll=T, state=n, layers=L,
                            device=device, with_peak=True)
        if name != "tf_rnn_indrnn":
            fields["indrnn_vs_this"] = ratio(ours, stats["best"])
        report.add(f"train/gated/{name}", stats["best"], **fields)
    return {f"indrnn_vs_keras_{cell}_stack": ratio(ours, r[f"keras_{cell}"]["best"])
            for cell in ("lstm", "gru")}
