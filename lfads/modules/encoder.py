"""Encoders: bidirectional GRUs that read the (read-in) data.

.. math::

    [\\overrightarrow{e}_T, \\overleftarrow{e}_1] = \\mathrm{BiGRU}_{ic}(x_{1:T}),\\quad
    (m_{ic}, \\log s^2_{ic}) = W_{ic}\\,[\\overrightarrow{e}_T; \\overleftarrow{e}_1] + b_{ic}

    \\tilde e_t = [\\overrightarrow{e}^{ci}_{t - \\ell}; \\overleftarrow{e}^{ci}_{t + \\ell}]
    \\quad (\\ell = \\text{ci\\_lag},\\ \\text{zero outside the sequence})

The IC encoder sees all ``encod_seq_len`` bins; the controller-input (CI)
encoder skips the first ``ic_enc_seq_len`` bins (seen by the IC encoder only).
Its outputs are zero over those leading bins and over forward-prediction bins,
so the controller has no information there. Both encoders keep their
parameters in ``nn.GRU`` modules (with learned initial states); by default all
four directions are stepped together by :class:`lfads.modules.recurrence.GRUSequence`
(input projections computed for every bin in one matrix product, hand-written
backward); the ``reference`` recurrence backend (:mod:`lfads.runtime`) runs ``nn.GRU`` itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lfads.modules.dropout import FastDropout
from lfads.modules.recurrence import fused_loops, gru_sequence


class BidirectionalGRUEncoder(nn.Module):
    """``nn.GRU(bidirectional=True)`` with a learned initial state.

    Input ``(batch, time, input_dim)``; outputs ``(batch, time, 2 * hidden_dim)`` and
    the final states ``(batch, 2 * hidden_dim)`` (forward end, backward start).
    """

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.h0 = nn.Parameter(torch.zeros(2, 1, hidden_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h0 = self.h0.expand(-1, x.shape[0], -1).contiguous()
        out, h_n = self.gru(x, h0)
        return out, torch.cat([h_n[0], h_n[1]], dim=-1)

    def direction_params(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """``(w_ih, w_hh, b_ih, b_hh)`` of the forward and the backward direction."""
        g = self.gru
        return [
            (g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0),
            (g.weight_ih_l0_reverse, g.weight_hh_l0_reverse, g.bias_ih_l0_reverse, g.bias_hh_l0_reverse),
        ]


def run_bidirectional(encoders: list[BidirectionalGRUEncoder], x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Run bidirectional encoders of equal hidden size on the same input, all directions in one loop.

    Returns, per encoder, the outputs ``(batch, time, 2 * hidden)`` and the final states ``(batch, 2 * hidden)``
    exactly as :meth:`BidirectionalGRUEncoder.forward` would.
    """
    batch, n_steps, _ = x.shape
    n_enc = len(encoders)
    # Groups: the forward directions of all encoders, then their backward directions. The backward
    # directions read the time-reversed input, so no gate tensor is ever flipped or re-stacked.
    fwd_params, bwd_params = (list(d) for d in zip(*(enc.direction_params() for enc in encoders)))
    hidden = fwd_params[0][1].shape[1]
    x_tm = x.transpose(0, 1)  # (time, batch, input): transposing the narrow input is cheap

    def gates_of(params, inp):
        g = nn.functional.linear(inp, torch.cat([p[0] for p in params]), torch.cat([p[2] for p in params]))
        return g.view(n_steps, batch, n_enc, 3 * hidden).transpose(1, 2)

    gates = torch.cat([gates_of(fwd_params, x_tm), gates_of(bwd_params, x_tm.flip(0))], 1)
    h0 = torch.cat([enc.h0[i : i + 1] for i in (0, 1) for enc in encoders]).expand(-1, batch, -1)
    w_hh = torch.stack([p[1] for p in fwd_params + bwd_params])
    b_hh = torch.stack([p[3] for p in fwd_params + bwd_params])
    states = gru_sequence(gates, h0, w_hh, b_hh)  # (time, groups, batch, hidden)
    results = []
    for e in range(n_enc):
        fwd, bwd = states[:, e], states[:, n_enc + e]
        out = torch.cat([fwd, bwd.flip(0)], -1).transpose(0, 1)
        results.append((out, torch.cat([fwd[-1], bwd[-1]], -1)))
    return results


