"""The experiments: one runnable module per study, over the public tf_rnn library.

Run one with `python -m experiments.NAME` (`--help` lists its flags). Every runnable
module has `main(argv=None) -> int` and runs through `tf_rnn.cli.run_and_report`:
progress on stderr, the last line on stdout one JSON object, a user error one line
and exit status 2. tests/test_experiments_index.py holds this index to the directory.

Presets trained on a corpus, each `tf-rnn train --preset NAME` with that command's
flags (--data, default text8, or shakespeare, shipped; --steps; --set KEY=VALUE; ...),
--workdir defaulting to runs/NAME (runs/NAME-shakespeare on the shipped corpus), and
--plot FILE.png for the loss curve:
  text8_arch1        S4, Arch 1 (hidden feedback) with the seed's settings
  text8_arch1_sum    S4b, Arch 1 with element-wise sum, the seed author's variant
  text8_arch1_tuned  Arch 1 (concat) with the settings tuned for quality per minute
  text8_arch2        S5, Arch 2 (output feedback, teacher forcing), the seed's settings
  text8_best         the lowest validation BPC per CPU-minute found (multiplicative
                     integration)
  charrnn_adagrad    S3, the char-RNN trained with Adagrad, the seed's settings

Toy systems: no corpus and no preset; their settings are flags of their own (--set
takes jit_compile only), K seeds train side by side:
  xor_elman          S1, the Elman network on temporal XOR, and the cost along each
                     context weight
  hello              S2, the mini char-RNN that learns "hello" and regenerates it
  binary_addition    S6, an Elman network that learns to add binary numbers

Comparisons and benchmarks: one JSON line per row (then a summary line):
  benchmark          speed of training, evaluation and sampling against the peers
                     (Keras, the seed's naive graph), in one process
  quality            validation BPC after equal wall-clock training: tf_rnn's Arch 1
                     combinations against Keras SimpleRNN, LSTM, GRU and a baby GPT
                     (in Keras, and in PyTorch where it is installed)
  shakespeare_char   nanoGPT's shakespeare_char for a preset: raw Tiny Shakespeare
                     split 90/10, scored nanoGPT's way and streaming, beside its
                     published losses
  gpt_peers          the transformer peer checked against nanoGPT itself: its baby
                     GPT in PyTorch (nanoGPT's framework, a child process) and in
                     Keras, equal minutes each, scored on the same characters
  diag_benchmark     what the training diagnostics cost, in chars/s
  serve_benchmark    a SavedModel export called from many threads at once: requests/s,
                     latency, answers bitwise equal to single-threaded ones

Tools: a closer look at one finding:
  init_diagnostics   text8_arch1 by initialisation: dead units and the gradient by lag
  lstm_streams       the Keras LSTM's validation BPC per stream (why its curve jumps
                     in quality)

Shared helpers, not run (their names are imported by the modules above):
  _run               train_preset (the presets' main), the toy systems' flags, and
                     tf_rnn_trainer (a preset's compiled step, for the benchmarks)
  _report            JSON rows, Markdown tables, peak memory (the benchmarks)
  _speed             the speed rows' bursts in turns, their timed tasks (the matmul
                     peak, a train step) and each model's FLOPs per character
  _stacks            benchmark's stacked rows: IndRNN, the stacked presets and the
                     gated Keras stacks, each against the Keras stack of its shape
  _quality           the contenders of quality and their equal-time training
  _contenders        quality's three kinds of contender: a tf_rnn run trained by the
                     CLI's loop in turns, a peer trained a step at a time, and a
                     peer trained in a child process (PyTorch's baby GPT)
  _transformer       nanoGPT's baby GPT in Keras 3, the quality peer with a context
                     window (its recipe, and its scoring on the recurrent ones' characters)
  _windows           what the two baby GPTs share, in NumPy: the recipe, the
                     batches, the budget's loop and schedule, the scoring windows
  _nanogpt           nanoGPT's baby GPT in PyTorch, the child process of gpt_peers
                     (trained alone) and of quality (in turns, `--serve`); no other
                     module imports it
  _baselines         the peers: Keras char-RNNs, the seed's naive graphs, a Python
                     sampling loop
"""
