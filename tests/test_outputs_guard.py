"""The output guard refuses unsafe targets before any work, creates new outputs exclusively and cleans up."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lfads.data.atomic import (
    atomic_output,
    check_output_dir,
    check_output_path,
    guarded_output,
    run_file_reason,
)
from lfads.errors import LFADSError, LFADSOutputError

REPO = Path(__file__).resolve().parents[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    """Temporary files the guard may have left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "session.h5"
    path.parent.mkdir()
    path.write_bytes(os.urandom(4096))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as Lightning leaves it."""
    run = tmp_path / "runs" / "lorenz" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "hparams.yaml", "metrics.csv", "events.out.tfevents.1700000000.host.1.0"):
        (run / name).write_text(f"{name} content\n")
    for name in ("last.ckpt", "epoch=3-step=40.ckpt"):
        (run / "checkpoints" / name).write_bytes(os.urandom(1024))
    return run


def _write_and_fail(path: Path, **kwargs) -> str:
    """Run a guarded write that must be refused before its block runs."""
    ran = []
    with pytest.raises(LFADSOutputError) as info, guarded_output(path, **kwargs) as tmp:
        ran.append(tmp)
        Path(tmp).write_bytes(b"output")
    assert ran == [], "the block ran although the target was refused"
    return str(info.value)


# ---------------------------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("overwrite", [False, True])
def test_protected_input_file_is_refused_with_or_without_overwrite(data_file: Path, overwrite: bool) -> None:
    before = _sha256(data_file)
    message = _write_and_fail(data_file, protected=[data_file], overwrite=overwrite)
    assert str(data_file) in message and "input file" in message and "--out" in message
    assert _sha256(data_file) == before
    assert _leftovers(data_file.parent) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_protected_input_reached_through_a_symlink_is_refused(data_file: Path, tmp_path: Path,
                                                              overwrite: bool) -> None:
    link = tmp_path / "link.h5"
    link.symlink_to(data_file)
    before = _sha256(data_file)
    message = _write_and_fail(link, protected=[data_file], overwrite=overwrite)
    assert "input file" in message
    assert _sha256(data_file) == before and link.is_symlink()


def test_protected_input_given_by_a_relative_path_is_refused(data_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(data_file.parent.parent)
    before = _sha256(data_file)
    _write_and_fail(data_file, protected=[Path("data") / ".." / "data" / "session.h5"], overwrite=True)
    assert _sha256(data_file) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_hard_link_to_a_protected_input_is_refused(data_file: Path, tmp_path: Path, overwrite: bool) -> None:
    hard = tmp_path / "hard.h5"
    os.link(data_file, hard)
    before = _sha256(data_file)
    message = _write_and_fail(hard, protected=[data_file], overwrite=overwrite)
    assert "input file" in message
    assert _sha256(data_file) == before


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("name", ["config.yaml", "hparams.yaml", "metrics.csv",
                                  "events.out.tfevents.1700000000.host.1.0", "checkpoints/last.ckpt",
                                  "checkpoints/epoch=3-step=40.ckpt", "checkpoints/new_file.h5"])
def test_files_of_a_run_are_refused_with_or_without_overwrite(run_dir: Path, name: str, overwrite: bool) -> None:
    target = run_dir / name
    before = {p: _sha256(p) for p in run_dir.rglob("*") if p.is_file()}
    message = _write_and_fail(target, overwrite=overwrite)
    assert str(target) in message and "never overwritten" in message
    assert {p: _sha256(p) for p in run_dir.rglob("*") if p.is_file()} == before
    assert _leftovers(run_dir) == [] and _leftovers(run_dir / "checkpoints") == []


def test_a_ckpt_file_anywhere_and_a_symlink_to_one_are_refused(run_dir: Path, tmp_path: Path) -> None:
    assert run_file_reason(tmp_path / "elsewhere" / "model.ckpt") is not None
    link = tmp_path / "samples.h5"
    link.symlink_to(run_dir / "checkpoints" / "last.ckpt")
    before = _sha256(run_dir / "checkpoints" / "last.ckpt")
    _write_and_fail(link, overwrite=True)
    assert _sha256(run_dir / "checkpoints" / "last.ckpt") == before


def test_run_file_names_outside_a_run_folder_are_ordinary_outputs(tmp_path: Path) -> None:
    assert run_file_reason(tmp_path / "metrics.csv") is None
    assert run_file_reason(tmp_path / "config.yaml") is None
    assert run_file_reason(tmp_path / "runs" / "x" / "version_0" / "samples.h5") is None


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_is_refused(tmp_path: Path, overwrite: bool) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    message = _write_and_fail(folder, overwrite=overwrite)
    assert str(folder) in message and "folder" in message
    assert (folder / "keep.txt").read_text() == "keep"


def test_an_existing_file_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "samples.h5"
    out.write_bytes(b"old")
    message = _write_and_fail(out)
    assert str(out) in message and "exists" in message and "--overwrite" in message and "--out" in message
    assert out.read_bytes() == b"old"
    with guarded_output(out, overwrite=True) as tmp:
        Path(tmp).write_bytes(b"new")
    assert out.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_the_option_name_appears_in_messages(tmp_path: Path) -> None:
    out = tmp_path / "a.nwb"
    out.write_bytes(b"old")
    with pytest.raises(LFADSOutputError, match="--nwb-out"):
        check_output_path(out, option="--nwb-out")


# ---------------------------------------------------------------------------------------------- the target folder

def test_a_missing_folder_is_refused_before_the_work(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "samples.h5"
    message = _write_and_fail(out)
    assert str(tmp_path / "missing") in message and "does not exist" in message
    assert not (tmp_path / "missing").exists()


def test_a_missing_folder_is_created_on_request(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "samples.h5"
    with guarded_output(out, make_parents=True) as tmp:
        Path(tmp).write_bytes(b"x")
    assert out.read_bytes() == b"x"


@pytest.mark.parametrize("make_parents", [False, True])
def test_a_path_under_a_regular_file_is_refused(tmp_path: Path, make_parents: bool) -> None:
    blocker = tmp_path / "plain.txt"
    blocker.write_text("plain")
    message = _write_and_fail(blocker / "sub" / "samples.h5", make_parents=make_parents)
    assert str(blocker) in message and "not a folder" in message
    assert blocker.read_text() == "plain"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_folder_is_refused_before_the_work(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        message = _write_and_fail(folder / "samples.h5")
        assert "not writable" in message and str(folder) in message
    finally:
        folder.chmod(0o755)


def test_output_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(LFADSOutputError, match="--out-dir is a file"):
        check_output_dir(target)
    assert target.read_text() == "a file"
    assert check_output_dir(tmp_path / "made") == tmp_path / "made" and (tmp_path / "made").is_dir()


def test_output_errors_belong_to_the_project_errors() -> None:
    assert issubclass(LFADSOutputError, LFADSError)


# ---------------------------------------------------------------------------------------- temporary file, success

def test_success_writes_the_file_with_no_temporary_left_and_nothing_visible_before(tmp_path: Path) -> None:
    out = tmp_path / "samples.h5"
    with guarded_output(out) as tmp:
        assert Path(tmp).parent == tmp_path and Path(tmp).exists()
        Path(tmp).write_bytes(b"payload")
        assert not out.exists(), "the target must not appear before the work is done"
    assert out.read_bytes() == b"payload"
    assert _leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_exception_removes_the_temporary_and_leaves_the_target_alone(tmp_path: Path, overwrite: bool) -> None:
    out = tmp_path / "samples.h5"
    if overwrite:
        out.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), guarded_output(out, overwrite=overwrite) as tmp:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("boom")
    assert _leftovers(tmp_path) == []
    assert (out.read_bytes() == b"old") if overwrite else not out.exists()


def test_signal_handlers_are_restored_after_the_block(tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with guarded_output(tmp_path / "a.h5") as tmp:
        if before[signal.SIGTERM] is signal.SIG_DFL:
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM now raises
        Path(tmp).write_bytes(b"x")
    assert {s: signal.getsignal(s) for s in before} == before


def test_atomic_output_still_replaces_and_creates_folders(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "file.bin"
    with atomic_output(out) as tmp:
        Path(tmp).write_bytes(b"one")
    with atomic_output(out) as tmp:
        Path(tmp).write_bytes(b"two")
    assert out.read_bytes() == b"two" and _leftovers(out.parent) == []


# ---------------------------------------------------------------------------------------------- other processes

_CHILD = textwrap.dedent("""
    import importlib.util, sys, time
    from pathlib import Path
    from lfads.errors import LFADSOutputError

    # the guard's own file, loaded without the data package's heavier imports
    spec = importlib.util.spec_from_file_location("atomic", sys.argv[5])
    atomic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(atomic)
    guarded_output = atomic.guarded_output

    out, ready, go, payload_byte = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    try:
        with guarded_output(out) as tmp:
            with open(tmp, "wb") as f:
                f.write(payload_byte.encode() * 1_000_000)
                f.flush()
                ready.touch()
                deadline = time.time() + 60
                while not go.exists() and time.time() < deadline:
                    time.sleep(0.01)
                f.write(payload_byte.encode() * 1_000_000)
    except LFADSOutputError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
