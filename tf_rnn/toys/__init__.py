"""The classic toy sequence tasks (temporal XOR, "hello", binary addition): their data
(`tasks`) and the small Elman networks that learn them (`sequence`).

Imports `base`, `data`, `models` and `engine`.
"""
