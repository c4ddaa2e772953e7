"""NLB submissions: the benchmark's file layout, scoring against evaluation targets, and scores of NLB test splits."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy import stats

from lfads.data.datamodule import LFADSDataModule
from lfads.data.hdf5 import save_h5_atomic
from lfads.errors import LFADSDataError
from lfads.metrics import bits_per_spike, vel_r2
from lfads.model import LFADS
from lfads.nlb_submission import (
    SUBMISSION_KEYS,
    format_submission_scores,
    score_submission,
    write_eval_target,
    write_submission,
)
from lfads.sampling import (
    format_scores,
    load_scores,
    sample_posteriors,
    save_samples,
    score_samples,
)

MC_MAZE_SMALL = Path(__file__).resolve().parents[1] / "datasets" / "mc_maze_small" / "mc_maze_small_full.h5"
N, M, T, T_FP, N_IN, N_OUT, N_COND = 40, 16, 20, 5, 6, 4, 4


def _true_rates(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Condition PSTHs, and the rates (expected counts per bin) and conditions of train and eval trials."""
    t = np.linspace(0, 1, T + T_FP)
    phase = rng.uniform(0, 2 * np.pi, size=(N_COND, 1, N_IN + N_OUT))
    psth = 0.4 * np.exp(np.sin(2 * np.pi * t[None, :, None] + phase))  # (cond, time, neurons)
    train_cond, eval_cond = np.arange(N) % N_COND, rng.permutation(np.arange(M) % N_COND)
    return psth, psth[train_cond], psth[eval_cond], eval_cond


@pytest.fixture
def nlb_files(tmp_path):
    """A synthetic NLB tensor file, its evaluation target and the true rates behind both."""
    rng = np.random.default_rng(0)
    psth, train_rates, eval_rates, eval_cond = _true_rates(rng)
    train_spikes, eval_spikes = rng.poisson(train_rates).astype(np.float32), rng.poisson(eval_rates).astype(np.float32)
    mixing = rng.normal(size=(N_IN + N_OUT, 2))
    train_behavior = train_rates[:, :T] @ mixing + 0.05 * rng.normal(size=(N, T, 2))
    eval_behavior = eval_rates[:, :T] @ mixing + 0.05 * rng.normal(size=(M, T, 2))
    tensors = save_h5_atomic(tmp_path / "synthetic_nlb.h5", {
        "train_spikes_heldin": train_spikes[:, :T, :N_IN],
        "train_spikes_heldout": train_spikes[:, :T, N_IN:],
        "train_spikes_heldin_forward": train_spikes[:, T:, :N_IN],
        "train_spikes_heldout_forward": train_spikes[:, T:, N_IN:],
        "train_behavior": train_behavior,
        "eval_spikes_heldin": eval_spikes[:, :T, :N_IN],
        "eval_spikes_heldout": eval_spikes[:, :T, N_IN:],
    })
    target = tmp_path / "target.h5"
    with h5py.File(target, "w") as f:
        g = f.create_group("mc_maze_small")
        g["eval_spikes_heldout"] = eval_spikes[:, :T, N_IN:]
        g["eval_spikes_heldin_forward"] = eval_spikes[:, T:, :N_IN]
        g["eval_spikes_heldout_forward"] = eval_spikes[:, T:, N_IN:]
        g["train_behavior"], g["eval_behavior"] = train_behavior, eval_behavior
        g["psth"] = psth[:, :T]
        cond_idx = np.empty(N_COND, dtype=object)
        cond_idx[:] = [np.flatnonzero(eval_cond == c) for c in range(N_COND)]
        g.create_dataset("eval_cond_idx", data=cond_idx, dtype=h5py.vlen_dtype(np.int64))
    return {"tensors": tensors, "target": target, "train_rates": train_rates, "eval_rates": eval_rates,
            "eval_spikes": eval_spikes, "train_behavior": train_behavior, "eval_behavior": eval_behavior}


def _results_from(rates_by_split: dict, dm: LFADSDataModule) -> dict:
    return {dm.session_names[0]: {split: {"rates": rates} for split, rates in rates_by_split.items()}}


def _true_results(files: dict, dm: LFADSDataModule) -> dict:
    splits = dm.sessions[0].splits
    return _results_from({
        "train": files["train_rates"][splits["train"].extras["inds"]],
        "valid": files["train_rates"][splits["valid"].extras["inds"]],
        "test": files["eval_rates"],
    }, dm)


