"""The LFADS LightningModule: read-in, encoders, decoder, read-out and the ELBO.

Generative model for a trial of session ``s`` (Sussillo et al. 2016; Pandarinath et al. 2018):

.. math::

    z &\\sim \\mathcal N(\\mu_z, \\sigma^2_z I) & \\text{(initial condition, ``ic_dim``)} \\\\
    u_{1:T} &\\sim \\mathrm{AR}(1) & \\text{(inferred inputs, ``co_dim``)} \\\\
    g_0 = W_{g_0} z,\\ g_t &= \\mathrm{GRU}_{gen}([u_t; v_t], g_{t-1}) & \\text{(generator, ``gen_dim``)} \\\\
    f_t &= \\bar W_{fac}\\, g_t & \\text{(factors, ``fac_dim``)} \\\\
    x_{t,n} &\\sim p\\big(x \\mid \\theta_{t,n}\\big),\\
        \\theta_t = W^{out}_s f_t + b^{out}_s & \\text{(e.g. Poisson rates)}

Inference: bidirectional GRU encoders read the (read-in) spikes and give the
Gaussian posterior ``q(z | x)`` and, through the controller, ``q(u_t | x)``.
Training minimizes, per reconstructed element,

.. math::

    \\frac{1}{T N_s}\\Big( -\\log p(x \\mid z, u)
        + \\beta(e)\\,[\\lambda_{ic} \\mathrm{KL}_{ic} + \\lambda_{co} \\mathrm{KL}_{co}] \\Big)
    + \\mathcal L_{L2}

with the KL weight ``beta`` and the L2 weight ramped over epochs (:meth:`LFADS.ramp_weights`).
The smoothed validation costs, the NLB validation metrics and the checkpoint choice are
:mod:`lfads.callbacks`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from lfads.data.batch import SessionBatch, observed_mean
from lfads.hparams import check_hyperparameters
from lfads.modules.augmentations import coordinated_dropout_masks
from lfads.modules.decoder import Decoder
from lfads.modules.dropout import FastDropout
from lfads.modules.encoder import Encoder
from lfads.modules.jslds import JSLDS, relative_error
from lfads.modules.likelihoods import make_likelihood
from lfads.modules.priors import AutoregressivePrior, MultivariateNormalPrior
from lfads.modules.readin_readout import ReadIn, ReadOut
from lfads.modules.regularizers import linear_ramp, recurrent_l2


class SessionOutput(NamedTuple):
    """Model outputs for one session's batch; time axes have ``recon_seq_len`` bins."""

    rates: Tensor  # (batch, time, recon_neurons): mean of the likelihood
    params: Tensor  # (batch, time, n_params, recon_neurons): likelihood parameters
    factors: Tensor  # (batch, time, fac_dim)
    gen_states: Tensor  # (batch, time, gen_dim)
    inferred_inputs: Tensor  # (batch, time, co_dim): inputs that drove the generator
    co_means: Tensor  # (batch, time, co_dim): posterior means of the inferred inputs
    co_stds: Tensor  # (batch, time, co_dim)
    ic_mean: Tensor  # (batch, ic_dim): IC posterior
    ic_std: Tensor  # (batch, ic_dim)
    ic_sample: Tensor  # (batch, ic_dim): the IC that seeded this pass
    gen_init: Tensor  # (batch, gen_dim): initial generator state g_0
    gen_inputs: Tensor  # (batch, time, co_dim + ext_input_dim): the generator's inputs [u_t; v_t]


class Encoding(NamedTuple):
    """Encoder outputs for a batch stacked over sessions: everything the generator needs besides noise."""

    ic_mean: Tensor  # (batch, ic_dim): IC posterior mean
    ic_std: Tensor  # (batch, ic_dim): IC posterior standard deviation
    ci: Tensor | None  # (batch, time, ci_dim): controller-input encodings (None without a controller)
    ext: Tensor  # (batch, time, ext_input_dim): external inputs
    sessions: tuple[int, ...]  # session index of each block of rows, in order
    sizes: tuple[int, ...]  # rows per session


class StepCosts(NamedTuple):
    """Costs of a batch, each a scalar tensor; recon and KL terms are per reconstructed element."""

    recon: Tensor  # negative log-likelihood (weighted on the held-in encoder elements)
    kl_ic: Tensor  # KL of the IC posterior from its prior
    kl_co: Tensor  # KL of the inferred-input posterior from its AR(1) prior (0 without a controller)
    sv_nll: Tensor  # summed NLL of the elements held out for sample validation
    sv_count: Tensor  # number of those elements


