"""Experiment modules: each builds a config from a preset and calls the tf_rnn library.

Run one with `python -m experiments.NAME --help`.
"""
