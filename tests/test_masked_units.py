"""Units unobserved for part of a session: masks from NWB obs_intervals, in the HDF5 layout, the batches, the
model's cost and the scores."""

from __future__ import annotations

import math
import warnings

import h5py
import numpy as np
import pytest
import torch
from nwb_helpers import count_by_loop, write_nwb
from scipy.stats import poisson
from sklearn.metrics import r2_score as sklearn_r2

from lfads.commands.convert import convert_command
from lfads.data.batch import SessionBatch
from lfads.data.datamodule import LFADSDataModule
from lfads.data.hdf5 import build_session, load_lfads_h5, save_lfads_h5
from lfads.data.nwb import NWBBinning, NWBBinningError, NWBDropWarning, bin_nwb
from lfads.errors import LFADSDataError
from lfads.evaluation import compute_split_metrics, validation_metrics
from lfads.model import LFADS

torch.set_num_threads(1)

# ---------------------------------------------------------------------------------------------------- the NWB file
# Six trials of 5 window bins + 1 forward bin of 100 ms from each start time. Unit 1 (held-in) is unobserved
# in [2.0, 3.0); unit 2 (held-out) in [4.0, 4.2). Spike times lie 0.02 s or more from every bin edge.
STARTS = [0.5, 1.8, 2.2, 3.0, 4.0, 2.95]
SPIKES = [
    [0.52, 1.07, 1.87, 2.27, 2.37, 2.77, 2.97, 3.12, 3.52, 3.57, 4.07, 4.32, 4.57],
    [0.62, 1.82, 2.02, 2.27, 2.47, 2.97, 3.12, 3.32, 4.12],
    [0.72, 2.32, 4.02, 4.12, 4.22, 4.42],
]
OBS = [[[0.0, 10.0]], [[0.0, 2.0], [3.0, 10.0]], [[0.0, 4.0], [4.2, 10.0]]]
BINNING = dict(align_event="start_time", window_ms=(0.0, 500.0), bin_ms=100.0, forward_bins=1,
               heldout_column="heldout", split_column=None, valid_fraction=0.5)
N_BINS, N_WINDOW = 6, 5
# trial id -> (unit column, its unobserved bins), worked out by hand from OBS:
UNOBSERVED = {
    1: (1, [2, 3, 4, 5]),  # [1.8, 2.4): bins from 2.0 on lie in unit 1's gap
    2: (1, [0, 1, 2, 3, 4, 5]),  # [2.2, 2.8): all in the gap
    4: (2, [0, 1]),  # [4.0, 4.2) is unit 2's gap
    5: (1, [0]),  # [2.95, 3.05) only partly inside [3.0, 10]
}


def _write_file(path, obs=OBS, starts=STARTS):
    return write_nwb(path, SPIKES, {"start_time": starts, "stop_time": [s + 0.6 for s in starts]},
                     unit_columns={"heldout": [False, False, True]}, obs_intervals=obs)


def _expected_mask() -> np.ndarray:
    mask = np.ones((len(STARTS), N_BINS, 3), dtype=bool)
    for trial, (unit, bins) in UNOBSERVED.items():
        mask[trial, bins, unit] = False
    return mask


def _expected_counts(mask: np.ndarray) -> np.ndarray:
    counts = np.stack([np.stack([count_by_loop(np.asarray(times), start, N_BINS, 0.1) for times in SPIKES], axis=-1)
                       for start in STARTS])
    return np.where(mask, counts, 0.0)


def _by_trial(arrays, key):
    splits = [s for s in ("train", "valid", "test") if f"{s}_{key}" in arrays]
    ids = np.concatenate([arrays[f"{s}_trial_ids"] for s in splits])
    values = np.concatenate([arrays[f"{s}_{key}"] for s in splits])
    return ids[np.argsort(ids)], values[np.argsort(ids)]


def _bin_quietly(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NWBDropWarning)
        return bin_nwb(path, NWBBinning(**{**BINNING, **options}))


