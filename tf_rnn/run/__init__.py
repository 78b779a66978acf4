"""A training run on disk: its directory (`directory.Workdir`), what a checkpoint holds
and writing it (`checkpoint.Run`), reading a run back (`reading`: its model, corpus and
figures), the checks of its files (`integrity`), its lock and stop signals
(`preemption`), and whether it fits in memory (`resources`).

Imports `base`, `data`, `models` and `engine`.
"""
