"""The steps of lfads.data.nwb.bin_nwb, each on hand-built arrays with hand-computed results."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lfads.data.nwb import (
    BinGrid,
    Drop,
    NWBBinning,
    NWBDropWarning,
    SessionTables,
    TrialContext,
    _assign_splits,
    _bin_grid,
    _count_spikes,
    _drop_behavior_gaps,
    _drop_nan_event,
    _drop_outside_recording,
    _drop_split_none,
    _drop_unobserved,
    _kept_trials,
    _pack,
    _trial_windows,
    _unit_order,
)
from lfads.errors import LFADSDataError

PATH = Path("session.nwb")
MS = 1_000_000  # ns
S = 1_000_000_000  # ns


def _tables(spikes, align, start=None, stop=None, heldout=None, **extra) -> SessionTables:
    """SessionTables from spike times (s) per unit; unit ids are 10, 11, ... so they differ from rows."""
    lengths = np.array([len(u) for u in spikes], dtype=np.int64)
    ends = np.cumsum(lengths)
    flat = np.concatenate([np.asarray(u, dtype=np.float64) for u in spikes])
    align = np.asarray(align, dtype=np.float64)
    return SessionTables(
        unit_ids=np.arange(10, 10 + len(spikes), dtype=np.int64),
        spike_ns=np.rint(flat * S).astype(np.int64),
        unit_starts=ends - lengths,
        unit_ends=ends,
        heldout=np.zeros(len(spikes), dtype=bool) if heldout is None else np.asarray(heldout),
        align=align,
        trial_start=align - 0.5 if start is None else np.asarray(start, dtype=np.float64),
        trial_stop=align + 0.5 if stop is None else np.asarray(stop, dtype=np.float64),
        **extra,
    )


def _context(tables, starts_s, length_s, binning=None, unit_order=None, behavior_ok=None) -> TrialContext:
    start = np.rint(np.asarray(starts_s) * S).astype(np.int64)
    grid = BinGrid(start_ns=0, bin_ns=int(length_s * S), n_bins=1, n_forward=0)
    order = np.arange(len(tables.unit_ids)) if unit_order is None else np.asarray(unit_order)
    return TrialContext(PATH, binning or NWBBinning(), tables, grid, start, start + int(length_s * S), order,
                        behavior_ok)


# ---------------------------------------------------------------------------------------------------------------------
# Bin grid and windows
# ---------------------------------------------------------------------------------------------------------------------


def test_bin_grid_holds_the_window_in_whole_nanoseconds():
    grid = _bin_grid(NWBBinning(window_ms=(-250.0, 450.0), bin_ms=5.0, forward_bins=3), PATH)
    assert grid == BinGrid(start_ns=-250 * MS, bin_ns=5 * MS, n_bins=140, n_forward=3)
    assert grid.total_bins == 143
    fine = _bin_grid(NWBBinning(window_ms=(-0.5, 1.0), bin_ms=0.25), PATH)
    assert (fine.start_ns, fine.bin_ns, fine.n_bins) == (-500_000, 250_000, 6)


def test_bin_grid_rejects_a_window_that_is_not_a_whole_number_of_bins():
    with pytest.raises(LFADSDataError, match=r"session\.nwb: the window \(0.0, 10.0\) ms .* 2.5 bins of 4 ms"):
        _bin_grid(NWBBinning(window_ms=(0.0, 10.0), bin_ms=4.0), PATH)


def test_trial_windows_start_at_the_event_plus_the_offset_and_nan_events_sit_at_zero():
    grid = BinGrid(start_ns=-250 * MS, bin_ns=5 * MS, n_bins=140, n_forward=3)
    start, end = _trial_windows(np.array([0.3, np.nan, 1.35]), grid)
    np.testing.assert_array_equal(start, [50 * MS, -250 * MS, 1100 * MS])
    np.testing.assert_array_equal(end - start, [715 * MS] * 3)


# ---------------------------------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------------------------------


def test_unit_order_leaves_out_silent_units_and_puts_heldout_units_last():
    tables = _tables([[0.1], [], [0.2], [0.3], [0.4]], [1.0], heldout=[True, False, False, True, False])
    with pytest.warns(NWBDropWarning, match=r"session\.nwb: dropped 1 of 5 units: they have no spikes "
                                            r"\(unit ids \[11\]\)"):
        order, n_in = _unit_order(tables, NWBBinning(), PATH)
    assert order.tolist() == [2, 4, 0, 3] and n_in == 2


def test_unit_order_needs_a_heldin_unit_with_spikes():
    tables = _tables([[0.1], []], [1.0], heldout=[True, False])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NWBDropWarning)
        with pytest.raises(LFADSDataError, match=r"session\.nwb: no held-in unit with spikes is left"):
            _unit_order(tables, NWBBinning(), PATH)


# ---------------------------------------------------------------------------------------------------------------------
# Trial drop rules, each alone
# ---------------------------------------------------------------------------------------------------------------------


def test_nan_event_rule_drops_the_trials_without_an_event_time():
    ctx = _context(_tables([[0.1]], [0.3, np.nan, 2.0]), [0.0, 1.0, 2.0], 0.1,
                   binning=NWBBinning(align_event="go"))
    drop = _drop_nan_event(ctx, np.ones(3, dtype=bool))
    assert drop.mask.tolist() == [False, True, False]
    assert drop.reason == "their 'go' is NaN."


def test_split_none_rule_drops_trials_labelled_none_and_nothing_without_labels():
    labels = np.array(["train", "none", "valid", "none"], dtype=object)
    ctx = _context(_tables([[0.1]], [0, 1, 2, 3], split_labels=labels), [0, 1, 2, 3], 0.1)
    assert _drop_split_none(ctx, np.ones(4, dtype=bool)).mask.tolist() == [False, True, False, True]
    ctx = _context(_tables([[0.1]], [0, 1, 2, 3]), [0, 1, 2, 3], 0.1)
    assert _drop_split_none(ctx, np.ones(4, dtype=bool)).mask.tolist() == [False] * 4


def test_outside_recording_rule_uses_the_trials_and_spikes_extent():
    # recording: [min(0, 0.2, 0.05), max(2.0, 2.5)] = [0, 2.5] s; windows are 0.3 s long
    tables = _tables([[0.05, 2.5], [1.0]], [0, 0, 0, 0], start=[0.2, 1.0, 1.0, 1.0], stop=[0.8, 2.0, 2.0, 2.0])
    ctx = _context(tables, [-0.1, 0.5, 2.2, 2.3], 0.3, binning=NWBBinning(forward_bins=0))
    drop = _drop_outside_recording(ctx, np.ones(4, dtype=bool))
    assert drop.mask.tolist() == [True, False, False, True]  # [2.2, 2.5) ends exactly at the end: kept
    assert drop.reason == "their window (incl. 0 forward bins) extends outside the recording [0, 2.5] s."


def test_unobserved_rule_checks_every_output_unit_and_counts_kept_trials_only():
    obs = [np.array([[0, 1 * S]]), np.array([[0, 2 * S]]), np.zeros((0, 2), dtype=np.int64)]
    tables = _tables([[0.1], [0.2], [0.3]], [0, 0, 0, 0], obs_intervals=obs)
    # windows [0.2, 0.5), [0.8, 1.2), [1.5, 1.8), [1.9, 2.2); unit row 2 (never observed) is not an output unit
    ctx = _context(tables, [0.2, 0.8, 1.5, 1.9], 0.3, unit_order=[1, 0])
    keep = np.array([True, True, False, True])
    drop = _drop_unobserved(ctx, keep)
    assert drop.mask.tolist() == [False, True, False, True]
    assert drop.reason.endswith("(unit id: trials outside, worst first: {10: 2, 11: 1}).")
    assert "{10: 2, 11: 1}" in drop.if_none_left
    assert not _drop_unobserved(_context(_tables([[0.1]], [0]), [0.2], 0.3), np.ones(1, dtype=bool)).mask.any()


def test_behavior_rule_drops_the_trials_the_binned_behavior_marks_bad():
    ctx = _context(_tables([[0.1]], [0, 1, 2]), [0, 1, 2], 0.1, binning=NWBBinning(behavior="hand_vel"),
                   behavior_ok=np.array([True, False, True]))
    drop = _drop_behavior_gaps(ctx, np.ones(3, dtype=bool))
    assert drop.mask.tolist() == [False, True, False] and "'hand_vel'" in drop.reason
    ctx = _context(_tables([[0.1]], [0, 1, 2]), [0, 1, 2], 0.1)
    assert not _drop_behavior_gaps(ctx, np.ones(3, dtype=bool)).mask.any()


# ---------------------------------------------------------------------------------------------------------------------
# Applying the rules
# ---------------------------------------------------------------------------------------------------------------------


def _fixed_rule(mask, reason, if_none_left=""):
    return lambda ctx, keep: Drop(np.asarray(mask), reason, if_none_left)


def test_each_rule_warns_about_the_trials_it_drops_among_those_still_kept():
    ctx = _context(_tables([[0.1]], [0, 1, 2, 3]), [0, 1, 2, 3], 0.1)
    rules = [_fixed_rule([True, True, False, False], "first."), _fixed_rule([False, True, True, False], "second."),
             _fixed_rule([False, False, False, False], "never.")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = _kept_trials(ctx, rules)
    assert kept.tolist() == [3]
    assert [str(w.message) for w in caught] == ["session.nwb: dropped 2 of 4 trials: first.",
                                                "session.nwb: dropped 1 of 4 trials: second."]


def test_a_rule_that_drops_the_last_trials_raises_its_own_error():
    ctx = _context(_tables([[0.1]], [0, 1]), [0, 1], 0.1)
    rules = [_fixed_rule([True, False], "a."), _fixed_rule([False, True], "b.", if_none_left="rule b left none.")]
    with pytest.warns(NWBDropWarning) as caught:
        with pytest.raises(LFADSDataError, match=r"^session\.nwb: rule b left none\.$"):
            _kept_trials(ctx, rules)
    assert [str(w.message)[-2:] for w in caught] == ["a.", "b."]  # the warnings come before the error
    rules = [_fixed_rule([True, True], "a."), _fixed_rule([False, True], "b.", if_none_left="rule b left none.")]
    with pytest.warns(NWBDropWarning, match="a[.]"):
        with pytest.raises(LFADSDataError, match=r"session\.nwb: no trials left after the drops"):
            _kept_trials(ctx, rules)  # b drops nothing new, so the generic error


# ---------------------------------------------------------------------------------------------------------------------
# Splits, counts, output arrays
# ---------------------------------------------------------------------------------------------------------------------


def test_random_split_takes_the_first_permuted_trials_for_valid_then_test():
    binning = NWBBinning(split_column=None, valid_fraction=0.2, test_fraction=0.1)
    split_of = _assign_splits(10, None, binning, np.random.default_rng(5), PATH)
    perm = np.random.default_rng(5).permutation(10)
    expected = np.full(10, "train", dtype=object)
    expected[perm[:2]] = "valid"
    expected[perm[2:3]] = "test"
    assert split_of.tolist() == expected.tolist()


def test_labelled_split_is_kept_and_an_empty_valid_split_is_an_error():
    labels = np.array(["train", "valid", "test"], dtype=object)
    assert _assign_splits(3, labels, NWBBinning(), np.random.default_rng(0), PATH).tolist() == [
        "train", "valid", "test"]
    with pytest.raises(LFADSDataError, match=r"the 'valid' split would be empty: trials column 'split' gives split "
                                             r"sizes \{'train': 2, 'valid': 0, 'test': 0\}"):
        _assign_splits(2, np.array(["train", "train"], dtype=object), NWBBinning(), np.random.default_rng(0), PATH)


def test_counts_follow_the_unit_order_and_half_open_bins():
    tables = _tables([[0.10, 0.15, 0.29, 0.30], [0.05, 0.2, 1.0]], [0.0])
    grid = BinGrid(start_ns=0, bin_ns=100 * MS, n_bins=2, n_forward=1)
    starts = np.array([100 * MS, 0])  # windows [0.1, 0.4) and [0, 0.3) s, three 100 ms bins each
    counts = _count_spikes(tables, np.array([1, 0]), starts, grid)
    assert counts.dtype == np.float32 and counts.shape == (2, 3, 2)
    np.testing.assert_array_equal(counts[:, :, 0], [[0, 1, 0], [1, 0, 1]])  # unit row 1: 0.05, 0.2 (1.0 outside)
    np.testing.assert_array_equal(counts[:, :, 1], [[2, 1, 1], [0, 2, 1]])  # unit row 0


def test_pack_cuts_encod_from_recon_and_maps_rows_back_to_trials():
    tables = _tables([[0.1], [0.2], [0.3]], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                     conditions=np.array([7, 8, 9, 7, 8, 9]))
    grid = BinGrid(start_ns=-250 * MS, bin_ns=5 * MS, n_bins=3, n_forward=1)
    recon = np.arange(3 * 4 * 3, dtype=np.float32).reshape(3, 4, 3)
    split_of = np.array(["train", "valid", "train"], dtype=object)
    out = _pack(recon, split_of, np.array([0, 2, 5]), tables, np.array([2, 0, 1]), 2, grid, None)
    assert sorted(out) == sorted(["train_encod_data", "train_recon_data", "train_trial_ids", "train_align_times",
                                  "train_conditions", "valid_encod_data", "valid_recon_data", "valid_trial_ids",
                                  "valid_align_times", "valid_conditions", "heldin_unit_ids", "heldout_unit_ids",
                                  "bin_size", "window_start"])
    np.testing.assert_array_equal(out["train_encod_data"], recon[[0, 2], :3, :2])
    np.testing.assert_array_equal(out["valid_recon_data"], recon[[1]])
    assert out["train_trial_ids"].tolist() == [0, 5] and out["valid_trial_ids"].tolist() == [2]
    assert out["train_align_times"].tolist() == [0.0, 5.0] and out["train_conditions"].tolist() == [7, 9]
    assert out["heldin_unit_ids"].tolist() == [12, 10] and out["heldout_unit_ids"].tolist() == [11]
    assert float(out["bin_size"]) == 0.005 and float(out["window_start"]) == -0.25
