"""Hyperparameters out of range are refused where they are declared, naming ``model.<name>`` and the fix."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from lfads.errors import LFADSConfigError, LFADSError
from lfads.hparams import check_hyperparameters
from lfads.model import LFADS

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))

DATA_DIMS = {"encod_data_dims": [5], "recon_data_dims": [6], "encod_seq_len": 6, "recon_seq_len": 7, "ext_input_dim": 0}
SMALL = {"ic_enc_dim": 4, "ci_enc_dim": 4, "con_dim": 4, "co_dim": 2, "ic_dim": 3, "gen_dim": 6, "fac_dim": 3}


def _defaults() -> dict:
    """The defaults of ``LFADS.__init__`` with small data dimensions filled in."""
    params = inspect.signature(LFADS.__init__).parameters
    values = {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}
    return {**values, **DATA_DIMS}


# (setting, bad value, words the message must hold besides "model.<setting>")
BAD = [
    ("fac_dim", 0, ">= 1"),
    ("gen_dim", -5, ">= 1"),
    ("ic_dim", 0, ">= 1"),
    ("ic_enc_dim", 0, ">= 1"),
    ("jslds_hidden_dim", 0, ">= 1"),
    ("encod_seq_len", 0, ">= 1"),
    ("fac_dim", 2.5, "whole number"),
    ("gen_dim", True, "whole number"),
    ("con_dim", -1, ">= 0"),
    ("co_dim", -2, ">= 0"),
    ("ci_enc_dim", -1, ">= 0"),
    ("ext_input_dim", -1, ">= 0"),
    ("ci_lag", -1, ">= 0"),
    ("kl_increase_epoch", -1, ">= 0"),
    ("kl_start_epoch", -3, ">= 0"),
    ("l2_increase_epoch", -1, ">= 0"),
    ("jslds_start_epoch", -1, ">= 0"),
    ("lr_patience", -1, ">= 0"),
    ("lr_cosine_epochs", -1, ">= 0"),
    ("dropout_rate", 1.5, "[0, 1)"),
    ("dropout_rate", 1.0, "[0, 1)"),
    ("dropout_rate", -0.1, "[0, 1)"),
    ("cd_rate", 1.0, "[0, 1)"),
    ("cd_rate", math.nan, "finite"),
    ("lr_adam_beta1", 1.0, "[0, 1)"),
    ("lr_adam_beta2", -0.5, "[0, 1)"),
    ("lr_init", -1.0, "(0, inf)"),
    ("lr_init", 0.0, "(0, inf)"),
    ("lr_init", math.inf, "finite"),
    ("lr_init", "fast", "finite"),
    ("lr_stop", -1e-5, "[0, inf)"),
    ("weight_decay", -0.1, "[0, inf)"),
    ("kl_ic_scale", -1.0, "[0, inf)"),
    ("kl_co_scale", math.nan, "finite"),
    ("l2_gen_scale", -1e-3, "[0, inf)"),
    ("l2_con_scale", -1.0, "[0, inf)"),
    ("jslds_fp_scale", -1.0, "[0, inf)"),
    ("cell_clip", 0.0, "(0, inf)"),
    ("ic_post_var_min", 0.0, "(0, inf)"),
    ("ic_prior_var", -0.1, "(0, inf)"),
    ("co_prior_tau", 0.0, "(0, inf)"),
    ("co_prior_var", 0.0, "(0, inf)"),
    ("smoothing", 0.0, "(0, 1]"),
    ("smoothing", 1.5, "(0, 1]"),
    ("jslds_step_fraction", 0.0, "(0, 1]"),
    ("lr_decay", 1.0, "(0, 1)"),
    ("lr_decay", 0.0, "(0, 1)"),
    ("readin_dim", 0, ">= 1"),
    ("reconstruction", "bernoulli", "poisson"),
]


@pytest.mark.parametrize("name, value, words", BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_each_out_of_range_setting_is_refused_naming_it(name: str, value, words: str) -> None:
    hp = {**_defaults(), **SMALL, name: value}
    with pytest.raises(LFADSConfigError) as info:
        check_hyperparameters(**hp)
    message = str(info.value)
    assert f"model.{name}" in message and words in message
    assert message.count("\n") == 0


@pytest.mark.parametrize("name, value", [("fac_dim", 1), ("dropout_rate", 0.0), ("dropout_rate", 0.999),
                                         ("cd_rate", 0.0), ("co_dim", 0), ("con_dim", 0), ("lr_init", 1e-9),
                                         ("kl_ic_scale", 0.0), ("smoothing", 1.0), ("ci_lag", 0),
                                         ("gen_dim", np.int64(8)), ("lr_init", 1)])
def test_values_at_the_edges_of_the_ranges_pass(name: str, value) -> None:
    hp = {**_defaults(), **SMALL, name: value}
    if name == "con_dim":
        hp["co_dim"] = 0
    check_hyperparameters(**hp)


@pytest.mark.parametrize("zero", ["con_dim", "ci_enc_dim"])
def test_inferred_inputs_need_a_controller_and_its_encoder(zero: str) -> None:
    hp = {**_defaults(), **SMALL, "co_dim": 2, zero: 0}
    with pytest.raises(LFADSConfigError) as info:
        check_hyperparameters(**hp)
    message = str(info.value)
    assert f"model.{zero} = 0" in message and "model.co_dim = 2" in message
    assert "model.co_dim 0" in message and "autonomous" in message
    check_hyperparameters(**{**hp, "co_dim": 0})  # an autonomous model may leave both at 0


@pytest.mark.parametrize("bad, name, words", [
    ({"encod_data_dims": [5], "recon_data_dims": [4]}, "recon_data_dims", "encod_data_dims"),
    ({"encod_data_dims": [5, 6], "recon_data_dims": [6]}, "recon_data_dims", "same sessions"),
    ({"encod_data_dims": [0], "recon_data_dims": [3]}, "encod_data_dims", ">= 1"),
    ({"encod_data_dims": [], "recon_data_dims": []}, "encod_data_dims", "one neuron count per session"),
    ({"encod_seq_len": 6, "recon_seq_len": 5}, "recon_seq_len", "encod_seq_len"),
    ({"ic_enc_seq_len": 6}, "ic_enc_seq_len", "encod_seq_len"),
    ({"lr_cosine_epochs": 10, "lr_scheduler": True}, "lr_cosine_epochs", "lr_scheduler false"),
])
def test_settings_that_contradict_each_other_are_refused(bad: dict, name: str, words: str) -> None:
    with pytest.raises(LFADSConfigError) as info:
        check_hyperparameters(**{**_defaults(), **SMALL, **bad})
    assert f"model.{name}" in str(info.value) and words in str(info.value)


def test_settings_not_given_are_not_checked() -> None:
    check_hyperparameters(fac_dim=3)
    check_hyperparameters(dropout_rate=0.1, some_other_setting=-1)


def test_the_model_refuses_bad_settings_before_building_anything() -> None:
    with pytest.raises(LFADSConfigError, match=r"model\.fac_dim = 0"):
        LFADS(**DATA_DIMS, **{**SMALL, "fac_dim": 0})
    with pytest.raises(LFADSConfigError, match=r"model\.con_dim = 0"):
        LFADS(**DATA_DIMS, **{**SMALL, "con_dim": 0})
    with pytest.raises(LFADSConfigError, match=r"model\.dropout_rate = 1\.5"):
        LFADS(**DATA_DIMS, **{**SMALL, "dropout_rate": 1.5})


def test_config_errors_are_value_errors_of_the_project() -> None:
    assert issubclass(LFADSConfigError, ValueError) and issubclass(LFADSConfigError, LFADSError)


def test_the_defaults_pass() -> None:
    check_hyperparameters(**_defaults())


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_shipped_config_passes(config: Path) -> None:
    text = yaml.safe_load(config.read_text())
    model = text.get("model") or {}
    assert not (set(model) - set(_defaults())), f"{config.name}: unknown model settings"
    check_hyperparameters(**{**_defaults(), **model})
    # a tuning search space must stay inside the ranges at both bounds (perturbed values are clipped to them)
    for name, dim in ((text.get("tune") or {}).get("search_space") or {}).items():
        for bound in ("low", "high"):
            check_hyperparameters(**{**_defaults(), **model, name: dim[bound]})