""")


def _child(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    atomic_file = REPO / "lfads" / "data" / "atomic.py"
    # SIGINT at its default in the child, as in a terminal: a shell's background job inherits it ignored
    return subprocess.Popen([sys.executable, "-c", _CHILD, *map(str, args), str(atomic_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(paths: list[Path], procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not all(p.exists() for p in paths):
        assert time.time() < deadline, "children never got ready"
        for proc in procs:
            assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def test_two_writers_racing_for_one_new_path_exactly_one_succeeds(tmp_path: Path) -> None:
    out, go = tmp_path / "samples.h5", tmp_path / "go"
    ready = [tmp_path / "ready_a", tmp_path / "ready_b"]
    procs = [_child(out, ready[0], go, "a"), _child(out, ready[1], go, "b")]
    _wait_for(ready, procs)  # both are inside the guard, past every check, writing
    assert not out.exists()
    go.touch()
    results = [proc.communicate(timeout=60) + (proc.returncode,) for proc in procs]
    codes = sorted(code for _, _, code in results)
    assert codes == [0, 2], results
    loser_err = next(err for _, err, code in results if code == 2)
    assert "exists" in loser_err and str(out) in loser_err
    content = out.read_bytes()
    assert len(content) == 2_000_000 and len(set(content)) == 1  # complete, from one writer only
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_a_signal_mid_write_removes_the_temporary(tmp_path: Path, signum: int, code: int) -> None:
    out, go, ready = tmp_path / "samples.h5", tmp_path / "go", tmp_path / "ready"
    proc = _child(out, ready, go, "a")
    _wait_for([ready], [proc])
    assert len(_leftovers(tmp_path)) == 1  # the temporary file exists mid-write
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == code
    assert _leftovers(tmp_path) == [] and not out.exists()
