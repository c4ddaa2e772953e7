"""NWB binning options: NWBBinning.from_mapping (the one validator) and the lfads convert flags built from it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lfads.commands.convert import _binning_from_args, _build_convert_parser, load_nwb_binning_config
from lfads.data.datamodule import _to_nwb_binning
from lfads.data.nwb import NWBBinning, NWBBinningError
from lfads.errors import LFADSDataError

FIELDS = [f.name for f in dataclasses.fields(NWBBinning)]


# ---------------------------------------------------------------------------------------------------------------------
# NWBBinning.from_mapping
# ---------------------------------------------------------------------------------------------------------------------


def test_from_mapping_normalises_values_and_keeps_the_base_for_the_rest():
    base = NWBBinning(align_event="go", seed=4)
    binning = NWBBinning.from_mapping({"bin_ms": 20, "window_ms": [-100, 200], "condition_columns": ("a", "b"),
                                       "split_column": None, "forward_bins": np.int64(3)}, base=base)
    assert binning == NWBBinning(align_event="go", seed=4, bin_ms=20.0, window_ms=(-100.0, 200.0),
                                 condition_columns=["a", "b"], split_column=None, forward_bins=3)
    assert type(binning.bin_ms) is float and type(binning.forward_bins) is int
    assert all(type(v) is float for v in binning.window_ms)
    assert NWBBinning.from_mapping({}) == NWBBinning()


def test_from_mapping_lists_unknown_options_with_the_valid_ones():
    with pytest.raises(NWBBinningError) as info:
        NWBBinning.from_mapping({"bin_size": 20, "bin_ms": 20, "align": "go"}, source="run.yaml: data.nwb")
    message = str(info.value)
    assert message.startswith("run.yaml: data.nwb: unknown NWB binning option(s) ['align', 'bin_size'].")
    assert f"Valid options: {FIELDS}" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("bin_ms", "5", "a number"),
        ("bin_ms", True, "a number"),
        ("forward_bins", 2.0, "an integer"),
        ("seed", False, "an integer"),
        ("window_ms", [0, 1, 2], "a list of 2 numbers"),
        ("window_ms", "(-250, 450)", "a list of 2 numbers"),
        ("condition_columns", "condition", "a list of strings or null"),
        ("condition_columns", ["a", 1], "a list of strings or null"),
        ("align_event", None, "a string"),
        ("split_column", 3, "a string or null"),
    ],
)
def test_from_mapping_names_the_source_field_and_expected_type_of_a_wrong_value(name, value, expected):
    with pytest.raises(NWBBinningError) as info:
        NWBBinning.from_mapping({name: value}, source="cfg.yaml: data.nwb")
    assert str(info.value) == (f"cfg.yaml: data.nwb: option {name} must be {expected}, got {value!r} "
                               f"({type(value).__name__}).")


def test_binning_errors_are_data_errors_and_type_errors():
    with pytest.raises(LFADSDataError, match=r"^data\.nwb must be a mapping of NWB binning options \(or null\), got "
                                             r"list: \['bin_ms'\]\.$"):
        NWBBinning.from_mapping(["bin_ms"], source="data.nwb")
    with pytest.raises(TypeError, match="unknown NWB binning option"):
        NWBBinning.from_mapping({"bins": 1})


def test_data_module_options_go_through_from_mapping():
    assert _to_nwb_binning(None) is None
    binning = NWBBinning(bin_ms=10.0)
    assert _to_nwb_binning(binning) is binning
    assert _to_nwb_binning({"bin_ms": 10, "window_ms": [0, 100]}) == NWBBinning(bin_ms=10.0, window_ms=(0.0, 100.0))
    with pytest.raises(LFADSDataError, match=r"^data\.nwb: option bin_ms must be a number, got 'ten' \(str\)\.$"):
        _to_nwb_binning({"bin_ms": "ten"})


def test_config_section_errors_name_the_file_and_field(tmp_path):
    config = tmp_path / "fit.yaml"
    config.write_text("data:\n  init_args:\n    nwb:\n      bin_ms: 20\n      window_ms: [-200, 400]\n")
    assert load_nwb_binning_config(config) == NWBBinning(bin_ms=20.0, window_ms=(-200.0, 400.0))
    config.write_text("data:\n  nwb:\n    window_ms: -200\n")
    with pytest.raises(LFADSDataError, match=rf"^{config}: data\.nwb: option window_ms must be a list of 2 numbers"):
        load_nwb_binning_config(config)


# ---------------------------------------------------------------------------------------------------------------------
# lfads convert flags
# ---------------------------------------------------------------------------------------------------------------------


def _parse(*flags: str):
    return _build_convert_parser().parse_args(["--nwb", "a.nwb", "--out-dir", "out", *flags])


def test_convert_has_one_flag_per_binning_field_with_the_documented_names():
    options = {a.option_strings[0]: a for a in _build_convert_parser()._actions if a.dest in FIELDS}
    assert list(options) == ["--align-event", "--window-ms", "--bin-ms", "--forward-bins", "--heldout-column",
                             "--heldout-fraction", "--split-column", "--valid-fraction", "--test-fraction",
                             "--behavior", "--condition-columns", "--seed", "--unobserved"]
    assert [options[f"--{name.replace('_', '-')}"].dest for name in FIELDS] == FIELDS
    assert options["--bin-ms"].help == "Bin width in ms (a whole number of nanoseconds). Default: 5.0."
    assert options["--window-ms"].nargs == 2 and options["--window-ms"].metavar == ("START", "END")
    assert options["--condition-columns"].nargs == "+"


def test_flags_override_the_config_and_absent_flags_leave_it(tmp_path):
    config = tmp_path / "fit.yaml"
    config.write_text("data:\n  nwb:\n    bin_ms: 20\n    behavior: hand_vel\n    seed: 3\n")
    binning = _binning_from_args(_parse("--config", str(config), "--bin-ms", "10", "--window-ms", "-200", "400",
                                        "--forward-bins", "2"))
    assert binning == NWBBinning(bin_ms=10.0, window_ms=(-200.0, 400.0), forward_bins=2, behavior="hand_vel", seed=3)
    assert _binning_from_args(_parse()) == NWBBinning()


def test_none_flags_clear_optional_fields_set_by_the_config(tmp_path):
    config = tmp_path / "fit.yaml"
    config.write_text("data:\n  nwb:\n    behavior: hand_vel\n    condition_columns: [condition]\n")
    binning = _binning_from_args(_parse("--config", str(config), "--split-column", "none", "--behavior", "null",
                                        "--heldout-column", "None", "--condition-columns", "none"))
    assert (binning.split_column, binning.behavior, binning.heldout_column, binning.condition_columns) == (
        None, None, None, None)
    assert _binning_from_args(_parse("--condition-columns", "a", "b")).condition_columns == ["a", "b"]


def test_a_malformed_flag_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        _parse("--bin-ms", "five")
    assert "--bin-ms: invalid float value: 'five'" in capsys.readouterr().err
