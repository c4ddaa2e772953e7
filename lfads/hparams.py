"""Range checks of the LFADS hyperparameters, run where they are declared (the top of ``LFADS.__init__``).

A value outside its range would not fail at once: ``fac_dim 0`` trains a model whose rates are constant,
``co_dim 2`` with ``con_dim 0`` trains an autonomous model, ``dropout_rate 1.5`` one that never sees its input,
``lr_init -1`` one that climbs the cost. :func:`check_hyperparameters` refuses them before anything is built;
each message names the setting as written in a config (``model.<name>``) and says what would fix it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from lfads.errors import LFADSConfigError
from lfads.modules.likelihoods import LIKELIHOODS

POSITIVE_INTS: tuple[str, ...] = (
    "encod_seq_len", "recon_seq_len", "ic_enc_dim", "ic_dim", "gen_dim", "fac_dim", "jslds_hidden_dim",
)
"""Sizes for which 0 is meaningless: at least 1."""

NON_NEGATIVE_INTS: tuple[str, ...] = (
    "ext_input_dim", "ci_enc_dim", "con_dim", "co_dim", "ic_enc_seq_len", "ci_lag", "kl_start_epoch",
    "kl_increase_epoch", "l2_start_epoch", "l2_increase_epoch", "jslds_start_epoch", "jslds_increase_epoch",
    "lr_patience", "lr_cosine_epochs",
)
"""Sizes, lags and epoch counts for which 0 has a meaning (none, no lag, no ramp): at least 0."""

UNIT_RATES: tuple[str, ...] = ("dropout_rate", "cd_rate", "lr_adam_beta1", "lr_adam_beta2")
"""Probabilities and moment decays: in [0, 1)."""

NON_NEGATIVE_FLOATS: tuple[str, ...] = (
    "kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale", "l2_ic_enc_scale", "l2_ci_enc_scale",
    "jslds_fp_scale", "jslds_approx_scale", "jslds_recon_scale", "weight_decay", "lr_adam_epsilon", "lr_stop",
)
"""Cost weights and other settings where 0 switches something off: finite and at least 0."""

POSITIVE_FLOATS: tuple[str, ...] = (
    "lr_init", "cell_clip", "ic_post_var_min", "ic_prior_var", "co_prior_tau", "co_prior_var",
)
"""Learning rate, clip, variances and timescales: finite and greater than 0."""

OPEN_CLOSED_UNIT: tuple[str, ...] = ("smoothing", "jslds_step_fraction")
"""Weights and fractions in (0, 1]."""

OPEN_UNIT: tuple[str, ...] = ("lr_decay",)
"""Factors in (0, 1)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(name: str, value: Any, rule: str, fix: str) -> LFADSConfigError:
    return LFADSConfigError(f"model.{name} = {value!r}: {rule}; {fix}.")


def _check_int(name: str, value: Any, low: int) -> None:
    if not _is_int(value):
        raise _fail(name, value, "must be a whole number", f"give an integer >= {low}")
    if value < low:
        meaning = "0 is meaningless for this size" if low == 1 else "it cannot be negative"
        raise _fail(name, value, f"must be >= {low} ({meaning})", f"set model.{name} to {low} or more")


def _check_real(name: str, value: Any, low: float, high: float, low_open: bool, high_open: bool) -> None:
    interval = ("(" if low_open else "[") + f"{low:g}, " + ("inf" if math.isinf(high) else f"{high:g}") + \
        (")" if high_open else "]")
    if not _is_real(value) or not math.isfinite(value):
        raise _fail(name, value, "must be a finite number", f"give a number in {interval}")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        raise _fail(name, value, f"must be in {interval}", f"set model.{name} inside that range")


def _check_dims_lists(hp: dict[str, Any]) -> None:
    encod, recon = hp.get("encod_data_dims"), hp.get("recon_data_dims")
    for name, dims in (("encod_data_dims", encod), ("recon_data_dims", recon)):
        if dims is None:
            continue
        if isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__") or len(dims) == 0:
            raise _fail(name, dims, "must list one neuron count per session", "fill it from the data module "
                        "(lfads fit does) or give a list such as [30]")
        for dim in dims:
            if not _is_int(dim) or dim < 1:
                raise _fail(name, dims, "every session needs a whole number of neurons >= 1",
                            "check the data files' neuron counts")
    if encod is not None and recon is not None:
        if len(encod) != len(recon):
            raise _fail("recon_data_dims", recon, f"has {len(recon)} entries but model.encod_data_dims has "
                        f"{len(encod)}; they must list the same sessions", "give one entry per session in both")
        for session, (n_in, n_rec) in enumerate(zip(encod, recon)):
            if n_rec < n_in:
                raise _fail("recon_data_dims", recon, f"session {session} reconstructs {n_rec} neurons but its "
                            f"encoder sees {n_in} (model.encod_data_dims)", "recon_data_dims must be >= "
                            "encod_data_dims for every session (held-in neurons first, then held-out)")


