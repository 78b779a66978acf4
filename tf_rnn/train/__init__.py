"""The training loop: `training.train` (a run's directory checked and locked),
`trainer.Trainer` (the loop and its periodic jobs) and the time budget (`budget`).

Imports every layer below it: `base` to `inspect`.
"""