class Encoder(nn.Module):
    """IC and CI encoders plus the IC posterior.

    Parameters
    ----------
    input_dim : int
        Neurons (or read-in dimensions) seen by the encoders.
    ic_enc_dim, ci_enc_dim : int
        Hidden size of each direction of the IC / CI encoder GRUs.
    ic_dim : int
        Size of the initial condition.
    use_ci : bool
        Whether to build the CI encoder (False in autonomous mode).
    ic_enc_seq_len : int
        Leading bins seen only by the IC encoder.
    ci_lag : int
        Lag ``l`` between the CI encodings and the controller step that reads them.
    recon_seq_len : int
        Total bins generated (``encod_seq_len`` plus forward-prediction bins).
    dropout_rate : float
        Dropout on the encoder outputs.
    ic_post_var_min : float
        Floor added to the IC posterior variance.
    """

    def __init__(
        self,
        input_dim: int,
        ic_enc_dim: int,
        ci_enc_dim: int,
        ic_dim: int,
        use_ci: bool,
        ic_enc_seq_len: int,
        ci_lag: int,
        recon_seq_len: int,
        dropout_rate: float,
        ic_post_var_min: float,
    ) -> None:
        super().__init__()
        self.ic_enc = BidirectionalGRUEncoder(input_dim, ic_enc_dim)
        self.ic_linear = nn.Linear(2 * ic_enc_dim, 2 * ic_dim)
        self.ci_enc = BidirectionalGRUEncoder(input_dim, ci_enc_dim) if use_ci else None
        self.ci_enc_dim = ci_enc_dim
        self.ic_enc_seq_len = ic_enc_seq_len
        self.ci_lag = ci_lag
        self.recon_seq_len = recon_seq_len
        self.dropout = FastDropout(dropout_rate)
        self.ic_post_var_min = ic_post_var_min

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``x``: ``(batch, encod_seq_len, input_dim)``.

        Returns IC posterior mean and std ``(batch, ic_dim)`` and CI encodings
        ``(batch, recon_seq_len, 2 * ci_enc_dim)`` (``None`` without a controller).
        """
        ci_out = None
        fused = fused_loops()  # the recurrence backend (lfads.runtime) is not "reference"
        if not fused:
            _, h_ic = self.ic_enc(x)
        elif self.ci_enc is not None and self.ic_enc_seq_len == 0 and self.ci_enc_dim == self.ic_enc.h0.shape[-1]:
            (_, h_ic), (ci_out, _) = run_bidirectional([self.ic_enc, self.ci_enc], x)
        else:
            ((_, h_ic),) = run_bidirectional([self.ic_enc], x)
        ic_mean, ic_logvar = self.ic_linear(self.dropout(h_ic)).chunk(2, dim=-1)
        ic_std = torch.sqrt(torch.exp(ic_logvar) + self.ic_post_var_min)
        if self.ci_enc is None:
            return ic_mean, ic_std, None
        batch, t_enc = x.shape[:2]
        if ci_out is None:
            ci_x = x[:, self.ic_enc_seq_len :]
            ci_out = run_bidirectional([self.ci_enc], ci_x)[0][0] if fused else self.ci_enc(ci_x)[0]
        fwd, bwd = ci_out[..., : self.ci_enc_dim], ci_out[..., self.ci_enc_dim :]
        lag = self.ci_lag
        if lag > 0:
            pad = fwd.new_zeros(batch, lag, self.ci_enc_dim)
            fwd = torch.cat([pad, fwd[:, :-lag]], dim=1)
            bwd = torch.cat([bwd[:, lag:], pad], dim=1)
        ci = self.dropout(torch.cat([fwd, bwd], dim=-1))
        lead = self.ic_enc_seq_len
        trail = self.recon_seq_len - t_enc
        if lead or trail:
            ci = nn.functional.pad(ci, (0, 0, lead, trail))
        return ic_mean, ic_std, ci
