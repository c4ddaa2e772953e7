"""Training many networks of one architecture at once, each with its own stopping rule.

A population of :math:`N` networks of one architecture (:mod:`lfads.population.cells`) is one model
whose parameters carry a leading network axis: ``weight_hh`` ``(N, G H, H)`` and so on, readout
``(N, O, H)``. A step of all networks is one batched product per time step
(over the network axis; the whole trial is one autograd function,
:func:`lfads.population.recurrence.run_recurrence`, whose backward forms the recurrent weights' gradient
once per trial), and the summed loss :math:`\\sum_n L_n` has gradient
:math:`\\partial L_n / \\partial \\theta_n` in the rows of network :math:`n`, so Adam (elementwise) and
the per-network gradient clip (:math:`g_n \\leftarrow g_n \\min(1, c / \\|g_n\\|)`, the norm over all of
network :math:`n`'s parameters) give each network exactly the updates it would get alone.

All networks see the same stream of training trials (seeded by ``data_seed``); they differ by their
initial weights (seeded per network). Every ``check_every`` steps each network still training is
scored on a fixed evaluation set; once its loss is below ``target_loss`` it stops: it leaves the
forward pass (the cost of a step falls with the number still training) and its weights are held
(Adam's momentum would otherwise keep moving them). Networks that never reach the target are
kept and marked (``reached`` is ``False``).

:func:`train_population` is the batched trainer; :func:`train_seed_loop` trains the same networks one
after the other with the same code (the reference for equality and speed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from lfads.errors import LFADSDataError, check_setting
from lfads.population.cells import PARAMETER_NAMES, RecurrentCell, check_arch, init_parameters, state_size
from lfads.population.recurrence import run_recurrence
from lfads.population.tasks import Task, TaskData

__all__ = [
    "PopulationFit",
    "StackedRNN",
    "TrainConfig",
    "carried_loss",
    "masked_mse",
    "sample_batch",
    "train_population",
    "train_seed_loop",
    "training_setup",
]

_EVAL_SEED_OFFSET = 1_000_003
CHUNK_ELEMENTS = 1 << 20
"""Most gate entries per network ``(steps, trials, G H)`` that :meth:`StackedRNN.forward` runs at once; longer
runs go in chunks of steps, the same for any number of networks (so a network gets the same arithmetic in a
population as alone). It bounds the arrays the Python loops build per chunk (the drive and the gates: 4 MB
per network and array in float32); the compiled loops store no drive, and without gradients only the states.
Training batches of 8 trials of 64 steps are one chunk; an evaluation on 128 trials of 8 LSTMs runs in
chunks of 32 steps."""


class StackedRNN(nn.Module):
    """:math:`N` networks :math:`h_t = F_n(h_{t-1}, x_t)`, :math:`y_t = W_n h_t + b_n` with stacked parameters.

    Parameters
    ----------
    arch : str
        Architecture (:data:`lfads.population.cells.ARCHITECTURES`).
    params : dict of Tensor
        Cell parameters with a leading network axis: ``weight_ih`` ``(N, G H, I)``, ``weight_hh``
        ``(N, G H, H)``, ``bias_ih``, ``bias_hh`` ``(N, G H)``.
    readout_weight : Tensor
        ``(N, O, H)``.
    readout_bias : Tensor
        ``(N, O)``.
    """

    def __init__(self, arch: str, params: dict[str, Tensor], readout_weight: Tensor, readout_bias: Tensor) -> None:
        super().__init__()
        self.arch = check_arch(arch)
        for name in PARAMETER_NAMES:
            self.register_parameter(name, nn.Parameter(params[name].detach().clone()))
        self.readout_weight = nn.Parameter(readout_weight.detach().clone())
        self.readout_bias = nn.Parameter(readout_bias.detach().clone())

    @classmethod
    def initialize(
        cls,
        arch: str,
        seeds: Sequence[int],
        units: int,
        n_inputs: int,
        n_outputs: int,
        identity_candidate: bool = False,
    ) -> StackedRNN:
        """Network ``n`` initialised from ``torch.Generator().manual_seed(seeds[n])`` (cell, then readout).

        The cell is :func:`lfads.population.cells.init_parameters` (with ``identity_candidate``); the
        readout is :math:`U(-1/\\sqrt H, 1/\\sqrt H)` (``nn.Linear``'s default).
        """
        cells, weights, biases = [], [], []
        k = 1.0 / math.sqrt(units)
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            cells.append(init_parameters(arch, units, n_inputs, gen, identity_candidate=identity_candidate))
            weights.append((2.0 * torch.rand(n_outputs, units, generator=gen) - 1.0) * k)
            biases.append((2.0 * torch.rand(n_outputs, generator=gen) - 1.0) * k)
        params = {name: torch.stack([c[name] for c in cells]) for name in PARAMETER_NAMES}
        return cls(arch, params, torch.stack(weights), torch.stack(biases))

    @property
    def n_networks(self) -> int:
        """``N``."""
        return int(self.weight_hh.shape[0])

    @property
    def units(self) -> int:
        """``H``."""
        return int(self.weight_hh.shape[2])

    @property
    def state_size(self) -> int:
        """``S`` (``2 H`` for the LSTM)."""
        return state_size(self.arch, self.units)

    def parameter_dict(self, networks: Tensor | None = None) -> dict[str, Tensor]:
        """Cell parameters, all networks or the rows ``networks`` (differentiable gather)."""
        out = {name: getattr(self, name) for name in PARAMETER_NAMES}
        return out if networks is None else {k: v[networks] for k, v in out.items()}

    def forward(
        self, inputs: Tensor, networks: Tensor | None = None, h0: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the networks on ``inputs`` ``(B, T, I)`` (the same trials for all) or ``(n, B, T, I)``.

        Parameters
        ----------
        inputs : Tensor
            Trials.
        networks : Tensor, optional
            ``(n,)`` indices of the networks to run (all by default).
        h0 : Tensor, optional
            ``(n, B, S)`` initial states (zeros by default).

        Returns
        -------
        outputs : Tensor
            ``(n, B, T, O)``.
        states : Tensor
            ``(n, B, T, S)``.
        """
        p = self.parameter_dict(networks)
        w_out, b_out = self.readout_weight, self.readout_bias
        if networks is not None:
            w_out, b_out = w_out[networks], b_out[networks]
        h, parts = h0, []
        weights = p["weight_ih"], p["bias_ih"], p["weight_hh"], p["bias_hh"]
        for x in inputs.split(self._chunk_steps(p["weight_hh"].shape[1], *inputs.shape[-3:-1]), dim=-2):
            batch, steps, n_in = x.shape[-3:]
            u = x.transpose(-3, -2).reshape(-1, steps, batch, n_in)  # (1 or n, T, B, I)
            parts.append(run_recurrence(self.arch, u, h, *weights))  # (n, T, B, S)
            h = parts[-1][:, -1]
        st = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self._readout(st, w_out, b_out).transpose(1, 2), st.transpose(1, 2)

    def _readout(self, states: Tensor, w_out: Tensor, b_out: Tensor) -> Tensor:
        """:math:`W_o h_t + b_o` ``(n, T, B, O)`` from the states ``(n, T, B, S)``."""
        n, steps, batch, size = states.shape
        flat = states.reshape(n, steps * batch, size)
        if torch.is_grad_enabled():
            if size > self.units:  # the LSTM reads h of [h; c]: a zero block for c keeps the gradient dense
                w_out = torch.cat([w_out, w_out.new_zeros(*w_out.shape[:2], size - self.units)], dim=2)
            out = torch.baddbmm(b_out.unsqueeze(1), flat, w_out.transpose(1, 2))
        else:  # (O, H) x (H, T B): the narrow operand first, faster in BLAS than (T B, H) x (H, O)
            out = torch.baddbmm(b_out.unsqueeze(2), w_out, flat[..., : self.units].transpose(1, 2)).transpose(1, 2)
        return out.view(n, steps, batch, -1)

    @staticmethod
    def _chunk_steps(width: int, batch: int, steps: int) -> int:
        """Steps run at once: at most :data:`CHUNK_ELEMENTS` drive entries ``(steps, batch, width)`` per
        network, in chunks of equal length (the last one shorter)."""
        most = max(1, CHUNK_ELEMENTS // max(1, batch * width))
        return math.ceil(steps / math.ceil(steps / most)) if steps else 1

    def cell(self, index: int) -> RecurrentCell:
        """Network ``index``'s cell as a :class:`~lfads.population.cells.RecurrentCell` (a copy)."""
        params = {k: v[index] for k, v in self.parameter_dict().items()}
        return RecurrentCell(self.arch, params["weight_ih"].shape[1], self.units, params=params)

    def readout(self, index: int) -> tuple[Tensor, Tensor]:
        """Network ``index``'s readout ``(W (O, H), b (O,))`` (copies); it reads the first ``H`` state entries."""
        return self.readout_weight[index].detach().clone(), self.readout_bias[index].detach().clone()


def masked_mse(outputs: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Per-network loss :math:`\\sum m (y - y^*)^2 / \\sum m` ``(n,)``.

    ``outputs`` ``(n, B, T, O)``; ``targets`` and ``mask`` ``(B, T, O)``.
    """
    err = (outputs - targets) ** 2 * mask
    return err.sum(dim=(1, 2, 3)) / mask.sum().clamp_min(1.0)


@dataclass
class TrainConfig:
    r"""Settings of :func:`train_population`.

    Attributes
    ----------
    max_steps : int
        Adam steps at most.
    batch_size : int
        Trials per step (shared by all networks).
    lr : float
        Adam learning rate at the start.
    lr_half_life : int or None
        Steps over which the learning rate halves (:math:`\eta_t = \eta\, 2^{-t / T_{1/2}}`); constant if ``None``.
    target_loss : float or None
        A network stops once its evaluation loss is below it (``None``: the task's default).
    check_every : int
        Steps between evaluations.
    eval_trials : int
        Size of the fixed evaluation set.
    grad_clip : float
        Per-network gradient norm clip.
    input_noise : float
        Standard deviation of Gaussian noise added to the training inputs.
    identity_candidate : bool
        Initialise the recurrent block of a gated cell's candidate as the vanilla network's
        (:func:`lfads.population.cells.init_parameters`).
    carry_state : bool
        Each batch continues the trials of the previous one (``Task.continue_sample``): the networks
        start from their final states of the previous batch (gradients truncated at the boundary), so
        memories must be held across batches, longer than any one trial. The evaluation then runs three
        continued chunks of trials and scores the last two.
    data_seed : int
        Seed of the training trials (the evaluation set uses ``data_seed + 1000003``).
    rate_penalty : float
        :math:`\beta` of the activity penalty added to each network's training loss,
        :math:`\beta \langle h^2 \rangle` over trials, steps and units (the LSTM's :math:`h`, not :math:`c`).
        The stopping rule scores the task loss alone.
    """

    max_steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-2
    lr_half_life: int | None = None
    target_loss: float | None = None
    check_every: int = 25
    eval_trials: int = 256
    grad_clip: float = 1.0
    input_noise: float = 0.0
    identity_candidate: bool = False
    carry_state: bool = False
    data_seed: int = 0
    rate_penalty: float = 0.0

    def __post_init__(self) -> None:
        where = "TrainConfig"
        for name, low in (("max_steps", 0), ("batch_size", 1), ("check_every", 1), ("eval_trials", 1),
                          ("data_seed", 0)):
            check_setting(where, name, getattr(self, name), low, integer=True)
        for name in ("grad_clip",) + (("lr_half_life",) if self.lr_half_life is not None else ()):
            check_setting(where, name, getattr(self, name), 0.0, strict=True)
        for name in ("lr", "input_noise", "rate_penalty") + (("target_loss",) if self.target_loss is not None else ()):
            check_setting(where, name, getattr(self, name), 0.0)


@dataclass
class PopulationFit:
    """A trained population of one architecture.

    Attributes
    ----------
    arch : str
        Architecture.
    seeds : np.ndarray
        ``(N,)`` initialisation seeds.
    model : StackedRNN
        The networks (evaluation mode).
    losses : np.ndarray
        ``(steps, N)`` training loss per step; NaN once a network has stopped.
    eval_steps : np.ndarray
        ``(checks,)`` the steps after which the evaluation ran.
    eval_losses : np.ndarray
        ``(checks, N)`` evaluation losses; NaN once a network has stopped.
    reached : np.ndarray
        ``(N,)`` bool: the network reached ``target_loss``.
    stop_step : np.ndarray
        ``(N,)`` steps trained (``max_steps`` for networks that never reached the target).
    final_loss : np.ndarray
        ``(N,)`` evaluation loss of the final weights.
    target_loss : float
        The target.
    wall_time : float
        Seconds.
    config : TrainConfig
        Settings.
    """

    arch: str
    seeds: np.ndarray
    model: StackedRNN
    losses: np.ndarray
    eval_steps: np.ndarray
    eval_losses: np.ndarray
    reached: np.ndarray
    stop_step: np.ndarray
    final_loss: np.ndarray
    target_loss: float
    wall_time: float
    config: TrainConfig = field(default_factory=TrainConfig)


def _clip_per_network(params: list[nn.Parameter], max_norm: float) -> None:
    """Scale each network's gradient (rows of the leading axis, across all tensors) to norm at most ``max_norm``."""
    sq = sum(p.grad.pow(2).flatten(1).sum(1) for p in params)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.view(-1, *([1] * (p.grad.ndim - 1))))


def carried_loss(run: Callable[[Tensor, Any], tuple[Tensor, Any]], chunks: list[TaskData]) -> Tensor:
    """The evaluation loss: ``chunks`` run one after the other with the state carried, the first one scored
    only when it is the only one; :func:`masked_mse` ``(n,)`` averaged over the scored chunks.

    ``run(inputs, state)`` returns the outputs ``(n, B, T, O)`` and the state to carry (``state`` is ``None``
    for the first chunk).
    """
    with torch.no_grad():
        state, total = None, 0.0
        for k, data in enumerate(chunks):
            out, state = run(data.inputs, state)
            if k > 0 or len(chunks) == 1:
                total = total + masked_mse(out, data.targets, data.mask)
        return total / max(1, len(chunks) - 1)


def _evaluate(model: StackedRNN, chunks: list[TaskData], networks: Tensor) -> Tensor:
    """:func:`carried_loss` of ``networks`` ``(n,)``."""

    def run(x: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        out, states = model(x, networks, h0=h)
        return out, states[:, :, -1]

    return carried_loss(run, chunks)


def training_setup(
    params: list[nn.Parameter], task: Task, config: TrainConfig
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR, torch.Generator, list[TaskData]]:
    """What training by ``config`` starts from: Adam on ``params`` with the learning rate
    :math:`\\eta\\, 2^{-t / T_{1/2}}`, the generator of the training trials (seeded by ``data_seed``) and the
    evaluation chunks (one, or three continued ones with ``carry_state``; seeded by ``data_seed + 1000003``)."""
    opt = torch.optim.Adam(params, lr=config.lr)
    half_life = config.lr_half_life
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 if not half_life else 0.5 ** (t / half_life))
    gen = torch.Generator().manual_seed(int(config.data_seed))
    eval_gen = torch.Generator().manual_seed(int(config.data_seed) + _EVAL_SEED_OFFSET)
    eval_data = [sample_batch(task, config.eval_trials, eval_gen, None)]
    for _ in range(2 if config.carry_state else 0):
        eval_data.append(sample_batch(task, config.eval_trials, eval_gen, eval_data[-1]))
    return opt, sched, gen, eval_data


def sample_batch(task: Task, n: int, gen: torch.Generator, previous: TaskData | None) -> TaskData:
    """``n`` fresh trials of ``task``, or with ``previous`` the trials that continue them."""
    if previous is None:
        return task.sample(n, gen)
    if task.continue_sample is None:
        raise LFADSDataError(
            f"TrainConfig.carry_state: task {task.name!r} has no continuation of its trials; train it with "
            "carry_state=False."
        )
    return task.continue_sample(n, gen, previous)


def train_population(
    task: Task,
    arch: str,
    seeds: Sequence[int],
    units: int = 64,
    config: TrainConfig | None = None,
    progress: bool = False,
) -> PopulationFit:
    """Train ``len(seeds)`` networks of one architecture at once on ``task`` (module docstring).

    Parameters
    ----------
    task : Task
        From :func:`lfads.population.tasks.get_task`.
    arch : str
        Architecture.
    seeds : sequence of int
        One initialisation seed per network.
    units : int
        ``H``.
    config : TrainConfig, optional
        Settings (defaults of :class:`TrainConfig`).
    progress : bool
        Show a progress bar over the steps (with the networks still training and their median evaluation loss).

    Returns
    -------
    PopulationFit
    """
    config = config or TrainConfig()
    target = task.target_loss if config.target_loss is None else float(config.target_loss)
    start = time.perf_counter()
    model = StackedRNN.initialize(arch, seeds, units, task.n_inputs, task.n_outputs, config.identity_candidate)
    params = list(model.parameters())
    opt, sched, gen, eval_data = training_setup(params, task, config)
    n = model.n_networks
    active = torch.ones(n, dtype=torch.bool)
    held = [p.detach().clone() for p in params]
    stop_step = np.full(n, config.max_steps, dtype=np.int64)
    losses, eval_steps, eval_losses = [], [], []
    data: TaskData | None = None
    carried = torch.zeros(n, config.batch_size, model.state_size)
    bar = tqdm(total=config.max_steps, desc=f"training {n} {arch}", unit="step", disable=not progress, leave=False)
    for step in range(config.max_steps):
        bar.update()
        idx = active.nonzero().squeeze(1)
        data = sample_batch(task, config.batch_size, gen, data if config.carry_state else None)
        x = data.inputs
        if config.input_noise > 0:
            x = x + config.input_noise * torch.randn(x.shape, generator=gen)
        everyone = idx.numel() == n  # all networks train: no gather of their parameters
        h0 = (carried.clone() if everyone else carried[idx]) if config.carry_state else None
        out, states = model(x, None if everyone else idx, h0=h0)
        if config.carry_state:
            carried[idx] = states[:, :, -1].detach()
        loss = masked_mse(out, data.targets, data.mask)
        objective = loss
        if config.rate_penalty > 0:
            objective = loss + config.rate_penalty * states[..., : model.units].pow(2).mean(dim=(1, 2, 3))
        opt.zero_grad(set_to_none=False)
        objective.sum().backward()
        _clip_per_network(params, config.grad_clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            stopped = ~active
            if stopped.any():
                for p, h in zip(params, held):
                    p[stopped] = h[stopped]
        row = np.full(n, np.nan)
        row[idx.numpy()] = loss.detach().numpy()
        losses.append(row)
        if (step + 1) % config.check_every == 0 or step + 1 == config.max_steps:
            ev = _evaluate(model, eval_data, idx)
            row = np.full(n, np.nan)
            row[idx.numpy()] = ev.numpy()
            eval_steps.append(step + 1)
            eval_losses.append(row)
            bar.set_postfix_str(f"{idx.numel()} of {n} training, median loss {np.nanmedian(row):.3g}", refresh=False)
            done = idx[ev < target]
            if done.numel():
                active[done] = False
                stop_step[done.numpy()] = step + 1
                with torch.no_grad():
                    for p, h in zip(params, held):
                        h[done] = p[done]
            if not active.any():
                break
    bar.close()
    final = _evaluate(model, eval_data, torch.arange(n)).numpy()
    return PopulationFit(
        arch=arch,
        seeds=np.asarray(list(seeds), dtype=np.int64),
        model=model.eval(),
        losses=np.asarray(losses).reshape(-1, n),
        eval_steps=np.asarray(eval_steps, dtype=np.int64),
        eval_losses=np.asarray(eval_losses).reshape(-1, n),
        reached=~active.numpy(),
        stop_step=stop_step,
        final_loss=final,
        target_loss=target,
        wall_time=time.perf_counter() - start,
        config=replace(config),
    )


def train_seed_loop(
    task: Task, arch: str, seeds: Sequence[int], units: int = 64, config: TrainConfig | None = None
) -> list[PopulationFit]:
    """The same networks trained one after the other (a Python loop over seeds), one fit each."""
    return [train_population(task, arch, [seed], units, config) for seed in seeds]
