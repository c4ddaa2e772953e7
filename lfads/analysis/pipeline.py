"""Analyse a trained LFADS generator in one call: fixed points, linearization and a post-hoc JSLDS.

Steps (what ``lfads analyze`` runs):

1. Posterior-mean pass over one split: generator states ``g`` ``(trials, time, gen_dim)``, its
   inputs ``[u; v]`` and initial states ``g_0``.
2. Initial states: ``n_initial`` visited states plus Gaussian noise of ``noise_scale`` times the
   states' standard deviation; fixed and slow points of ``g -> F(g, 0)`` from them
   (:func:`lfads.analysis.fixed_points.find_fixed_points`), with Jacobians, eigen-decompositions and
   stability classes.
3. A Jacobian-switching linear system (:func:`lfads.analysis.jslds.simulate_jslds`) with an
   expansion-point network fitted to the visited states, run one step ahead and as a rollout from
   ``g_0`` with the same inputs, with factor (and, for Poisson models, rate) errors.

The model is put in eval mode for the pass and restored afterwards; its parameters are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lfads.analysis.fixed_points import FixedPoints, find_fixed_points, sample_initial_states
from lfads.analysis.jslds import JSLDSResult, Readout, fit_expansion_point_network, simulate_jslds
from lfads.analysis.records import H5Record
from lfads.errors import check_setting

_FORMAT = "lfads.analysis.AnalysisResult/1"


@dataclass
class AnalysisResult(H5Record):
    """Fixed points and JSLDS of one model, with what they were computed from (``info``).

    One HDF5 file (an :class:`lfads.analysis.records.H5Record`): groups ``fixed_points/`` and ``jslds/``,
    ``info`` as ``info.*`` root attributes.
    """

    FORMAT = _FORMAT
    WRITTEN_BY = "`lfads analyze` or AnalysisResult.save"

    fixed_points: FixedPoints
    jslds: JSLDSResult | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.info.items()]
        lines += ["", self.fixed_points.summary()]
        if self.jslds is not None:
            lines += ["", self.jslds.summary()]
        return "\n".join(lines)


@torch.no_grad()
def generator_trajectories(
    model, datamodule, split: str = "valid", session: int = 0, max_trials: int | None = None
) -> dict:
    """Posterior-mean generator states, inputs and initial states of one split, as float64 numpy arrays."""
    data = datamodule.split_data(session, split)
    if max_trials is not None:
        check_setting("generator_trajectories", "max_trials", max_trials, 1, integer=True)
    n = data.encod_data.shape[0] if max_trials is None else min(max_trials, data.encod_data.shape[0])
    was_training = model.training
    model.eval()
    try:
        encod = torch.as_tensor(np.asarray(data.encod_data[:n]), dtype=torch.float32, device=model.device)
        ext = torch.as_tensor(np.asarray(data.ext_input[:n]), dtype=torch.float32, device=model.device)
        out = model({session: encod}, {session: ext}, sample=False)[session]
    finally:
        model.train(was_training)
    keys = ("gen_states", "gen_inputs", "gen_init", "factors", "rates")
    return {k: getattr(out, k).double().cpu().numpy() for k in keys}


def analyze_model(
    model,
    datamodule,
    split: str = "valid",
    session: int = 0,
    n_initial: int = 1024,
    noise_scale: float = 0.05,
    max_trials: int | None = 200,
    jslds: bool = True,
    expansion_steps: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> AnalysisResult:
    """Fixed points and a post-hoc JSLDS of ``model``'s generator (see the module docstring)."""
    check_setting("analyze_model", "n_initial", n_initial, 1, integer=True)
    check_setting("analyze_model", "noise_scale", noise_scale, 0.0)
    if jslds:
        check_setting("analyze_model", "expansion_steps", expansion_steps, 1, integer=True)
    traj = generator_trajectories(model, datamodule, split, session, max_trials)
    states, inputs = traj["gen_states"], traj["gen_inputs"]
    cell = model.decoder.generator
    noise = noise_scale * float(states.reshape(-1, states.shape[-1]).std(0).mean())
    init = sample_initial_states(states, n_initial, noise, seed=seed)
    input_dim = inputs.shape[-1]
    fps = find_fixed_points(cell, init.states, np.zeros(input_dim) if input_dim else None, progress=progress,
                            hidden_size=states.shape[-1], input_size=input_dim)
    result_jslds = None
    if jslds:
        torch.manual_seed(seed)
        network, _ = fit_expansion_point_network(cell, states, np.zeros(input_dim) if input_dim else None,
                                                 n_steps=expansion_steps, seed=seed, progress=progress)
        readout = None
        factor_weight = model.decoder.factor_weight().detach()
        if model.hparams.reconstruction == "poisson":
            layer = model.readout.layers[session]
            readout = Readout(factor_weight, None, layer.weight.detach(), layer.bias.detach())
        else:
            readout = Readout(factor_weight)
        result_jslds = simulate_jslds(
            cell, traj["gen_init"], inputs if input_dim else None, network,
            n_steps=None if input_dim else states.shape[1], readout=readout,
        )
    info = {
        "split": split,
        "session": datamodule.sessions[session].name,
        "n_trials": int(states.shape[0]),
        "n_initial": int(n_initial),
        "noise_std": noise,
        "seed": int(seed),
    }
    return AnalysisResult(fps, result_jslds, info)
