"""What every layer reads: the settings (`config`, the table of models `model_table`),
the errors, and small helpers for files, JSON lines, logs and random draws.

Imports nothing of tf_rnn's outside this folder; no TensorFlow at import time.
"""
