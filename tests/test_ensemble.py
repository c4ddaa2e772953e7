"""Ensembles: rates averaged over models, and the check that every member scores the same trials."""

from __future__ import annotations

import numpy as np
import pytest

from lfads.data.datamodule import LFADSDataModule
from lfads.ensemble import check_same_trials, ensemble_rates
from lfads.errors import LFADSDataError
from lfads.metrics import rate_r2


def _result(rates: dict[str, np.ndarray]) -> dict:
    return {"sess": {split: {"rates": r, "factors": r[..., :2]} for split, r in rates.items()}}


def test_ensemble_rates_are_the_member_mean_and_keep_only_rates():
    rng = np.random.default_rng(0)
    members = [rng.gamma(2.0, 1.0, size=(5, 7, 3)).astype(np.float32) for _ in range(3)]
    out = ensemble_rates([_result({"valid": r}) for r in members])
    assert set(out["sess"]["valid"]) == {"rates"}
    np.testing.assert_allclose(out["sess"]["valid"]["rates"], (members[0] + members[1] + members[2]) / 3, rtol=1e-6)
    assert out["sess"]["valid"]["rates"].dtype == np.float32


def test_ensemble_drops_splits_that_not_every_member_has():
    r = np.ones((2, 3, 4))
    out = ensemble_rates([_result({"train": r, "valid": r}), _result({"valid": 3 * r})])
    assert set(out["sess"]) == {"valid"}
    np.testing.assert_allclose(out["sess"]["valid"]["rates"], 2.0)


def test_ensemble_refuses_members_with_different_shapes_or_none():
    with pytest.raises(ValueError, match="differ in shape"):
        ensemble_rates([_result({"valid": np.ones((2, 3, 4))}), _result({"valid": np.ones((2, 3, 5))})])
    with pytest.raises(ValueError, match="at least one"):
        ensemble_rates([])


def test_averaging_independent_errors_brings_rates_closer_to_the_truth():
    # Members = truth + independent noise of equal size: the mean's error variance falls as 1/M.
    rng = np.random.default_rng(1)
    truth = rng.gamma(3.0, 1.0, size=(200, 20, 4))
    members = [truth + rng.normal(0.0, 1.0, truth.shape) for _ in range(4)]
    single = np.mean([rate_r2(m, truth) for m in members])
    ens = rate_r2(ensemble_rates([_result({"valid": m}) for m in members])["sess"]["valid"]["rates"], truth)
    # R2 = 1 - MSE / var: the error variance of each member is 1, of the mean 1/4
    expected = 1.0 - 0.25 * (1.0 - single)
    assert ens == pytest.approx(expected, abs=0.01)


def test_members_must_score_the_same_trials(small_lorenz, tmp_path):
    from datasets.lorenz import write_lorenz

    same = LFADSDataModule(str(small_lorenz), batch_size=4)
    check_same_trials([same, LFADSDataModule(str(small_lorenz), batch_size=8)], ["a.ckpt", "b.ckpt"])
    # same session name (file stem), other spikes
    other = tmp_path / small_lorenz.name
    write_lorenz(other, n_conditions=8, trials_per_condition=5, n_time=50, n_heldin=12, n_heldout=4, seed=2)
    with pytest.raises(LFADSDataError,
                       match=r"split 'train': a.ckpt and b.ckpt hold different trials.*different counts"):
        check_same_trials([same, LFADSDataModule(str(other), batch_size=4)], ["a.ckpt", "b.ckpt"])
    renamed = tmp_path / "elsewhere.h5"
    renamed.write_bytes(small_lorenz.read_bytes())
    with pytest.raises(LFADSDataError, match="different sessions"):
        check_same_trials([same, LFADSDataModule(str(renamed), batch_size=4)], ["a.ckpt", "b.ckpt"])