def test_mask_keeps_every_trial_and_marks_exactly_the_unobserved_bins(tmp_path):
    arrays = _bin_quietly(_write_file(tmp_path / "gap.nwb"), unobserved="mask")
    ids, recon_mask = _by_trial(arrays, "recon_mask")
    assert ids.tolist() == [0, 1, 2, 3, 4, 5]
    assert recon_mask.dtype == np.bool_
    np.testing.assert_array_equal(recon_mask, _expected_mask())
    _, encod_mask = _by_trial(arrays, "encod_mask")
    np.testing.assert_array_equal(encod_mask, _expected_mask()[:, :N_WINDOW, :2])
    _, recon = _by_trial(arrays, "recon_data")
    np.testing.assert_array_equal(recon, _expected_counts(_expected_mask()))
    assert _expected_counts(np.ones((6, 6, 3), bool)).sum() > recon.sum()  # spikes fell in unobserved bins
    _, encod = _by_trial(arrays, "encod_data")
    np.testing.assert_array_equal(encod, recon[:, :N_WINDOW, :2])


def test_drop_trials_default_drops_every_trial_a_unit_misses(tmp_path):
    path = _write_file(tmp_path / "gap.nwb")
    assert NWBBinning().unobserved == "drop_trials"
    with pytest.warns(NWBDropWarning, match=r"dropped 4 of 6 trials.*obs_intervals.*\{1: 3, 2: 1\}"):
        arrays = bin_nwb(path, NWBBinning(**BINNING))
    assert _by_trial(arrays, "recon_data")[0].tolist() == [0, 3]
    assert not any(key.endswith("_mask") for key in arrays)


def test_mask_on_a_fully_observed_file_gives_the_drop_trials_output(tmp_path):
    path = _write_file(tmp_path / "full.nwb", obs=[[[0.0, 10.0]]] * 3)
    masked, dropped = _bin_quietly(path, unobserved="mask"), _bin_quietly(path)
    assert sorted(masked) == sorted(dropped)
    for key in masked:
        np.testing.assert_array_equal(masked[key], dropped[key])


