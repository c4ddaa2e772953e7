"""Tests for the synthetic dataset generators (datasets.lorenz, datasets.chaotic_rnn)."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest

from datasets import chaotic_rnn, lorenz
from datasets.chaotic_rnn import estimate_lyapunov_exponent, generate_chaotic_rnn, make_chaotic_rnn_weights
from datasets.lorenz import generate_lorenz, integrate_lorenz, write_lorenz

SMALL_LORENZ = dict(n_conditions=6, trials_per_condition=10, n_time=40, n_forward=5, n_heldin=8, n_heldout=3)
SMALL_RNN = dict(n_conditions=6, trials_per_condition=10, n_units=20, n_time=60, n_heldout=4, require_chaos=False)


def _assert_layout(data: dict[str, np.ndarray], n_trials: dict[str, int], t_enc: int, t_recon: int,
                   n_in: int, n_recon: int) -> None:
    assert float(data["conversion_factor"]) == pytest.approx(100.0)
    for split, n in n_trials.items():
        assert data[f"{split}_encod_data"].shape == (n, t_enc, n_in)
        assert data[f"{split}_recon_data"].shape == (n, t_recon, n_recon)
        assert data[f"{split}_truth"].shape == (n, t_recon, n_recon)
        assert data[f"{split}_conditions"].shape == (n,)
        assert data[f"{split}_encod_data"].dtype == np.float32 and data[f"{split}_truth"].dtype == np.float32
        assert np.issubdtype(data[f"{split}_conditions"].dtype, np.integer)
        # encod is the first bins / neurons of recon
        np.testing.assert_array_equal(data[f"{split}_encod_data"], data[f"{split}_recon_data"][:, :t_enc, :n_in])
        counts = data[f"{split}_recon_data"]
        assert np.all(counts >= 0) and np.all(counts == np.round(counts))


def test_lorenz_default_sizes_and_layout() -> None:
    start = time.perf_counter()
    data = generate_lorenz()
    assert time.perf_counter() - start < 10.0
    _assert_layout(data, {"train": 400, "valid": 100}, 100, 100, 30, 40)
    assert "test_encod_data" not in data
    assert data["train_latents"].shape == (400, 100, 3)
    # every condition is in both splits (stratified), with 8 train / 2 valid trials
    np.testing.assert_array_equal(np.bincount(data["train_conditions"]), np.full(50, 8))
    np.testing.assert_array_equal(np.bincount(data["valid_conditions"]), np.full(50, 2))
    rates = data["train_truth"]
    assert 0.5 < np.percentile(rates, 1) and np.percentile(rates, 99) < 60.0  # spikes/s


def test_lorenz_is_deterministic_given_seed() -> None:
    a, b, c = generate_lorenz(**SMALL_LORENZ), generate_lorenz(**SMALL_LORENZ), generate_lorenz(**SMALL_LORENZ, seed=1)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["train_recon_data"], c["train_recon_data"])


def test_lorenz_forward_bins_heldout_neurons_and_test_split() -> None:
    data = generate_lorenz(**SMALL_LORENZ, test_fraction=0.1)
    _assert_layout(data, {"train": 42, "valid": 12, "test": 6}, 40, 45, 8, 11)
    all_inds = np.concatenate([data[f"{s}_inds"] for s in ("train", "valid", "test")])
    np.testing.assert_array_equal(np.sort(all_inds), np.arange(60))


def test_lorenz_trials_of_a_condition_share_truth_and_latents() -> None:
    data = generate_lorenz(**SMALL_LORENZ)
    conditions = data["train_conditions"]
    for cond in np.unique(conditions):
        members = np.flatnonzero(conditions == cond)
        np.testing.assert_array_equal(data["train_truth"][members[0]], data["train_truth"][members[-1]])
        np.testing.assert_array_equal(data["train_latents"][members[0]], data["train_latents"][members[-1]])


def test_lorenz_rk4_matches_scipy_solve_ivp() -> None:
    from scipy.integrate import solve_ivp

    start = np.array([[1.0, 1.0, 20.0]])
    ours = integrate_lorenz(start, 200, 0.005)[0, -1]
    ref = solve_ivp(lambda t, s: lorenz.lorenz_derivative(s), (0, 1.0), start[0], rtol=1e-11, atol=1e-11).y[:, -1]
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def _check_mean_counts_match_truth(data: dict[str, np.ndarray]) -> None:
    """Law of large numbers: per condition x bin x neuron, the trial-averaged count ~ truth / conversion_factor."""
    counts, expected = data["train_recon_data"].astype(float), data["train_truth"] / data["conversion_factor"]
    conditions = data["train_conditions"]
    z_scores = []
    for cond in np.unique(conditions):
        members = conditions == cond
        lam = expected[members][0]
        mean = counts[members].mean(axis=0)
        z_scores.append((mean - lam) / np.sqrt(lam / members.sum()))
    z = np.concatenate([zz.ravel() for zz in z_scores])
    assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1
    assert counts.mean() == pytest.approx(expected.mean(), rel=0.01)


def test_lorenz_truth_over_conversion_factor_is_expected_count() -> None:
    data = generate_lorenz(n_conditions=4, trials_per_condition=500, n_time=50, valid_fraction=0.1)
    _check_mean_counts_match_truth(data)


def test_chaotic_rnn_truth_over_conversion_factor_is_expected_count() -> None:
    data = generate_chaotic_rnn(**{**SMALL_RNN, "n_conditions": 4, "trials_per_condition": 500}, valid_fraction=0.1)
    _check_mean_counts_match_truth(data)


def test_chaotic_rnn_default_sizes_and_layout() -> None:
    start = time.perf_counter()
    data = generate_chaotic_rnn()
    assert time.perf_counter() - start < 20.0
    _assert_layout(data, {"train": 1120, "valid": 280}, 100, 100, 50, 50)
    assert "train_true_inputs" not in data
    rates = data["train_truth"]
    assert rates.min() >= 0.0 and rates.max() <= 30.0
    # trials of a condition share the trajectory
    conditions = data["train_conditions"]
    first, last = np.flatnonzero(conditions == 0)[[0, -1]]
    np.testing.assert_array_equal(rates[first], rates[last])
    # the network stays active through the trial (no decay to a fixed point)
    assert rates[:, 50:].std(axis=1).mean() > 2.0


def test_chaotic_rnn_is_deterministic_and_heldout_units_are_last() -> None:
    a, b = generate_chaotic_rnn(**SMALL_RNN), generate_chaotic_rnn(**SMALL_RNN)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    _assert_layout(a, {"train": 48, "valid": 12}, 60, 60, 16, 20)
    c = generate_chaotic_rnn(**SMALL_RNN, seed=3)
    assert not np.array_equal(a["train_truth"], c["train_truth"])


def test_chaotic_rnn_default_network_is_chaotic_and_plain_draw_is_the_first_draw() -> None:
    recurrent, input_weights = make_chaotic_rnn_weights(50, seed=0, gain=1.5)
    assert recurrent.shape == (50, 50) and input_weights.shape == (50, 1)
    assert estimate_lyapunov_exponent(recurrent, 1.5, substeps=2, duration=5.0, burn_in=2.0,
                                      seed=int(chaotic_rnn._streams(0)["probe"].integers(2**31))) > 0.5
    plain, plain_b = make_chaotic_rnn_weights(50, seed=0, gain=1.5, require_chaos=False)
    np.testing.assert_array_equal(plain_b, input_weights)  # B does not depend on the chaos search
    assert plain.std() == pytest.approx(1 / np.sqrt(50), rel=0.05)


def test_lyapunov_exponent_is_negative_below_the_chaotic_transition() -> None:
    recurrent, _ = make_chaotic_rnn_weights(50, seed=0, require_chaos=False)
    # gain 0.5: x = 0 is the only, stable fixed point; every perturbation decays at about (1 - 0.5 * rho) / tau.
    assert estimate_lyapunov_exponent(recurrent, 0.5, substeps=2, duration=2.0, burn_in=1.0) < -10.0


def test_chaotic_rnn_input_pulse_variant_has_one_pulse_per_trial_at_recorded_bin() -> None:
    data = generate_chaotic_rnn(**SMALL_RNN, input_pulse=True, pulse_window=(10, 50))
    for split in ("train", "valid"):
        inputs, pulse_bins = data[f"{split}_true_inputs"], data[f"{split}_pulse_bins"]
        assert inputs.shape == (len(pulse_bins), 60, 1)
        nonzero = inputs[..., 0] != 0
        np.testing.assert_array_equal(nonzero.sum(axis=1), np.ones(len(pulse_bins)))
        np.testing.assert_array_equal(np.argmax(nonzero, axis=1), pulse_bins)
        assert np.all(inputs[nonzero] == 20.0)
        assert pulse_bins.min() >= 10 and pulse_bins.max() < 50
    # trials of one condition coincide up to the earlier pulse (inclusive) and differ afterwards
    truth, conditions, pulse_bins = data["train_truth"], data["train_conditions"], data["train_pulse_bins"]
    members = np.flatnonzero(conditions == conditions[0])
    i, j = next((a, b) for a in members for b in members if pulse_bins[a] + 2 < pulse_bins[b])
    p = pulse_bins[i]
    np.testing.assert_array_equal(truth[i, : p + 1], truth[j, : p + 1])
    assert np.abs(truth[i, p + 1] - truth[j, p + 1]).max() > 0.1


def test_pulse_variant_matches_direct_integration_with_inputs() -> None:
    params = {**SMALL_RNN, "n_conditions": 2, "trials_per_condition": 3, "n_heldout": 0}
    data = generate_chaotic_rnn(**params, input_pulse=True, valid_fraction=0.0)
    recurrent, input_weights = make_chaotic_rnn_weights(20, 0, 1.5, 0.025, require_chaos=False)
    initial = chaotic_rnn._streams(0)["initial"].normal(size=(2, 20))
    states = chaotic_rnn.integrate_chaotic_rnn(
        initial[data["train_conditions"]], recurrent, 1.5, 0.025, 0.01, 60, 2,
        data["train_true_inputs"].astype(float), input_weights,
    )
    np.testing.assert_allclose(data["train_truth"], 15.0 * (np.tanh(states) + 1.0), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("module", [lorenz, chaotic_rnn])
def test_cli_writes_layout_with_attributes_atomically(module, tmp_path) -> None:
    out = tmp_path / "data.h5"
    args = ["--out", str(out), "--seed", "2", "--n-conditions", "4", "--trials-per-condition", "5"]
    if module is chaotic_rnn:
        args += ["--n-units", "12", "--input-pulse", "--allow-non-chaotic"]
    assert module.main(args) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["bin_size"] == pytest.approx(0.01)
        assert f.attrs["seed"] == 2
        assert f.attrs["conversion_factor"] == pytest.approx(100.0)
        assert "description" in f.attrs
        assert f["train_encod_data"].dtype == np.float32
        assert float(f["conversion_factor"][()]) == pytest.approx(100.0)
        assert f["train_recon_data"].shape[0] + f["valid_recon_data"].shape[0] == 20
        if module is chaotic_rnn:
            assert f["train_true_inputs"].shape[1:] == (100, 1)
            assert not f.attrs["require_chaos"]
    assert [p.name for p in tmp_path.iterdir()] == ["data.h5"]  # no temporary file left behind


def test_write_lorenz_rejects_unknown_parameters(tmp_path) -> None:
    with pytest.raises(TypeError, match="n_neurons"):
        write_lorenz(tmp_path / "x.h5", n_neurons=5)


def test_generator_commands_rewrite_their_own_file_but_never_another_and_report_bad_settings_in_one_line(
        tmp_path, capsys):
    ours, theirs = tmp_path / "lorenz.h5", tmp_path / "recording.h5"
    small = ["--n-conditions", "2", "--trials-per-condition", "5", "--n-time", "20"]
    assert lorenz.main(["--out", str(ours), *small]) == 0
    assert lorenz.main(["--out", str(ours), *small, "--seed", "1"]) == 0  # its own file: written again
    theirs.write_bytes(ours.read_bytes())
    with h5py.File(theirs, "a") as f:
        f.attrs["generator"] = "a rig"
    before = theirs.read_bytes()
    for module in (lorenz, chaotic_rnn):
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            module.main(["--out", str(theirs), *small])
        assert stop.value.code == 2 and theirs.read_bytes() == before
        assert capsys.readouterr().err.splitlines() == [
            f"python -m datasets.{module.__name__.split('.')[-1]}: error: {theirs} exists; pass --overwrite to "
            "replace it or choose another --out."]
    assert lorenz.main(["--out", str(theirs), *small, "--overwrite"]) == 0 and theirs.read_bytes() != before
    with pytest.raises(SystemExit):
        lorenz.main(["--out", str(tmp_path / "new.h5"), "--n-conditions", "0"])
    says = "python -m datasets.lorenz: error: n_conditions must be at least 1, got 0."
    assert capsys.readouterr().err.strip() == says
    assert not (tmp_path / "new.h5").exists()
