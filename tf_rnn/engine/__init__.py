"""The compiled computations a run is made of: the train and evaluation steps with
their optimizer and schedule (`steps`), their `tf.distribute` form (`distribute`),
TensorBoard summaries, sampling and per-character scoring.

Imports `base`, `data` and `models`.
"""