def _reference_bps(rates: np.ndarray, spikes: np.ndarray) -> float:
    null = np.broadcast_to(spikes.mean(axis=(0, 1), keepdims=True), spikes.shape)
    gain = stats.poisson.logpmf(spikes, rates).sum() - stats.poisson.logpmf(spikes, null).sum()
    return gain / spikes.sum() / np.log(2)


def test_true_rate_submission_scores_the_files_ceiling(nlb_files, tmp_path) -> None:
    dm = LFADSDataModule(str(nlb_files["tensors"]), batch_size=8)
    submission = write_submission(_true_results(nlb_files, dm), dm, tmp_path / "sub.h5", "mc_maze_small")
    scores = score_submission(submission, nlb_files["target"])["mc_maze_small"]
    truth, spikes = nlb_files["eval_rates"], nlb_files["eval_spikes"]
    assert scores["co_bps"] == pytest.approx(_reference_bps(truth[:, :T, N_IN:], spikes[:, :T, N_IN:]), abs=1e-9)
    assert scores["fp_bps"] == pytest.approx(_reference_bps(truth[:, T:], spikes[:, T:]), abs=1e-9)
    assert scores["psth_r2"] == pytest.approx(1.0, abs=1e-6)  # every trial's rates are its condition's PSTH
    expected_vel = vel_r2(nlb_files["train_rates"][:, :T], nlb_files["train_behavior"], truth[:, :T],
                          nlb_files["eval_behavior"])
    assert scores["vel_r2"] == pytest.approx(expected_vel, abs=1e-6) and scores["vel_r2"] > 0.99
    table = format_submission_scores({"mc_maze_small": scores})
    assert "co-bps" in table and f"{scores['co_bps']:.4f}" in table


def test_submission_from_sampled_model_has_the_benchmark_keys_and_trial_order(nlb_files, tmp_path) -> None:
    dm = LFADSDataModule(str(nlb_files["tensors"]), batch_size=8)
    torch.manual_seed(0)
    model = LFADS(dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim,
                  ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=8, gen_dim=8, fac_dim=4)
    results = sample_posteriors(model, dm, n_samples=2, progress=False)
    path = write_submission(results, dm, tmp_path / "sub.h5", "mc_maze_small")
    with h5py.File(path, "r") as f:
        assert list(f) == ["mc_maze_small"]
        group = {k: f["mc_maze_small"][k][()] for k in f["mc_maze_small"]}
    expected = {"train_rates_heldin": (N, T, N_IN), "train_rates_heldout": (N, T, N_OUT),
                "eval_rates_heldin": (M, T, N_IN), "eval_rates_heldout": (M, T, N_OUT),
                "eval_rates_heldin_forward": (M, T_FP, N_IN), "eval_rates_heldout_forward": (M, T_FP, N_OUT)}
    assert set(group) == set(SUBMISSION_KEYS) and {k: v.shape for k, v in group.items()} == expected
    assert all(v.dtype == np.float32 for v in group.values())
    valid = dm.sessions[0].splits["valid"].extras["inds"]
    valid_rates = results[dm.session_names[0]]["valid"]["rates"]
    np.testing.assert_array_equal(group["train_rates_heldout"][valid], valid_rates[:, :T, N_IN:])
    test_rates = results[dm.session_names[0]]["test"]["rates"]
    np.testing.assert_array_equal(group["eval_rates_heldin_forward"], test_rates[:, T:, :N_IN])


@pytest.mark.skipif(not MC_MAZE_SMALL.exists(), reason="MC_Maze_Small NLB file not available")
def test_mc_maze_small_submission_shapes_and_validation_phase_target(tmp_path) -> None:
    dm = LFADSDataModule(str(MC_MAZE_SMALL), batch_size=15)
    torch.manual_seed(0)
    model = LFADS(dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim,
                  ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=8, gen_dim=8, fac_dim=4)
    results = sample_posteriors(model, dm, n_samples=2, progress=False)
    path = write_submission(results, dm, tmp_path / "sub.h5", "mc_maze_small")
    with h5py.File(path, "r") as f:
        shapes = {k: f["mc_maze_small"][k].shape for k in f["mc_maze_small"]}
    assert shapes == {"train_rates_heldin": (75, 140, 107), "train_rates_heldout": (75, 140, 35),
                      "eval_rates_heldin": (25, 140, 107), "eval_rates_heldout": (25, 140, 35),
                      "eval_rates_heldin_forward": (25, 40, 107), "eval_rates_heldout_forward": (25, 40, 35)}
    target = write_eval_target(MC_MAZE_SMALL, tmp_path / "target.h5", "mc_maze_small")
    scores = score_submission(path, target)["mc_maze_small"]
    assert set(scores) == {"co_bps"}  # the file has no evaluation-trial behaviour or forward spikes
    test_rates = results[dm.session_names[0]]["test"]["rates"]
    expected = bits_per_spike(test_rates[:, :140, 107:], dm.sessions[0].splits["test"].extras["spikes_heldout"], "nlb")
    assert scores["co_bps"] == pytest.approx(expected, rel=1e-5)


