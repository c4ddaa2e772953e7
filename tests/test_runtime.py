"""Process-wide settings of :mod:`lfads.runtime`: huge pages and threads."""

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
    code = "import torch; from lfads.runtime import configure_threads; configure_threads(); print(torch.get_num_threads())"
    assert _run(code, **env) == expected


def test_configure_threads_uses_one_thread_on_small_machines_by_default() -> None:
    if (os.cpu_count() or 1) > 4:
        pytest.skip("the one-thread default applies to machines with at most 4 cores")
    code = "import torch; from lfads.runtime import configure_threads; print(configure_threads(), torch.get_num_threads())"
    assert _run(code) == "1 1"
