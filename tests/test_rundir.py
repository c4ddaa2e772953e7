"""Run folders: versions in numeric order, and the newest run's checkpoint found by number, not by name."""

from __future__ import annotations

import os

from lfads.rundir import find_checkpoint, resolve_run_dir, version_dirs


def make_version(run, n: int, ckpt: str, mtime: float):
    path = run / f"version_{n}" / "checkpoints" / ckpt
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    os.utime(path, (mtime, mtime))
    return path


def test_versions_are_listed_in_numeric_order(tmp_path):
    for n in (10, 9, 2, 0, 11):
        (tmp_path / f"version_{n}").mkdir()
    (tmp_path / "version_notes").mkdir()
    (tmp_path / "version_12").write_text("a file, not a version folder")
    expected = ["version_0", "version_2", "version_9", "version_10", "version_11"]
    assert [p.name for p in version_dirs(tmp_path)] == expected


def test_run_lookup_picks_version_10_over_version_9(tmp_path):
    # version_9's checkpoint is the newer file and "version_9" sorts after "version_10" as text:
    # only the numeric order of versions picks version_10
    make_version(tmp_path, 9, "epoch=5-step=50.ckpt", mtime=2_000_000_000)
    newest = make_version(tmp_path, 10, "epoch=1-step=10.ckpt", mtime=1_000_000_000)
    assert find_checkpoint(tmp_path) == newest
    assert resolve_run_dir(tmp_path) == (tmp_path / "version_10", newest)
