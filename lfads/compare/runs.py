"""Trained LFADS generators as models to compare: their states on shared trials, their map and a shared readout.

For a fitted LFADS model the compared system is its generator,

.. math::

    g_t = F(g_{t-1}, [u_t; v_t]),\\qquad \\log r_t = W_{\\mathrm{out}} (W_{\\mathrm{fac}}\\, g_t) + b,

with ``g`` ``(trials, time, gen_dim)`` the posterior-mean generator states on one split, ``F`` the generator
GRU (fixed points are searched with its inputs held at zero, as ``lfads analyze`` does), and the readout to
log-rates as the space shared by models fitted to the same neurons (it matches fixed points of different
models, whose generator coordinates are unrelated). The generator inputs ``[u; v]`` and initial states ``g_{-1}``
come with the states, and a model co-trained with a JSLDS brings its expansion-point network, so the
``jslds`` metric linearizes the generator where its JSLDS does (:mod:`lfads.compare.jslds`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lfads.analysis.pipeline import generator_trajectories
from lfads.compare.api import Model

__all__ = ["lfads_generator_model"]


def _log_rate_readout(model: Any, session: int):
    """``h (n, gen_dim) -> log-rates (n, neurons)`` of one session, float64 numpy in and out."""
    fac_w = model.decoder.factor_weight().detach().double().cpu()

    def readout(states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            factors = torch.as_tensor(np.asarray(states), dtype=torch.float64) @ fac_w.t()
            params = model.readout(session, factors.to(torch.float32)).double()
        return params.cpu().numpy()

    return readout


def lfads_generator_model(
    model: Any,
    datamodule: Any,
    name: str,
    split: str = "valid",
    session: int = 0,
    max_trials: int | None = 200,
) -> Model:
    """A :class:`~lfads.compare.api.Model` of a trained LFADS generator on one split of its data.

    Parameters
    ----------
    model : lfads.model.LFADS
        The trained model (left in the train/eval mode it had).
    datamodule : lfads.data.datamodule.LFADSDataModule
        Its data; every model compared must hold the same trials (see :func:`lfads.ensemble.check_same_trials`).
    name : str
        The model's name in the distance matrices.
    split, session : str, int
        Which trials: posterior-mean generator states ``(trials, time, gen_dim)`` of this split.
    max_trials : int, optional
        Use the first ``max_trials`` trials only.
    """
    traj = generator_trajectories(model, datamodule, split=split, session=session, max_trials=max_trials)
    cell = model.decoder.generator
    jslds = getattr(model, "jslds", None)
    return Model(
        name,
        trajectories=traj["gen_states"],
        cell=cell,
        readout=_log_rate_readout(model, session),
        hidden_size=int(traj["gen_states"].shape[-1]),
        input_size=int(traj["gen_inputs"].shape[-1]),
        inputs=traj["gen_inputs"],
        initial_states=traj["gen_init"],
        expansion=None if jslds is None else jslds.expansion,
    )
