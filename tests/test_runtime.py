"""Process-wide settings of :mod:`lfads.runtime`: huge pages, threads and the recurrence backend."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "LFADS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_lfads_turns_on_huge_pages_unless_the_user_set_them() -> None:
    code = "import os, lfads; print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    assert _run(code) == "1"
    assert _run(code, THP_MEM_ALLOC_ENABLE="0") == "0"


@pytest.mark.parametrize("env,expected", [({"LFADS_NUM_THREADS": "2"}, "2"), ({"LFADS_NUM_THREADS": "1"}, "1")])
def test_configure_threads_follows_lfads_num_threads(env: dict, expected: str) -> None:
    code = ("import torch; from lfads.runtime import configure_threads; configure_threads(); "
            "print(torch.get_num_threads())")
    assert _run(code, **env) == expected


def test_configure_threads_uses_one_thread_on_small_machines_by_default() -> None:
    if (os.cpu_count() or 1) > 4:
        pytest.skip("the one-thread default applies to machines with at most 4 cores")
    code = ("import torch; from lfads.runtime import configure_threads; "
            "print(configure_threads(), torch.get_num_threads())")
    assert _run(code) == "1 1"


# ---------------------------------------------------------------------------- progress bars
_BAR = ("import time; from lfads.runtime import configure_progress; configure_progress(); from tqdm import tqdm; "
        "[time.sleep(0.01) for _ in tqdm(range(50))]")


def _redraws(**env: str) -> int:
    base = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    out = subprocess.run([sys.executable, "-c", _BAR], env={**base, **env}, capture_output=True, text=True, check=True)
    return len([part for part in out.stderr.replace("\r", "\n").splitlines() if part.strip()])


def test_progress_bars_written_to_a_log_redraw_only_at_start_and_end() -> None:
    assert _redraws() <= 3  # stderr is a pipe here: the first and last draw, not one per 0.1 s
    assert _redraws(TQDM_MININTERVAL="0") >= 40  # the user's own setting wins


def test_a_command_logging_to_a_file_writes_a_few_progress_lines(tmp_path) -> None:
    # tqdm reads TQDM_* variables once, at import (torch imports it): the entry point must set them first
    base = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    args = ["population", "--task", "flipflop", "--arch", "vanilla", "--seeds", "1", "--units", "8",
            "--max-steps", "300", "--out", str(tmp_path / "pop.h5")]
    out = subprocess.run([sys.executable, "-m", "lfads", *args], env=base, capture_output=True, text=True, check=True)
    lines = [part for part in out.stderr.replace("\r", "\n").splitlines() if "training 1 vanilla" in part]
    assert 1 <= len(lines) <= 3, lines


def test_progress_bars_on_a_terminal_keep_their_rate(monkeypatch) -> None:
    from lfads.runtime import configure_progress

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert not configure_progress(Terminal())
    assert "TQDM_MININTERVAL" not in os.environ


# ---------------------------------------------------------------------------- recurrence backend
@pytest.fixture
def no_backend_env(monkeypatch):
    monkeypatch.delenv("LFADS_RECURRENCE", raising=False)
    monkeypatch.delenv("LFADS_NATIVE", raising=False)
    from lfads.runtime import set_recurrence_backend

    with set_recurrence_backend(None):
        yield monkeypatch


def test_recurrence_backend_comes_from_the_setting_then_the_environment_then_auto(no_backend_env) -> None:
    from lfads.runtime import recurrence_backend, set_recurrence_backend

    assert recurrence_backend() == "auto"
    no_backend_env.setenv("LFADS_NATIVE", "0")  # the older switch
    assert recurrence_backend() == "python"
    no_backend_env.setenv("LFADS_RECURRENCE", "native")
    assert recurrence_backend() == "native"
    with set_recurrence_backend("reference"):
        assert recurrence_backend() == "reference"
        with set_recurrence_backend("python"):
            assert recurrence_backend() == "python"
        assert recurrence_backend() == "reference"
    assert recurrence_backend() == "native"
    no_backend_env.setenv("LFADS_RECURRENCE", "fast")
    with pytest.raises(ValueError, match=r"LFADS_RECURRENCE='fast' is not a recurrence backend.*'reference'"):
        recurrence_backend()
    with pytest.raises(ValueError, match="'gpu' is not a recurrence backend"):
        set_recurrence_backend("gpu")


def test_each_backend_runs_the_loops_it_names(no_backend_env) -> None:
    import torch

    from lfads.modules import native, recurrence
    from lfads.runtime import set_recurrence_backend

    cpu = torch.zeros(2, dtype=torch.float32)
    for name, fused, compiled in (("reference", False, None), ("python", True, None), ("auto", True, native.load())):
        with set_recurrence_backend(name):
            assert recurrence.backend() == name
            assert recurrence.fused_loops() is fused
            assert recurrence.compiled_loops(cpu) is compiled
    with set_recurrence_backend("auto"):
        assert recurrence.compiled_loops(torch.zeros(2, dtype=torch.int64)) is None
    with (
        set_recurrence_backend("native"),
        pytest.raises(RuntimeError, match=r"backend is 'native'.*\('cpu', 'int64'\)"),
    ):
        recurrence.compiled_loops(torch.zeros(2, dtype=torch.int64))


def test_checkpoints_with_the_former_fused_recurrence_hyperparameter_load(tmp_path, no_backend_env) -> None:
    import pytorch_lightning as pl
    import torch

    from lfads.model import LFADS

    torch.manual_seed(0)
    model = LFADS(encod_data_dims=[5], recon_data_dims=[6], encod_seq_len=6, recon_seq_len=7, ic_enc_dim=4,
                  ci_enc_dim=4, con_dim=4, co_dim=2, ic_dim=3, gen_dim=6, fac_dim=3).eval()
    assert "fused_recurrence" not in model.hparams
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": model.state_dict(), "pytorch-lightning_version": pl.__version__,
                "hyper_parameters": {**model.hparams, "fused_recurrence": False}}, path)
    loaded = LFADS.load_from_checkpoint(path, map_location="cpu").eval()
    assert "fused_recurrence" not in loaded.hparams
    encod = {0: torch.poisson(torch.full((2, 6, 5), 1.5))}
    ext = {0: torch.zeros(2, 7, 0)}
    for a, b in zip(model(encod, ext, sample=False)[0], loaded(encod, ext, sample=False)[0]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