def _check_relations(hp: dict[str, Any]) -> None:
    co_dim = hp.get("co_dim")
    if co_dim is not None and co_dim > 0:
        if hp.get("con_dim") == 0:
            raise _fail("con_dim", 0, f"model.co_dim = {co_dim} asks for inferred inputs, but with no controller "
                        f"units none can be inferred and the model would be autonomous", "set model.con_dim > 0, "
                        "or set model.co_dim 0 for an autonomous model (no inferred inputs)")
        if hp.get("ci_enc_dim") == 0:
            raise _fail("ci_enc_dim", 0, f"model.co_dim = {co_dim} asks for inferred inputs, but with no controller "
                        f"encoder the controller never sees the data", "set model.ci_enc_dim > 0, or set "
                        "model.co_dim 0 for an autonomous model (no inferred inputs)")
    encod_len, recon_len = hp.get("encod_seq_len"), hp.get("recon_seq_len")
    if encod_len is not None and recon_len is not None and recon_len < encod_len:
        raise _fail("recon_seq_len", recon_len, f"is shorter than model.encod_seq_len = {encod_len}",
                    "recon_seq_len must be >= encod_seq_len (the extra bins are forward prediction)")
    ic_len = hp.get("ic_enc_seq_len")
    if ic_len is not None and encod_len is not None and ic_len >= encod_len:
        raise _fail("ic_enc_seq_len", ic_len, f"must be in [0, encod_seq_len = {encod_len})",
                    "leave the controller at least one bin")
    cosine = hp.get("lr_cosine_epochs")
    if cosine and hp.get("lr_scheduler"):
        raise _fail("lr_cosine_epochs", cosine, "is > 0 while model.lr_scheduler is true; the cosine and plateau "
                    "schedules are alternatives", "set model.lr_cosine_epochs 0 or model.lr_scheduler false")
    readin = hp.get("readin_dim")
    if readin is not None:
        _check_int("readin_dim", readin, 1)
    reconstruction = hp.get("reconstruction")
    if reconstruction is not None and reconstruction not in LIKELIHOODS:
        raise _fail("reconstruction", reconstruction, "is not a known likelihood",
                    f"choose one of {sorted(LIKELIHOODS)}")


def check_hyperparameters(**hparams: Any) -> None:
    """Check the LFADS hyperparameters given (any subset of ``LFADS.__init__``'s arguments).

    Rules: sizes in :data:`POSITIVE_INTS` are whole numbers >= 1 and those in :data:`NON_NEGATIVE_INTS` >= 0;
    rates in :data:`UNIT_RATES` lie in [0, 1); cost weights in :data:`NON_NEGATIVE_FLOATS` are finite and >= 0;
    :data:`POSITIVE_FLOATS` (learning rate, variances, clip) are finite and > 0; ``smoothing`` and
    ``jslds_step_fraction`` lie in (0, 1], ``lr_decay`` in (0, 1). Relations: ``co_dim > 0`` needs
    ``con_dim > 0`` and ``ci_enc_dim > 0``; ``recon_seq_len >= encod_seq_len``; ``0 <= ic_enc_seq_len <
    encod_seq_len``; per session ``recon_data_dims >= encod_data_dims``; the cosine and plateau schedules
    exclude each other; ``reconstruction`` names a known likelihood. Names without a rule are ignored.

    Raises
    ------
    LFADSConfigError
        On the first violation; the message names the setting (``model.<name>``), the rule and the fix.
    """
    hp = {name: value for name, value in hparams.items() if value is not None}
    _check_dims_lists(hp)
    for names, check in (
        (POSITIVE_INTS, lambda n, v: _check_int(n, v, 1)),
        (NON_NEGATIVE_INTS, lambda n, v: _check_int(n, v, 0)),
        (UNIT_RATES, lambda n, v: _check_real(n, v, 0.0, 1.0, False, True)),
        (NON_NEGATIVE_FLOATS, lambda n, v: _check_real(n, v, 0.0, math.inf, False, True)),
        (POSITIVE_FLOATS, lambda n, v: _check_real(n, v, 0.0, math.inf, True, True)),
        (OPEN_CLOSED_UNIT, lambda n, v: _check_real(n, v, 0.0, 1.0, True, False)),
        (OPEN_UNIT, lambda n, v: _check_real(n, v, 0.0, 1.0, True, True)),
    ):
        for name in names:
            if name in hp:
                check(name, hp[name])
    _check_relations(hp)
