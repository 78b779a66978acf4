"""The echo state network (Jaeger 2001): an Elman network whose input and recurrent weights
are a fixed random reservoir, only its readout trained.

    h_t = tanh(x_t·W_xh + h_{t-1}·W_hh + b_h)      W_xh, W_hh, b_h fixed at their start
    logits_t = h_t·W_hy + b_y                       W_hy, b_y trained

W_hh is rescaled once, at the start, to the spectral radius `radius` (max |eigenvalue|;
config `esn_radius`): below 1 the reservoir forgets its start, the "echo state
property", and the closer to 1 the longer its memory. The cell is the Elman model's and
so is the fast path (the one recurrence kernel); the reservoir's variables are not
trainable, so the optimizer never moves them and a checkpoint holds them as drawn.
"""

import keras
import numpy as np

from tf_rnn.base import model_table
from tf_rnn.models.classic import ElmanModel


@model_table.implements("esn")
@keras.saving.register_keras_serializable("tf_rnn")
class EchoStateModel(ElmanModel):
    """An Elman network of `num_nodes` fixed units, W_hh scaled to `radius`; the readout
    learns. `**kwargs`: `CharModel`'s (init draws the reservoir; seed, dtype, ...)."""

    @classmethod
    def config_kwargs(cls, config):
        return {"radius": config.esn_radius}

    def __init__(self, alphabet_size, num_nodes, radius=0.9, **kwargs):
        super().__init__(alphabet_size, num_nodes, **kwargs)
        self.radius = float(radius)
        cell = self.cell
        w = cell.W_hh.numpy().astype(np.float64)
        largest = float(np.abs(np.linalg.eigvals(w)).max())
        if largest > 0:
            cell.W_hh.assign((w * (self.radius / largest)).astype(w.dtype))
        for fixed in (cell.W_xh, cell.W_hh, cell.b_h):
            fixed.trainable = False

    def get_config(self):
        config = super().get_config()
        for key in ("num_layers", "residual"):  # one layer, always
            config.pop(key)
        return {**config, "radius": self.radius}
