"""HDF5 records (lfads.analysis.records): layout, round trips, errors, and files in the established layout."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from lfads.analysis import FixedPoints, JSLDSResult, Readout, find_fixed_points, simulate_jslds
from lfads.analysis.pipeline import AnalysisResult
from lfads.analysis.records import H5Record
from lfads.errors import LFADSDataError

torch.set_num_threads(1)


@dataclass
class Inner(H5Record):
    FORMAT = "test.Inner/1"
    values: np.ndarray
    note: str = ""


@dataclass
class Outer(H5Record):
    FORMAT = "test.Outer/1"
    matrix: np.ndarray
    labels: np.ndarray
    total: float
    count: int
    inner: Inner | None = None
    optional: np.ndarray | None = None
    settings: dict = field(default_factory=dict)


def _outer() -> Outer:
    return Outer(np.arange(6.0).reshape(2, 3), np.array(["fixed", "slow"]), 0.25, 3,
                 Inner(np.array([1, 2, 3]), "inner note"), None, {"tol": 1e-6, "name": "lm", "flag": True})


def test_record_round_trip_keeps_values_types_and_nesting(tmp_path):
    rec = _outer()
    back = Outer.load(rec.save(tmp_path / "r.h5"))
    np.testing.assert_array_equal(back.matrix, rec.matrix)
    assert back.labels.dtype.kind == "U" and back.labels.tolist() == ["fixed", "slow"]
    assert (back.total, back.count, back.optional, back.settings) == (0.25, 3, None, rec.settings)
    assert type(back.total) is float and type(back.count) is int and type(back.settings["flag"]) is bool
    assert isinstance(back.inner, Inner) and back.inner.note == "inner note"
    np.testing.assert_array_equal(back.inner.values, [1, 2, 3])
    assert Outer.load(Outer(np.zeros(1), np.array(["a"]), 1.0, 1).save(tmp_path / "s.h5")).inner is None


def test_record_layout_is_datasets_attributes_and_groups(tmp_path):
    path = _outer().save(tmp_path / "r.h5")
    with h5py.File(path) as f:
        assert set(f) == {"matrix", "labels", "inner"} and set(f["inner"]) == {"values"}
        assert f["labels"].dtype.kind == "S"
        assert dict(f.attrs) == {"format": "test.Outer/1", "total": 0.25, "count": 3,
                                 "settings.tol": 1e-6, "settings.name": "lm", "settings.flag": True}
        assert dict(f["inner"].attrs) == {"format": "test.Inner/1", "note": "inner note"}


def test_wrong_format_or_missing_field_is_an_error_naming_file_and_field(tmp_path):
    path = _outer().save(tmp_path / "r.h5")
    with pytest.raises(LFADSDataError, match=r"r\.h5: not a Inner file .*'test\.Outer/1'.*Inner\.save"):
        Inner.load(path)
    with h5py.File(path, "a") as f:
        del f["matrix"]
    with pytest.raises(LFADSDataError, match=r"r\.h5: 'matrix' is missing"):
        Outer.load(path)
    with h5py.File(path, "a") as f:
        del f["inner/values"]
    with h5py.File(path, "r") as f, pytest.raises(LFADSDataError, match=r"x\.h5:/inner: 'values' is missing"):
        Inner.from_h5(f["inner"], "x.h5:/inner")


def test_failed_save_leaves_the_existing_file_untouched(tmp_path):
    path = _outer().save(tmp_path / "r.h5")
    before = path.read_bytes()
    with pytest.raises(LFADSDataError, match=r"Outer\.matrix holds Python objects"):
        Outer(np.array([{"a": 1}], dtype=object), np.array(["x"]), 1.0, 1).save(path)
    bad = Outer(np.zeros(3), np.array(["x"]), 1.0, 1, settings={"nested": {"a": 1}})  # fails at the attributes
    with pytest.raises(TypeError):
        bad.save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


# ---------------------------------------------------------------------------- the three analysis records
@pytest.fixture(scope="module")
def analysis_result() -> AnalysisResult:
    """Fixed points of two bistable GRU units (9 points) and a JSLDS with a rate readout."""
    torch.manual_seed(0)
    n = 2
    cell = nn.GRUCell(1, n).double()
    with torch.no_grad():
        cell.weight_hh.zero_()
        cell.weight_hh[2 * n :] = torch.diag(torch.linspace(2.5, 3.0, n)).double()
        cell.bias_hh.zero_()
        cell.bias_hh[:n] = 3.0
        cell.bias_ih.zero_()
    grid = np.linspace(-1.1, 1.1, 5)
    starts = torch.tensor([[x, y] for x in grid for y in grid], dtype=torch.float64)
    fps = find_fixed_points(cell, starts, progress=False)
    readout = Readout(torch.randn(3, n, dtype=torch.float64), None, torch.randn(4, 3, dtype=torch.float64),
                      torch.zeros(4, dtype=torch.float64))
    jslds = simulate_jslds(cell, torch.randn(2, n, dtype=torch.float64), torch.randn(2, 5, 1, dtype=torch.float64),
                           fps, readout=readout)
    return AnalysisResult(fps, jslds, {"split": "valid", "n_trials": 3, "noise_std": 0.1})


def _write_established_layout(node: h5py.Group, record, fmt: str, mapping: str, scalars: tuple[str, ...] = ()) -> None:
    """The layout analysis files have always had, written field by field with h5py."""
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name == mapping or f.name in scalars or value is None:
            continue
        value = np.asarray(value)
        node.create_dataset(f.name, data=value.astype("S") if value.dtype.kind == "U" else value)
    node.attrs["format"] = fmt
    for name in scalars:
        node.attrs[name] = getattr(record, name)
    for key, value in getattr(record, mapping).items():
        node.attrs[f"{mapping}.{key}"] = value


def _assert_same_record(a, b) -> None:
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


def _layout(path) -> dict:
    out = {}
    with h5py.File(path) as f:
        out["/"] = dict(f.attrs)
        f.visititems(lambda name, obj: out.__setitem__(
            name, (obj.dtype.str, obj.shape) if isinstance(obj, h5py.Dataset) else dict(obj.attrs)))
    return out


def test_analysis_files_in_the_established_layout_load_and_are_rewritten_identically(analysis_result, tmp_path):
    res = analysis_result
    old = tmp_path / "established.h5"
    with h5py.File(old, "w") as f:
        f.attrs["format"] = "lfads.analysis.AnalysisResult/1"
        for key, value in res.info.items():
            f.attrs[f"info.{key}"] = value
        _write_established_layout(f.create_group("fixed_points"), res.fixed_points,
                                  "lfads.analysis.FixedPoints/1", "settings")
        _write_established_layout(f.create_group("jslds"), res.jslds, "lfads.analysis.JSLDSResult/1", "errors",
                                  ("one_step_error_total", "rollout_error_total", "mode"))
    back = AnalysisResult.load(old)
    assert back.info == res.info
    _assert_same_record(back.fixed_points, res.fixed_points)
    _assert_same_record(back.jslds, res.jslds)
    assert _layout(back.save(tmp_path / "again.h5")) == _layout(old)
    with h5py.File(old) as f:
        _assert_same_record(FixedPoints.from_h5(f["fixed_points"]), res.fixed_points)
        _assert_same_record(JSLDSResult.from_h5(f["jslds"]), res.jslds)


def test_analysis_result_without_jslds_round_trips(analysis_result, tmp_path):
    res = AnalysisResult(analysis_result.fixed_points)
    back = AnalysisResult.load(res.save(tmp_path / "a.h5"))
    assert back.jslds is None and back.info == {}
    _assert_same_record(back.fixed_points, res.fixed_points)
    with pytest.raises(LFADSDataError, match="lfads analyze"):
        AnalysisResult.load(res.fixed_points.save(tmp_path / "fps.h5"))
