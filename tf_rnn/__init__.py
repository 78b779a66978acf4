"""tf_rnn: simple recurrent networks in TensorFlow 2 / Keras 3.

Importing the package is cheap and changes nothing in the process: TensorFlow is
loaded only by the submodules that need it (`tf_rnn.models`, `tf_rnn.training`, ...).
The CLI and the experiments quiet TensorFlow's own log lines (`tf_rnn.logs`); a
library user keeps TensorFlow's settings as they are.

The layers of the package, lowest first (docs/architecture.md says why;
tests/test_layers.py holds them): a module imports only from its own layer and the
ones below, and no import cycle exists.

    base      config, model_table, errors, checks, files, jsonl, logs, draws, plots
    data      vocab, textio, corpora, text8, data
    model     kernels, cells, charmodel, indrnn, stacking, models
    steps     steps, sampling, scoring, summaries, distribute, sequence, tasks, probes,
              units
    run       workdir, preemption, integrity, runs, resources, run_state, budget,
              diagnostics, report_page, report
    training  trainer, training
    export    serving, export
    entry     arguments, cli, __main__
"""

__version__ = "0.1.0"