class RampWeights(NamedTuple):
    """Weights in [0, 1] of the ramped costs at the current epoch."""

    kl: float
    l2: float
    jslds: float


def _session_mean(terms) -> Tensor:
    terms = list(terms)
    return sum(terms) / len(terms)


def _mean_costs(per_session: list[StepCosts]) -> StepCosts:
    """Session means of the recon and KL costs; sums of the sample-validation NLL and element counts."""
    recon, kl_ic, kl_co, sv_nll, sv_count = zip(*per_session)
    return StepCosts(_session_mean(recon), _session_mean(kl_ic), _session_mean(kl_co), sum(sv_nll), sum(sv_count))


def _encoder_mask(batch: SessionBatch) -> Tensor | None:
    """``(batch, T_enc, N_in)`` bool observed elements of the encoder data: ``encod_mask``, else the encoder
    block of ``recon_mask``; ``None`` when the batch has no mask."""
    if batch.encod_mask is not None or batch.recon_mask is None:
        return batch.encod_mask
    t_enc, n_in = batch.encod_data.shape[1:]
    return batch.recon_mask[:, :t_enc, :n_in]


class LFADS(pl.LightningModule):
    """LFADS sequential variational autoencoder.

    Data dimensions (``encod_data_dims`` ... ``ext_input_dim``) are filled in from
    the data module by ``lfads fit``; the rest are hyperparameters.

    Parameters
    ----------
    encod_data_dims : list[int]
        Neurons seen by the encoders, per session.
    recon_data_dims : list[int]
        Neurons reconstructed (held-in then held-out), per session.
    encod_seq_len : int
        Bins seen by the encoders.
    recon_seq_len : int
        Bins generated and reconstructed (``encod_seq_len`` + forward-prediction bins).
    ext_input_dim : int
        Size of the external inputs (0 for none).
    readin_dim : int or None
        Shared read-in size; None means no read-in (single session, or sessions with equal neuron counts).
    ic_enc_dim, ci_enc_dim : int
        Hidden size of each direction of the IC and CI encoders.
    ic_enc_seq_len : int
        Leading bins seen only by the IC encoder.
    ci_lag : int
        Lag between the CI encodings and the controller.
    con_dim : int
        Controller size; 0 (or ``co_dim = 0``) for an autonomous generator.
    co_dim : int
        Number of inferred inputs.
    ic_dim : int
        Initial-condition size.
    gen_dim : int
        Generator size.
    fac_dim : int
        Number of factors.
    reconstruction : str
        Likelihood: ``poisson``, ``gaussian``, ``gamma`` or ``zero_inflated_gamma``.
    dropout_rate : float
        Dropout on encoder inputs and outputs, the IC sample and generator states.
    cd_rate : float
        Coordinated-dropout rate (0 disables it).
    cell_clip : float
        State clip of the controller and generator.
    ic_post_var_min : float
        Variance floor of the IC posterior.
    ic_prior_var : float
        Variance of the IC prior (its mean is learned).
    co_prior_tau : float
        Initial AR(1) timescale of the inferred-input prior, in bins.
    co_prior_var : float
        Initial AR(1) process variance.
    kl_ic_scale, kl_co_scale : float
        Weights of the two KL terms.
    kl_start_epoch, kl_increase_epoch : int
        KL ramp start and length, in epochs.
    l2_gen_scale, l2_con_scale, l2_ic_enc_scale, l2_ci_enc_scale : float
        L2 weights on recurrent kernels.
    l2_start_epoch, l2_increase_epoch : int
        L2 ramp start and length, in epochs.
    lr_init : float
        Adam learning rate.
    lr_adam_beta1, lr_adam_beta2, lr_adam_epsilon, weight_decay : float
        Adam(W) settings.
    lr_scheduler : bool
        Reduce the learning rate when ``valid/recon_smth`` plateaus (logged by
        :class:`lfads.callbacks.SmoothedValidation`, which the Trainer must have). The schedule is held
        while the KL/L2 ramps run (the cost rises as the penalties phase in, which is not a plateau).
    lr_decay, lr_patience, lr_stop : float, int, float
        Plateau schedule factor, patience (epochs) and minimum learning rate.
    lr_cosine_epochs : int
        If > 0, anneal the learning rate instead along a half cosine from ``lr_init`` at epoch 0 to
        ``lr_stop`` at this epoch, then hold it. Suits time-boxed fits (``trainer.max_time``): set it to
        about the number of epochs the budget allows. Not combinable with ``lr_scheduler``.
    smoothing : float
        Weight of the newest epoch in the exponential averages of the validation costs kept by
        :class:`lfads.callbacks.SmoothedValidation`: ``valid/recon_smth`` (reconstruction cost; the plateau
        schedule and population-based training use it, since it stays comparable when cost weights
        change) and ``valid/loss_smth`` (the whole objective). Their ``..._ramped`` versions are ``inf``
        until :meth:`ramps_complete`; ``lfads fit`` keeps the best checkpoint by ``valid/loss_smth_ramped``
        (see :func:`lfads.callbacks.default_callbacks`).
    jslds : bool
        Co-train a Jacobian-switching linear dynamical system with the generator (see :mod:`lfads.modules.jslds`).
    jslds_hidden_dim : int
        Hidden size of the expansion-point network.
    jslds_fp_scale, jslds_approx_scale, jslds_recon_scale : float
        Weights of the fixed-point, approximation and JSLDS reconstruction costs. The reconstruction
        cost is on the same per-entry scale as the LFADS one; ``configs/jslds.yaml`` weighs it twice
        as much (measured best on the chaotic input-pulse data).
    jslds_start_epoch, jslds_increase_epoch : int
        Linear ramp of the three JSLDS costs (like the KL ramp; 0, 0 = full weight from the start).
    jslds_step_fraction : float
        Fraction of time steps, drawn at random for each training batch, on which the JSLDS costs are
        evaluated (unbiased estimates of the per-step means at a fraction of the cost); validation
        always uses every step.
    """

    def __init__(
        self,
        encod_data_dims: list[int],
        recon_data_dims: list[int],
        encod_seq_len: int,
        recon_seq_len: int,
        ext_input_dim: int = 0,
        readin_dim: int | None = None,
        ic_enc_dim: int = 64,
        ci_enc_dim: int = 64,
        ic_enc_seq_len: int = 0,
        ci_lag: int = 1,
        con_dim: int = 64,
        co_dim: int = 4,
        ic_dim: int = 64,
        gen_dim: int = 200,
        fac_dim: int = 100,
        reconstruction: str = "poisson",
        dropout_rate: float = 0.3,
        cd_rate: float = 0.0,
        cell_clip: float = 5.0,
        ic_post_var_min: float = 1e-4,
        ic_prior_var: float = 0.1,
        co_prior_tau: float = 10.0,
        co_prior_var: float = 0.1,
        kl_ic_scale: float = 1.0,
        kl_co_scale: float = 1.0,
        kl_start_epoch: int = 0,
        kl_increase_epoch: int = 80,
        l2_gen_scale: float = 0.0,
        l2_con_scale: float = 0.0,
        l2_ic_enc_scale: float = 0.0,
        l2_ci_enc_scale: float = 0.0,
        l2_start_epoch: int = 0,
        l2_increase_epoch: int = 80,
        lr_init: float = 4e-3,
        lr_adam_beta1: float = 0.9,
        lr_adam_beta2: float = 0.999,
        lr_adam_epsilon: float = 1e-8,
        weight_decay: float = 0.0,
        lr_scheduler: bool = False,
        lr_decay: float = 0.95,
        lr_patience: int = 6,
        lr_stop: float = 1e-5,
        lr_cosine_epochs: int = 0,
        smoothing: float = 0.3,
        jslds: bool = False,
        jslds_hidden_dim: int = 128,
        jslds_fp_scale: float = 1.0,
        jslds_approx_scale: float = 1.0,
        jslds_recon_scale: float = 1.0,
        jslds_start_epoch: int = 0,
        jslds_increase_epoch: int = 0,
        jslds_step_fraction: float = 1.0,
    ) -> None:
        check_hyperparameters(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__()
        self.save_hyperparameters()
        if len(encod_data_dims) != len(recon_data_dims):
            raise ValueError("encod_data_dims and recon_data_dims must list the same sessions.")
        for n_in, n_rec in zip(encod_data_dims, recon_data_dims):
            if n_rec < n_in:
                raise ValueError(f"recon_data_dims ({n_rec}) must be >= encod_data_dims ({n_in}) for every session.")
        if recon_seq_len < encod_seq_len:
            raise ValueError(f"recon_seq_len ({recon_seq_len}) must be >= encod_seq_len ({encod_seq_len}).")
        if lr_cosine_epochs < 0 or (lr_cosine_epochs > 0 and lr_scheduler):
            raise ValueError(
                f"lr_cosine_epochs ({lr_cosine_epochs}) must be >= 0, and > 0 only with lr_scheduler false "
                "(the cosine and plateau schedules are alternatives)."
            )
        if not 0 <= ic_enc_seq_len < encod_seq_len:
            raise ValueError(f"ic_enc_seq_len must be in [0, encod_seq_len), got {ic_enc_seq_len}.")
        self.likelihood = make_likelihood(reconstruction)
        self.readin = ReadIn(encod_data_dims, readin_dim)
        use_con = co_dim > 0 and con_dim > 0
        self.encoder = Encoder(
            self.readin.out_dim,
            ic_enc_dim,
            ci_enc_dim,
            ic_dim,
            use_con,
            ic_enc_seq_len,
            ci_lag,
            recon_seq_len,
            dropout_rate,
            ic_post_var_min,
        )
        self.decoder = Decoder(
            ic_dim, gen_dim, con_dim, co_dim, 2 * ci_enc_dim, ext_input_dim, fac_dim, cell_clip, dropout_rate,
        )
        self.readout = ReadOut(fac_dim, recon_data_dims, self.likelihood.n_params)
        self.ic_prior = MultivariateNormalPrior(ic_dim, ic_prior_var)
        self.co_prior = AutoregressivePrior(co_dim, co_prior_tau, co_prior_var) if use_con else None
        self.input_dropout = FastDropout(dropout_rate)
        if not 0.0 < jslds_step_fraction <= 1.0:
            raise ValueError(f"jslds_step_fraction must be in (0, 1]; got {jslds_step_fraction}.")
        self.jslds = JSLDS(gen_dim, jslds_hidden_dim) if jslds else None

    # ------------------------------------------------------------------ forward
    @property
    def n_sessions(self) -> int:
        return len(self.hparams.encod_data_dims)

    def encode(self, encod: dict[int, Tensor], ext_input: dict[int, Tensor] | None = None) -> Encoding:
        """Read in and encode a batch from each session: the posteriors of the IC and the controller inputs.

        Parameters
        ----------
        encod : dict[int, Tensor]
            Session index -> encoder data ``(batch, encod_seq_len, encod_neurons)``.
        ext_input : dict[int, Tensor], optional
            Session index -> external inputs ``(batch, recon_seq_len, ext_input_dim)``.

        Returns
        -------
        Encoding
            The sessions' batches stacked in the order of ``encod``.
        """
        sessions = list(encod)
        sizes = [encod[s].shape[0] for s in sessions]
        x = torch.cat([self.readin(s, encod[s]) for s in sessions], 0)
        x = self.input_dropout(x)
        batch = x.shape[0]
        if ext_input is None or self.hparams.ext_input_dim == 0:
            ext = x.new_zeros(batch, self.hparams.recon_seq_len, self.hparams.ext_input_dim)
        else:
            ext = torch.cat([ext_input[s] for s in sessions], 0).to(x.dtype)
        ic_mean, ic_std, ci = self.encoder(x)
        return Encoding(ic_mean, ic_std, ci, ext, tuple(sessions), tuple(sizes))

    def decode(
        self,
        encoding: Encoding,
        sample: bool = True,
        ic_noise: Tensor | None = None,
        co_noise: Tensor | None = None,
    ) -> dict[int, SessionOutput]:
        """Run the generator from an :class:`Encoding` and read out each session's rates.

        With ``sample``, the IC is :math:`z = \\mu_z + \\sigma_z \\epsilon` and the inferred inputs
        :math:`u_t = \\mu_t + \\sigma_t \\eta_t` with standard normal :math:`\\epsilon` (``ic_noise``,
        ``(batch, ic_dim)``) and :math:`\\eta` (``co_noise``, ``(time, batch, co_dim)``), drawn here (IC noise
        first) when not given; otherwise the posterior means are used.
        """
        ic_mean, ic_std = encoding.ic_mean, encoding.ic_std
        if sample:
            ic = ic_mean + ic_std * (torch.randn_like(ic_std) if ic_noise is None else ic_noise.to(ic_std))
        else:
            ic = ic_mean
        ext = encoding.ext
        dec = self.decoder(ic, encoding.ci, ext, sample=sample, co_noise=co_noise)
        outputs = {}
        offset = 0
        for s, n in zip(encoding.sessions, encoding.sizes):
            sl = slice(offset, offset + n)
            offset += n
            params = self.readout(s, dec.factors[sl]).float()
            outputs[s] = SessionOutput(
                rates=self.likelihood.mean(params),
                params=params,
                factors=dec.factors[sl],
                gen_states=dec.gen_states[sl],
                inferred_inputs=dec.inferred_inputs[sl],
                co_means=dec.co_means[sl],
                co_stds=dec.co_stds[sl],
                ic_mean=ic_mean[sl],
                ic_std=ic_std[sl],
                ic_sample=ic[sl],
                gen_init=dec.gen_init[sl],
                gen_inputs=torch.cat([dec.inferred_inputs[sl], ext[sl]], -1),
            )
        return outputs

    def forward(
        self,
        encod: dict[int, Tensor],
        ext_input: dict[int, Tensor] | None = None,
        sample: bool = True,
    ) -> dict[int, SessionOutput]:
        """Run LFADS on a batch from each session: :meth:`decode` of :meth:`encode`.

        Parameters
        ----------
        encod : dict[int, Tensor]
            Session index -> encoder data ``(batch, encod_seq_len, encod_neurons)``.
        ext_input : dict[int, Tensor], optional
            Session index -> external inputs ``(batch, recon_seq_len, ext_input_dim)``.
        sample : bool
            Sample the IC and inferred inputs from their posteriors (True) or use the means.
        """
        return self.decode(self.encode(encod, ext_input), sample=sample)

    # ------------------------------------------------------------------ losses
    def _epoch_progress(self) -> float:
        return float(self.current_epoch)

    def _step(self, batch: dict[int, SessionBatch | None], split: str) -> Tensor:
        """Loss of a batch (see the module docstring), logged under ``split`` (``train`` or ``valid``)."""
        batch = {s: b for s, b in batch.items() if b is not None}
        training = split == "train"
        encod, weights = self._masked_inputs(batch, training)
        out = self(encod, {s: b.ext_input for s, b in batch.items()}, sample=True)
        costs = _mean_costs([self._session_costs(b, out[s], weights[s]) for s, b in batch.items()])
        jslds = self._mean_jslds_costs(batch, out, training)
        ramps = self.ramp_weights()
        l2 = self._l2_cost()
        loss = self._total_loss(costs, l2, jslds, ramps)
        self._log_step(split, batch, loss, costs, l2, jslds, ramps)
        return loss

    def _masked_inputs(
        self, batch: dict[int, SessionBatch], training: bool
    ) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
        r"""Encoder inputs and held-in loss weights ``(batch, encod_seq_len, encod_neurons)`` per session.

        Elements held out for sample validation are hidden in every split (the rest rescaled by the inverse
        kept fraction) and weigh 0; in training, coordinated dropout further hides elements from the
        encoders and counts only the hidden ones in the reconstruction cost.

        Unobserved elements (``batch.encod_mask`` False) are zero-filled, :math:`\tilde x = m \odot x`,
        whatever the data hold there, and not rescaled: the encoder input, hence the posterior
        :math:`q(z, u \mid x_{obs})`, is a function of the observed data only, and the cost of
        :meth:`_session_costs` is the negative ELBO of the observed data under that posterior. Zeros are how
        this model already hides elements (sample validation, coordinated dropout), and the data loaders hold
        0 there too, so sampling sees the same input. A mask channel would tell the encoders which zeros are
        unobserved but would change the read-in's input size (and every checkpoint); it is not used.
        """
        encod, weights = {}, {}
        for s, b in batch.items():
            mask = b.sv_mask
            observed = _encoder_mask(b)
            data = b.encod_data if observed is None else torch.where(observed, b.encod_data, 0.0)
            inp = data * (mask / mask.mean().clamp_min(1e-3))
            weight = mask
            if training and self.hparams.cd_rate > 0:
                in_mask, cd_weight = coordinated_dropout_masks(inp.shape, self.hparams.cd_rate, inp.device)
                inp = inp * in_mask
                weight = weight * cd_weight
            encod[s], weights[s] = inp, weight
        return encod, weights

    def _session_costs(self, batch: SessionBatch, out: SessionOutput, weight: Tensor) -> StepCosts:
        r"""Reconstruction and KL costs of one session per observed element, and its sample-validation NLL sum.

        With :math:`\ell_{btn} = -\log p(x_{btn} \mid \theta_{btn})` (up to terms free of the parameters),
        the mask :math:`m_{btn} \in \{0, 1\}` (``batch.recon_mask``; 1 = observed, all ones without one)
        and :math:`M = \sum_{btn} m_{btn}` observed elements,

        .. math::

            \mathrm{recon} = \frac{1}{M} \sum_{b,t,n} m_{btn}\, w_{btn}\, \ell_{btn}, \qquad
            \mathrm{KL}_{ic} = \frac{1}{M} \sum_b \mathrm{KL}\big(q(z_b \mid x_b) \,\|\, p(z)\big),

        and :math:`\mathrm{KL}_{co}` likewise, where :math:`w` is ``weight`` on the held-in neurons of the
        encoder bins and 1 on held-out neurons and forward-prediction bins. Unobserved elements leave the
        likelihood, and the KL terms are not masked (the posteriors cover the whole trial) but share the
        divisor :math:`M`: the sum is the negative ELBO of the observed data, :math:`-\log p(x_{obs})`'s
        bound, per observed element, so masking keeps the balance of likelihood and KL that the ELBO gives.
        Without a mask :math:`M = B T N` and the costs are computed exactly as for unmasked data. The data at
        unobserved elements enter neither the costs nor their gradients (:meth:`_observed_nll`); they are
        also left out of the sample-validation sums.
        """
        if batch.recon_mask is None:
            nll = self.likelihood.nll(out.params, batch.recon_data, full=False)
            norm = nll.shape[0] * nll.shape[1] * nll.shape[2]
            held = 1.0 - batch.sv_mask
        else:
            nll = self._observed_nll(out.params, batch.recon_data, batch.recon_mask)
            norm = batch.recon_mask.sum().clamp_min(1).to(nll.dtype)
            held = (1.0 - batch.sv_mask) * _encoder_mask(batch)
        t_enc, n_in = batch.encod_data.shape[1:]
        nll_in = nll[:, :t_enc, :n_in]
        recon = (nll.sum() - nll_in.sum() + (nll_in * weight).sum()) / norm
        kl_ic = self.ic_prior.kl(out.ic_mean, out.ic_std).sum() / norm
        if self.co_prior is not None:
            kl_co = self.co_prior.kl(out.co_means, out.co_stds, out.inferred_inputs).sum() / norm
        else:
            kl_co = torch.zeros_like(recon)
        return StepCosts(recon, kl_ic, kl_co, (nll_in.detach() * held).sum(), held.sum())

    def _observed_nll(self, params: Tensor, data: Tensor, mask: Tensor) -> Tensor:
        """Per-element NLL ``(batch, time, neurons)``, 0 where ``mask`` (bool, True = observed) is False.

        The data at unobserved elements are replaced by 1, a value every likelihood accepts (the Gamma needs
        ``x > 0``), before the NLL is taken, so neither the NLL nor its gradient depends on them and no
        non-finite value arises there.
        """
        target = torch.where(mask, data, torch.ones((), dtype=data.dtype, device=data.device))
        return torch.where(mask, self.likelihood.nll(params, target, full=False), 0.0)

    def _mean_jslds_costs(
        self, batch: dict[int, SessionBatch], out: dict[int, SessionOutput], training: bool
    ) -> tuple[Tensor, ...] | None:
        """Session means of :meth:`_jslds_costs` (None without a JSLDS)."""
        if self.jslds is None:
            return None
        per_session = [self._jslds_costs(s, b, out[s], training) for s, b in batch.items()]
        return tuple(_session_mean(terms) for terms in zip(*per_session))

    def ramp_weights(self) -> RampWeights:
        """Weights of the KL, L2 and JSLDS costs at the current epoch (linear ramps from 0 to 1)."""
        hp, epoch = self.hparams, self._epoch_progress()
        return RampWeights(
            kl=linear_ramp(epoch, hp.kl_start_epoch, hp.kl_increase_epoch),
            l2=linear_ramp(epoch, hp.l2_start_epoch, hp.l2_increase_epoch),
            jslds=linear_ramp(epoch, hp.jslds_start_epoch, hp.jslds_increase_epoch),
        )

    def _l2_cost(self) -> Tensor | float:
        """Weighted L2 cost of the recurrent kernels (before its ramp)."""
        hp = self.hparams
        return (
            hp.l2_gen_scale * recurrent_l2(self.decoder.generator)
            + hp.l2_ic_enc_scale * recurrent_l2(self.encoder.ic_enc)
            + hp.l2_ci_enc_scale * recurrent_l2(self.encoder.ci_enc)
            + hp.l2_con_scale * recurrent_l2(getattr(self.decoder, "controller", None))
        )

    def _total_loss(self, costs: StepCosts, l2: Tensor | float, jslds: tuple[Tensor, ...] | None,
                    ramps: RampWeights) -> Tensor:
        """``recon + kl_ramp (s_ic KL_ic + s_co KL_co) + l2_ramp L2`` plus the ramped JSLDS costs."""
        hp = self.hparams
        loss = costs.recon + ramps.kl * (hp.kl_ic_scale * costs.kl_ic + hp.kl_co_scale * costs.kl_co) + ramps.l2 * l2
        if jslds is not None:
            fp, approx, j_recon, _ = jslds
            loss = loss + ramps.jslds * (
                hp.jslds_fp_scale * fp + hp.jslds_approx_scale * approx + hp.jslds_recon_scale * j_recon
            )
        return loss

    def _log_step(self, split: str, batch: dict[int, SessionBatch], loss: Tensor, costs: StepCosts,
                  l2: Tensor | float, jslds: tuple[Tensor, ...] | None, ramps: RampWeights) -> None:
        """Log the step's costs as epoch means reduced over processes (``{split}/loss``, ``/recon``, ...)."""
        n_trials = sum(b.encod_data.shape[0] for b in batch.values())
        log = {"on_step": False, "on_epoch": True, "batch_size": n_trials, "sync_dist": True}
        if jslds is not None:
            for name, value in zip(("fp", "approx", "recon", "rel_err"), jslds):
                self.log(f"{split}/jslds_{name}", value, **log)
        self.log(f"{split}/loss", loss, prog_bar=True, **log)
        self.log(f"{split}/recon", costs.recon, **log)
        self.log(f"{split}/kl_ic", costs.kl_ic, **log)
        self.log(f"{split}/kl_co", costs.kl_co, **log)
        if split == "train":
            self.log("train/l2", l2 if torch.is_tensor(l2) else torch.tensor(float(l2)), **log)
            self.log("hp/kl_ramp", ramps.kl, **log)
            self.log("hp/l2_ramp", ramps.l2, **log)
        else:
            self.log("valid/sv_nll", costs.sv_nll / costs.sv_count.clamp_min(1.0), **log)

    def _jslds_costs(
        self, session: int, batch: SessionBatch, out: SessionOutput, training: bool = False
    ) -> tuple[Tensor, ...]:
        """Fixed-point, approximation and reconstruction costs of the co-trained JSLDS, and its one-step error.

        The reconstruction cost is the mean NLL over the observed elements (all of them without a mask).
        """
        n_steps = out.gen_states.shape[1]
        gen_states, recon, mask, steps = out.gen_states, batch.recon_data, batch.recon_mask, None
        if training and self.hparams.jslds_step_fraction < 1.0:
            k = max(1, round(self.hparams.jslds_step_fraction * n_steps))
            steps = torch.randperm(n_steps, device=gen_states.device)[:k]
            gen_states, recon = gen_states[:, steps], recon[:, steps]
            mask = None if mask is None else mask[:, steps]
        j = self.jslds.one_step(self.decoder.generator, out.gen_states, out.gen_init, out.gen_inputs, steps)
        fp = (j.expansion_images - j.expansion_points).pow(2).mean()
        approx = (gen_states - j.approx_states).pow(2).mean()
        params = self.readout(session, j.approx_states @ self.decoder.factor_weight().t()).float()
        if mask is None:
            j_recon = self.likelihood.nll(params, recon, full=False).mean()
        else:
            j_recon = self._observed_nll(params, recon, mask).sum() / mask.sum().clamp_min(1).to(params.dtype)
        rel = relative_error(j.approx_states, gen_states).mean().detach()
        return fp, approx, j_recon, rel

    @torch.no_grad()
    def jslds_outputs(self, session: int, encod: Tensor, ext_input: Tensor | None = None, sample: bool = False) -> dict:
        """JSLDS quantities for a batch of one session (model must have ``jslds=True``).

        Returns ``(batch, time, dim)`` arrays: ``gen_states``, ``expansion_points``, ``expansion_images``
        (``F(e*, 0)``), ``approx_states`` (one-step), ``rollout_states`` (the JSLDS run on its own from
        ``g_0``), the factors and rates of the nonlinear, one-step and rollout states, and the relative
        errors ``one_step_error`` and ``rollout_error`` ``(batch, time)``.
        """
        if self.jslds is None:
            raise ValueError("This model was trained without a JSLDS; set model.jslds: true to co-train one.")
        out = self({session: encod}, None if ext_input is None else {session: ext_input}, sample=sample)[session]
        cell = self.decoder.generator
        one = self.jslds.one_step(cell, out.gen_states, out.gen_init, out.gen_inputs)
        roll = self.jslds.rollout(cell, out.gen_init, out.gen_inputs)
        fac_w = self.decoder.factor_weight()

        def rates(states: Tensor) -> tuple[Tensor, Tensor]:
            factors = states @ fac_w.t()
            return factors, self.likelihood.mean(self.readout(session, factors).float())

        result = {"gen_states": out.gen_states, "expansion_points": one.expansion_points,
                  "expansion_images": one.expansion_images, "approx_states": one.approx_states,
                  "rollout_states": roll.approx_states, "rollout_expansion_points": roll.expansion_points}
        for name, states in (("", out.gen_states), ("approx_", one.approx_states), ("rollout_", roll.approx_states)):
            result[f"{name}factors"], result[f"{name}rates"] = rates(states)
        result["one_step_error"] = relative_error(one.approx_states, out.gen_states)
        result["rollout_error"] = relative_error(roll.approx_states, out.gen_states)
        return result

    def _has_datamodule(self) -> bool:
        return self._trainer is not None and getattr(self.trainer, "datamodule", None) is not None

    def training_step(self, batch: dict[int, SessionBatch | None], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[int, SessionBatch | None], batch_idx: int) -> Tensor:
        return self._step(batch, "valid")

    @torch.no_grad()
    def posterior_mean_rates(self, batch: dict[int, SessionBatch | None]) -> dict[int, Tensor]:
        """Rates ``(batch, recon_seq_len, recon_neurons)`` per session from the posterior means.

        The encoders see the data as in validation (sample-validation elements hidden, no coordinated
        dropout); the IC and inferred inputs are their posterior means. Scored by
        :class:`lfads.callbacks.ValidationMetrics`.
        """
        batch = {s: b for s, b in batch.items() if b is not None}
        encod, _ = self._masked_inputs(batch, training=False)
        out = self(encod, {s: b.ext_input for s, b in batch.items()}, sample=False)
        return {s: o.rates for s, o in out.items()}

    def ramps_complete(self) -> bool:
        """Whether the current epoch trained with the KL (and any L2 or JSLDS) costs at full weight."""
        hp, ramps = self.hparams, self.ramp_weights()
        l2_used = any(getattr(hp, f"l2_{c}_scale") > 0 for c in ("gen", "con", "ic_enc", "ci_enc"))
        return ramps.kl >= 1.0 and (not l2_used or ramps.l2 >= 1.0) and (not hp.jslds or ramps.jslds >= 1.0)

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Step the plateau schedule only once the ramps are complete (the cosine schedule every epoch)."""
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if not plateau or self.ramps_complete():
            super().lr_scheduler_step(scheduler, metric)

    def configure_optimizers(self):
        hp = self.hparams
        params = list(self.parameters())
        # The fused AdamW kernel updates all parameters in one pass (5x faster than the default on a CPU).
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64) for p in params)
        opt = torch.optim.AdamW(
            params,
            lr=hp.lr_init,
            betas=(hp.lr_adam_beta1, hp.lr_adam_beta2),
            eps=hp.lr_adam_epsilon,
            weight_decay=hp.weight_decay,
            fused=fused or None,
        )
        if hp.lr_cosine_epochs > 0:
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=hp.lr_cosine_epochs, eta_min=hp.lr_stop)
            # Past T_max the closed form would rise again: hold the floor instead.
            hold = torch.optim.lr_scheduler.ConstantLR(opt, factor=hp.lr_stop / hp.lr_init, total_iters=10**9)
            sched = torch.optim.lr_scheduler.SequentialLR(opt, [cosine, hold], milestones=[hp.lr_cosine_epochs])
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if not hp.lr_scheduler:
            return opt
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=hp.lr_decay, patience=hp.lr_patience, min_lr=hp.lr_stop
        )
        # strict=False: in epochs without validation (check_val_every_n_epoch > 1) the schedule waits
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "valid/recon_smth", "strict": False}}

    # ------------------------------------------------------------------ data-dependent set-up
    def setup(self, stage: str) -> None:
        """Check the data suit the likelihood, then initialize read-in (PCR) and read-out biases from it."""
        if not self._has_datamodule():
            return
        dm = self.trainer.datamodule
        if self.likelihood.is_count and hasattr(dm, "require_counts"):
            dm.require_counts()
        if stage == "fit":
            self.init_from_data(dm)

    @torch.no_grad()
    def init_from_data(self, datamodule) -> None:
        """Read-out biases from each session's mean activity; PCR read-in (see :mod:`lfads.modules.readin_readout`).

        Means are over the observed elements where the data have masks (:func:`lfads.data.batch.observed_mean`).
        """
        averaged = []
        for s, session in enumerate(datamodule.sessions):
            train = session.splits["train"]
            if train.recon_mask is None:
                recon = torch.as_tensor(np.asarray(train.recon_data), dtype=torch.float32)
                mean = recon.mean((0, 1))
            else:
                mean = torch.as_tensor(observed_mean(train.recon_data, train.recon_mask, (0, 1)), dtype=torch.float32)
            self.readout.init_bias(s, self.likelihood.init_bias(mean).to(self.device))
            encod = np.asarray(train.encod_data, dtype=np.float64)
            averaged.append(encod.mean(0) if train.encod_mask is None else observed_mean(encod, train.encod_mask, 0))
        self.readin.init_pcr(averaged)
