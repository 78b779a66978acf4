"""A trained model outside its run: the SavedModel export (`export`) and what it serves
(`serving`: batched generation and scoring).

Imports every layer below it: `base` to `train`.
"""