def test_scoring_garbage_raises_one_line_errors_naming_file_and_key(nlb_files, tmp_path) -> None:
    dm = LFADSDataModule(str(nlb_files["tensors"]), batch_size=8)
    good = write_submission(_true_results(nlb_files, dm), dm, tmp_path / "sub.h5", "mc_maze_small")
    (tmp_path / "text.h5").write_text("not a submission")
    with pytest.raises(LFADSDataError, match=r"text\.h5: not an HDF5 file"):
        score_submission(tmp_path / "text.h5", nlb_files["target"])
    with h5py.File(good, "r") as f:
        arrays = {k: f["mc_maze_small"][k][()] for k in f["mc_maze_small"]}

    def variant(name: str, **changes) -> Path:
        values = {**arrays, **changes}
        return save_h5_atomic(tmp_path / name, {f"mc_maze_small/{k}": v for k, v in values.items() if v is not None})

    cases = [
        (variant("missing.h5", eval_rates_heldout=None), r"missing\.h5: 'mc_maze_small/eval_rates_heldout' is missing"),
        (variant("shape.h5", eval_rates_heldout=arrays["eval_rates_heldout"][:, :-1]),
         r"shape\.h5: 'mc_maze_small/eval_rates_heldout' has shape \(16, 19, 4\)"),
        (variant("negative.h5", eval_rates_heldout=-arrays["eval_rates_heldout"]),
         r"negative\.h5: 'mc_maze_small/eval_rates_heldout': rates hold .* negative"),
        (variant("text_rates.h5", eval_rates_heldout=np.array([b"x"])),
         r"text_rates\.h5: .*eval_rates_heldout' has shape"),
        (save_h5_atomic(tmp_path / "other.h5", {"mc_rtt/eval_rates_heldout": np.zeros((1, 1, 1))}),
         "share no data set"),
    ]
    for path, message in cases:
        with pytest.raises(LFADSDataError, match=message) as info:
            score_submission(path, nlb_files["target"])
        assert "\n" not in str(info.value)
    with pytest.raises(LFADSDataError, match="not one the benchmark scores"):
        write_submission(_true_results(nlb_files, dm), dm, tmp_path / "x.h5", "my_data")


def test_nlb_test_split_is_scored_against_its_held_out_spikes(nlb_files, tmp_path) -> None:
    dm = LFADSDataModule(str(nlb_files["tensors"]), batch_size=8)
    results = _true_results(nlb_files, dm)
    scores = score_samples(results, dm)[dm.session_names[0]]
    truth, spikes = nlb_files["eval_rates"], nlb_files["eval_spikes"]
    assert scores["test"]["co_bps"] == pytest.approx(_reference_bps(truth[:, :T, N_IN:], spikes[:, :T, N_IN:]),
                                                     abs=1e-9)
    assert scores["test"]["heldin_bps"] == pytest.approx(_reference_bps(truth[:, :T, :N_IN], spikes[:, :T, :N_IN]),
                                                         abs=1e-9)
    assert "fp_bps" not in scores["test"] and "fp_bps" in scores["valid"]
    table = format_scores({dm.session_names[0]: scores})
    assert "heldin_bps" in table.splitlines()[0] and "held-out neurons, encoder bins" in table
    assert "protocol 'lfads'" in table


def test_scores_saved_under_the_old_name_are_read_under_the_new_one(tmp_path) -> None:
    path = save_samples(tmp_path / "s.h5", {"sess": {"valid": {"rates": np.ones((2, 3, 4))}}},
                        {"sess": {"valid": {"bps": 0.25, "co_bps": 0.1}}})
    assert load_scores(path) == {"sess": {"valid": {"heldin_bps": 0.25, "co_bps": 0.1}}}