def test_mask_drops_only_trials_in_which_no_unit_is_observed(tmp_path):
    starts = STARTS + [6.0]
    path = _write_file(tmp_path / "late.nwb", obs=[[[0.0, 5.0]]] * 3, starts=starts)
    with pytest.warns(NWBDropWarning, match=r"dropped 1 of 7 trials: no unit's 'obs_intervals' cover any bin"):
        arrays = bin_nwb(path, NWBBinning(**BINNING, unobserved="mask"))
    assert _by_trial(arrays, "recon_data")[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert "train_recon_mask" not in arrays  # every kept bin is observed


def test_unobserved_option_accepts_only_its_choices():
    assert NWBBinning.from_mapping({"unobserved": "mask"}).unobserved == "mask"
    with pytest.raises(NWBBinningError, match=r"unobserved must be one of \['drop_trials', 'mask'\], got 'skip'"):
        NWBBinning.from_mapping({"unobserved": "skip"}, source="run.yaml: data.nwb")
    with pytest.raises(LFADSDataError, match="unobserved must be one of"):
        bin_nwb("missing.nwb", NWBBinning(unobserved="skip"))


# ---------------------------------------------------------------------------------------------------- HDF5 layout
def test_convert_writes_masks_and_the_reader_returns_them(tmp_path):
    nwb = _write_file(tmp_path / "gap.nwb")
    out = tmp_path / "out"
    assert convert_command(["--nwb", str(nwb), "--out-dir", str(out), "--unobserved", "mask", "--align-event",
                            "start_time", "--window-ms", "0", "500", "--bin-ms", "100", "--forward-bins", "1",
                            "--split-column", "none", "--valid-fraction", "0.5"]) == 0
    arrays = _bin_quietly(nwb, unobserved="mask")
    with h5py.File(out / "gap.h5", "r") as f:
        for split in ("train", "valid"):
            assert f[f"{split}_recon_mask"].dtype == np.bool_ and f[f"{split}_encod_mask"].dtype == np.bool_
            np.testing.assert_array_equal(f[f"{split}_recon_mask"][()], arrays[f"{split}_recon_mask"])
    session = load_lfads_h5(out / "gap.h5")
    again = load_lfads_h5(save_lfads_h5(tmp_path / "again.h5", session))
    for loaded in (session, again):
        for split in ("train", "valid"):
            data = loaded.splits[split]
            np.testing.assert_array_equal(data.recon_mask, arrays[f"{split}_recon_mask"])
            np.testing.assert_array_equal(data.encod_mask, arrays[f"{split}_encod_mask"])
            np.testing.assert_array_equal(data.recon_data, arrays[f"{split}_recon_data"])
            assert "recon_mask" not in data.extras and "encod_mask" not in data.extras


def _layout(rng, n=(4, 3)):
    arrays = {}
    for split, trials in zip(("train", "valid"), n):
        recon = rng.poisson(2.0, (trials, 6, 4)).astype(np.float32)
        arrays[f"{split}_recon_data"], arrays[f"{split}_encod_data"] = recon, recon[:, :5, :3].copy()
    return arrays


def test_files_without_masks_read_as_before():
    session = build_session(_layout(np.random.default_rng(0)))
    assert all(data.recon_mask is None and data.encod_mask is None for data in session.splits.values())


def test_reader_zero_fills_unobserved_values_and_derives_the_missing_mask():
    rng = np.random.default_rng(1)
    arrays = _layout(rng)
    mask = rng.random((4, 6, 4)) > 0.3
    arrays["train_recon_data"] = np.where(mask, arrays["train_recon_data"], np.nan).astype(np.float32)
    arrays["train_encod_data"] = arrays["train_recon_data"][:, :5, :3].copy()
    arrays["train_recon_mask"] = mask.astype(np.uint8)  # 0/1 numbers are accepted as a mask
    data = build_session(arrays).splits["train"]
    np.testing.assert_array_equal(data.encod_mask, mask[:, :5, :3])
    assert np.isfinite(data.recon_data).all() and (data.recon_data[~mask] == 0).all()
    assert (data.encod_data[~mask[:, :5, :3]] == 0).all()

    only_encod = _layout(rng)
    only_encod["train_encod_mask"] = mask[:, :5, :3]
    data = build_session(only_encod).splits["train"]
    expected = np.ones((4, 6, 4), bool)
    expected[:, :5, :3] = mask[:, :5, :3]
    np.testing.assert_array_equal(data.recon_mask, expected)


@pytest.mark.parametrize("change, message", [
    (lambda a, m: a.update(train_recon_mask=m, train_encod_mask=~m[:, :5, :3]), "disagree at"),
    (lambda a, m: a.update(train_recon_mask=m[:, :5]), r"'train_recon_mask' has shape \(4, 5, 4\)"),
    (lambda a, m: a.update(train_recon_mask=2 * m.astype(int)), "must be boolean"),
    (lambda a, m: a.update(train_recon_masks=m), "looks like 'train_recon_mask' misspelt"),
    (lambda a, m: a.update(tarin_recon_mask=m), r"unknown split 'tarin' \(did you mean 'train_recon_mask'\?\)"),
])
def test_malformed_masks_are_refused_naming_the_dataset(change, message):
    rng = np.random.default_rng(2)
    arrays = _layout(rng)
    change(arrays, rng.random((4, 6, 4)) > 0.3)
    with pytest.raises(LFADSDataError, match=message):
        build_session(arrays, path="rec.h5")


def test_datamodule_serves_masks_and_zeros_at_unobserved_elements(tmp_path):
    nwb = _write_file(tmp_path / "gap.nwb")
    dm = LFADSDataModule(str(nwb), batch_size=3, nwb={**BINNING, "unobserved": "mask"})
    batch = next(iter(dm.split_dataloader(0, "train")))
    assert batch.recon_mask.dtype == torch.bool and batch.recon_mask.shape == batch.recon_data.shape
    assert torch.equal(batch.encod_mask, batch.recon_mask[:, :N_WINDOW, :2])
    assert (batch.recon_data[~batch.recon_mask] == 0).all() and (~batch.recon_mask).any()
    with pytest.warns(NWBDropWarning, match="dropped 4 of 6 trials"):
        plain = LFADSDataModule(str(nwb), batch_size=1, nwb=BINNING)
    batch = next(iter(plain.split_dataloader(0, "train")))
    assert batch.recon_mask is None and batch.encod_mask is None


# ---------------------------------------------------------------------------------------------------- the model's cost
B, T_ENC, T_REC, N_IN, N_REC = 4, 5, 6, 3, 4


def _model(**kwargs) -> LFADS:
    torch.manual_seed(3)
    model = LFADS(encod_data_dims=[N_IN], recon_data_dims=[N_REC], encod_seq_len=T_ENC, recon_seq_len=T_REC,
                  ic_enc_dim=4, ci_enc_dim=4, con_dim=4, co_dim=2, ic_dim=3, gen_dim=6, fac_dim=3, dropout_rate=0.2,
                  cd_rate=0.3, kl_start_epoch=0, kl_increase_epoch=0, l2_gen_scale=0.1, l2_start_epoch=0,
                  l2_increase_epoch=0, **kwargs)
    model.log = lambda *a, **k: None
    return model


def _batch(seed: int = 4, masked: bool = True, shift: float = 0.0) -> SessionBatch:
    """Counts, a mask with unobserved held-in, held-out and forward elements, and ``shift`` added where unobserved."""
    g = torch.Generator().manual_seed(seed)
    recon = torch.poisson(torch.full((B, T_REC, N_REC), 2.0), generator=g)
    sv_mask = (torch.rand((B, T_ENC, N_IN), generator=g) > 0.2).float()
    if not masked:
        return SessionBatch(recon[:, :T_ENC, :N_IN].clone(), recon, torch.zeros(B, T_REC, 0), None, sv_mask)
    mask = torch.rand((B, T_REC, N_REC), generator=g) > 0.3
    for block in (mask[:, :T_ENC, :N_IN], mask[:, :T_ENC, N_IN:], mask[:, T_ENC:]):
        assert (~block).any() and block.any()
    recon = recon + shift * (~mask)
    return SessionBatch(recon[:, :T_ENC, :N_IN].clone(), recon, torch.zeros(B, T_REC, 0), None, sv_mask,
                        recon_mask=mask, encod_mask=mask[:, :T_ENC, :N_IN].clone())


def _loss_and_grads(model: LFADS, batch: SessionBatch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(9)
    loss = model._step({0: batch}, "train")
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("jslds", [False, True])
def test_unobserved_counts_change_neither_the_loss_nor_its_gradients(jslds):
    model = _model(jslds=jslds, jslds_hidden_dim=5)
    loss, grads = _loss_and_grads(model, _batch())
    for shift in (7.0, 0.5):
        loss2, grads2 = _loss_and_grads(model, _batch(shift=shift))
        assert torch.equal(loss, loss2)  # float32, exactly
        assert len(grads) == len(grads2) and all(torch.equal(a, b) for a, b in zip(grads, grads2))
    # the same change at observed elements does change the loss
    observed = _batch()
    changed = observed._replace(recon_data=observed.recon_data + 7.0 * observed.recon_mask)
    changed = changed._replace(encod_data=changed.recon_data[:, :T_ENC, :N_IN].clone())
    assert not torch.equal(loss, _loss_and_grads(model, changed)[0])


def test_masked_costs_are_sums_over_observed_elements_divided_by_their_number():
    model = _model().eval()
    batch = _batch()
    encod, weights = model._masked_inputs({0: batch}, training=False)
    assert (encod[0][~batch.encod_mask] == 0).all()
    out = model(encod, {0: batch.ext_input}, sample=False)[0]
    costs = model._session_costs(batch, out, weights[0])
    mask = batch.recon_mask.numpy()
    log_rate = out.params[..., 0, :].detach().double().numpy()
    x = batch.recon_data.double().numpy()
    weight = np.ones(x.shape)
    weight[:, :T_ENC, :N_IN] = weights[0].numpy()
    n_obs = mask.sum()
    expected = (mask * weight * (np.exp(log_rate) - x * log_rate)).sum() / n_obs
    assert costs.recon.item() == pytest.approx(expected, rel=1e-5)
    kl_ic = model.ic_prior.kl(out.ic_mean, out.ic_std).sum().item()
    assert costs.kl_ic.item() == pytest.approx(kl_ic / n_obs, rel=1e-6)
    kl_co = model.co_prior.kl(out.co_means, out.co_stds, out.inferred_inputs).sum().item()
    assert costs.kl_co.item() == pytest.approx(kl_co / n_obs, rel=1e-6)
    held = (1 - batch.sv_mask.numpy()) * batch.encod_mask.numpy()
    assert costs.sv_count.item() == held.sum()
    nll_in = (np.exp(log_rate) - x * log_rate)[:, :T_ENC, :N_IN]
    assert costs.sv_nll.item() == pytest.approx((nll_in * held).sum(), rel=1e-5)


def _costs_before_masks(model, batch, out, weight):
    """The cost of an unmasked batch as computed before masks existed (pinned for the no-mask path)."""
    nll = model.likelihood.nll(out.params, batch.recon_data, full=False)
    t_enc, n_in = batch.encod_data.shape[1:]
    nll_in = nll[:, :t_enc, :n_in]
    norm = nll.shape[0] * nll.shape[1] * nll.shape[2]
    recon = (nll.sum() - nll_in.sum() + (nll_in * weight).sum()) / norm
    kl_ic = model.ic_prior.kl(out.ic_mean, out.ic_std).sum() / norm
    kl_co = model.co_prior.kl(out.co_means, out.co_stds, out.inferred_inputs).sum() / norm
    held = 1.0 - batch.sv_mask
    return recon, kl_ic, kl_co, (nll_in.detach() * held).sum(), held.sum()


def test_batches_without_masks_give_bit_identical_costs_and_inputs():
    model = _model()
    batch = _batch(masked=False)
    encod, weights = model._masked_inputs({0: batch}, training=False)
    sv = batch.sv_mask
    assert torch.equal(encod[0], batch.encod_data * (sv / sv.mean().clamp_min(1e-3))) and torch.equal(weights[0], sv)
    out = model(encod, {0: batch.ext_input})[0]
    new = model._session_costs(batch, out, weights[0])
    for a, b in zip(new, _costs_before_masks(model, batch, out, weights[0])):
        assert torch.equal(a, b)
    # an all-observed mask gives the same numbers (to rounding: the divisor is a tensor then)
    full = batch._replace(recon_mask=torch.ones(B, T_REC, N_REC, dtype=torch.bool),
                          encod_mask=torch.ones(B, T_ENC, N_IN, dtype=torch.bool))
    for a, b in zip(model._session_costs(full, out, weights[0]), new):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


def test_readout_bias_starts_from_the_mean_over_observed_bins(tmp_path):
    nwb = _write_file(tmp_path / "gap.nwb")
    dm = LFADSDataModule(str(nwb), batch_size=3, nwb={**BINNING, "unobserved": "mask"})
    model = LFADS(encod_data_dims=dm.encod_data_dims, recon_data_dims=dm.recon_data_dims,
                  encod_seq_len=dm.encod_seq_len, recon_seq_len=dm.recon_seq_len, ic_enc_dim=4, ci_enc_dim=4,
                  con_dim=4, co_dim=2, ic_dim=3, gen_dim=6, fac_dim=3)
    model.init_from_data(dm)
    train = dm.sessions[0].splits["train"]
    observed = [train.recon_data[..., u][train.recon_mask[..., u]].mean() for u in range(3)]
    params = model.readout(0, torch.zeros(1, 1, 3))[0, 0, 0].detach().numpy()  # zero factors: the bias alone
    np.testing.assert_allclose(params, np.log(observed), rtol=1e-5)
    plain_mean = train.recon_data.mean(axis=(0, 1))
    assert not np.allclose(params, np.log(np.maximum(plain_mean, 1e-3)), rtol=1e-3)


# ---------------------------------------------------------------------------------------------------- the scores
def _reference_bps(rates, counts, mask):
    """Bits/spike over the observed elements only, from scipy's Poisson log-pmf, one neuron at a time."""
    gain, spikes = 0.0, 0.0
    for j in range(counts.shape[-1]):
        x, lam = counts[..., j][mask[..., j]], rates[..., j][mask[..., j]]
        gain += poisson.logpmf(x, lam).sum() - poisson.logpmf(x, x.mean()).sum()
        spikes += x.sum()
    return gain / (spikes * math.log(2.0))


def test_scores_skip_unobserved_bins():
    rng = np.random.default_rng(5)
    truth = rng.gamma(4.0, 0.5, (20, T_REC, N_REC))
    counts = rng.poisson(truth).astype(np.float64)
    rates = truth * rng.uniform(0.7, 1.3, truth.shape)
    mask = rng.random(truth.shape) > 0.3
    scores = compute_split_metrics(rates, counts, truth, T_ENC, N_IN, mask=mask)
    blocks = {"heldin_bps": (slice(None), slice(None, T_ENC), slice(None, N_IN)),
              "co_bps": (slice(None), slice(None, T_ENC), slice(N_IN, None)),
              "fp_bps": (slice(None), slice(T_ENC, None))}
    for name, block in blocks.items():
        assert scores[name] == pytest.approx(_reference_bps(rates[block], counts[block], mask[block]), rel=1e-10)
    r2 = [sklearn_r2(truth[..., j][mask[..., j]], rates[..., j][mask[..., j]]) for j in range(N_REC)]
    assert scores["rate_r2"] == pytest.approx(np.mean(r2), rel=1e-10)
    # whatever the data hold at unobserved bins, the scores are the same
    noisy = np.where(mask, counts, 50.0)
    assert compute_split_metrics(rates, noisy, np.where(mask, truth, -3.0), T_ENC, N_IN, mask=mask) == scores
    assert compute_split_metrics(rates, counts, truth, T_ENC, N_IN) != scores


def test_validation_metrics_use_the_masks_of_the_batches():
    rng = np.random.default_rng(6)
    counts = rng.poisson(2.0, (6, T_REC, N_REC)).astype(np.float32)
    rates = rng.uniform(1.0, 3.0, counts.shape).astype(np.float32)
    mask = rng.random(counts.shape) > 0.3
    cache = []
    for rows in (slice(0, 4), slice(4, 6)):
        recon, m = torch.from_numpy(counts[rows]), torch.from_numpy(mask[rows])
        batch = SessionBatch(recon[:, :T_ENC, :N_IN], recon, torch.zeros(len(recon), T_REC, 0), None,
                             torch.ones(len(recon), T_ENC, N_IN), recon_mask=m, encod_mask=m[:, :T_ENC, :N_IN])
        cache.append((0, batch, torch.from_numpy(rates[rows])))
    expected = compute_split_metrics(rates, counts, None, T_ENC, N_IN, mask=mask)
    assert validation_metrics(cache) == pytest.approx(expected, rel=1e-12)
    assert validation_metrics(cache) != pytest.approx(compute_split_metrics(rates, counts, None, T_ENC, N_IN))


def test_a_gamma_likelihood_gets_finite_gradients_with_zeros_at_unobserved_elements():
    model = _model(reconstruction="gamma")
    batch = _batch()
    positive = torch.where(batch.recon_mask, batch.recon_data + 0.5, 0.0)  # Gamma data must be > 0 where observed
    batch = batch._replace(recon_data=positive, encod_data=positive[:, :T_ENC, :N_IN].clone())
    loss, grads = _loss_and_grads(model, batch)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)


def test_sampled_rates_are_scored_on_the_observed_bins(tmp_path):
    from lfads.sampling import sample_posteriors, score_samples

    nwb = _write_file(tmp_path / "gap.nwb")
    dm = LFADSDataModule(str(nwb), batch_size=3, nwb={**BINNING, "unobserved": "mask"})
    model = LFADS(encod_data_dims=dm.encod_data_dims, recon_data_dims=dm.recon_data_dims,
                  encod_seq_len=dm.encod_seq_len, recon_seq_len=dm.recon_seq_len, ic_enc_dim=4, ci_enc_dim=4,
                  con_dim=4, co_dim=2, ic_dim=3, gen_dim=6, fac_dim=3)
    model.init_from_data(dm)
    results = sample_posteriors(model, dm, n_samples=2, progress=False)
    scores = score_samples(results, dm)["gap"]
    for split in ("train", "valid"):
        data = dm.sessions[0].splits[split]
        expected = compute_split_metrics(results["gap"][split]["rates"], data.recon_data, None, N_WINDOW, 2,
                                         mask=data.recon_mask)
        assert scores[split] == expected
        assert scores[split] != compute_split_metrics(results["gap"][split]["rates"], data.recon_data, None,
                                                      N_WINDOW, 2)
