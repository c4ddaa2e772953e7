"""The compiled CPU time loops (``recurrence_native.cpp``), built on first use.

The recurrent loops of :mod:`lfads.modules.recurrence` run one Python-dispatched
tensor operation per gate per step; at the small batches of real datasets that
dispatch, not arithmetic, is most of a training step on a CPU. The C++ versions
run the same loops in one call each, with every GRU step's elementwise work
fused into one vectorized pass, and are checked against the Python loops by the
tests. The same extension holds the loops of every cell of task-trained populations
(:mod:`lfads.population.recurrence`).

The extension is compiled with the system C++ compiler the first time it is
needed (about 30 s, once per copy of the source; torch caches it under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``). The cache
folder is named after the source file's location: ninja rebuilds whenever the
source path in its build file changes, so two checkouts sharing one folder would
silently rebuild each other's library (30 s and over 1.5 GB of compiler memory)
at every switch. Where no compiler is available the Python loops are used, with
one warning. They run only for CPU tensors of dtype float32 or float64; whether
they are used at all is the recurrence backend's choice (:mod:`lfads.runtime`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

_SOURCE = Path(__file__).with_name("recurrence_native.cpp")
# One name (and cache folder) per location of the source: see the module docstring.
_NAME = "lfads_recurrence_native_" + hashlib.sha1(str(_SOURCE.resolve()).encode()).hexdigest()[:10]
_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", "-march=native"]
if platform.machine().lower() in ("x86_64", "amd64"):
    # Where the CPU has AVX-512, vectorize with it (compilers default to 256-bit vectors): the gates' exp runs
    # 16 lanes wide, a population's LSTM step about 10% faster. Ignored on CPUs without it.
    _FLAGS.append("-mprefer-vector-width=512")
_state: dict[str, ModuleType | None] = {}


def load() -> ModuleType | None:
    """The compiled module, building it on first call; ``None`` if it cannot be built."""
    if "module" not in _state:
        _state["module"] = _build()
    return _state["module"]


def _build() -> ModuleType | None:
    from torch.utils import cpp_extension

    try:
        _put_ninja_on_path()
        if not cpp_extension.is_ninja_available():
            raise RuntimeError("ninja is not installed")
        if not _is_cached():
            print("lfads: compiling the CPU recurrent loops (once, about 30 s)", file=sys.stderr, flush=True)
        # -ffast-math only at compile time: linking with it would set flush-to-zero for the whole process.
        return cpp_extension.load(
            name=_NAME,
            sources=[str(_SOURCE)],
            extra_cflags=_FLAGS,
            extra_ldflags=[],
            verbose=False,
        )
    except Exception as err:  # no compiler, no ninja, a build error: fall back to the Python loops
        lines = str(err).splitlines()
        reason = next((line for line in lines if "error" in line.lower() and ".cpp" in line), lines[0] if lines else "")
        warnings.warn(
            f"lfads: could not build the compiled recurrent loops ({type(err).__name__}: {reason[:400]}); "
            "using the Python loops, which are slower on a CPU. Set LFADS_RECURRENCE=python to skip this attempt.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def _is_cached() -> bool:
    """Whether a built library is already in torch's extension cache (a changed source still rebuilds)."""
    from torch.utils import cpp_extension

    try:
        folder = Path(cpp_extension._get_build_directory(_NAME, verbose=False))
    except Exception:
        return False
    return any(folder.glob(f"{_NAME}*.so")) or any(folder.glob(f"{_NAME}*.pyd"))


def _put_ninja_on_path() -> None:
    """torch runs ``ninja`` from PATH; a virtual environment's own (the ``ninja`` package) is not on it
    unless activated."""
    if shutil.which("ninja") is not None:
        return
    try:
        import ninja
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def usable(*tensors: torch.Tensor) -> ModuleType | None:
    """The compiled module if every tensor is a CPU float32/float64 tensor (and it is available), else None."""
    for t in tensors:
        if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
            return None
    return load()
