"""Safe file output: checks before the work, a temporary file during it, one rename after it.

:func:`atomic_output` writes to a temporary file in the target folder and renames it into place, so a crash or
an error never leaves a half-written file under the final name, and readers never see one.

:func:`guarded_output` adds the checks every command-line writer needs, all made before any work is done:

- the target is not a folder, not one of the input data files (compared after resolving links, and by inode for
  hard links), and not a file of an existing run (a ``.ckpt`` file, anything in a ``checkpoints/`` folder, or
  ``config.yaml`` / ``hparams.yaml`` / ``metrics.csv`` / ``events.out.tfevents*`` next to a ``checkpoints/``
  folder); these are refused with or without ``overwrite``;
- an existing target is replaced only with ``overwrite``;
- the target folder exists and a file can be created in it;
- a new target is created exclusively: when two writers race for one new path, exactly one succeeds and the other
  gets an "exists" error, and the winner's file is complete.

Both remove their temporary file on any exception, and on SIGINT or SIGTERM received while the work runs.
"""

from __future__ import annotations

import errno
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lfads.errors import LFADSOutputError

RUN_FILE_NAMES: tuple[str, ...] = ("config.yaml", "hparams.yaml", "metrics.csv")
"""Files of a run folder (one holding ``checkpoints/``) that no output may replace; TensorBoard event files
(``events.out.tfevents*``) are protected too."""

_INTERRUPTS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: SystemExit}


# ---------------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------------

def run_file_reason(path: str | os.PathLike) -> str | None:
    """Say why ``path`` is a file of an existing run, or return ``None`` when it is not one.

    A run file is a ``.ckpt`` file, anything directly inside a folder named ``checkpoints``, or ``config.yaml``,
    ``hparams.yaml``, ``metrics.csv`` or ``events.out.tfevents*`` in a folder that holds a ``checkpoints/`` folder.
    Both ``path`` and the file it resolves to (through symbolic links) are tested.
    """
    path = Path(path)
    for candidate in dict.fromkeys((path.absolute(), path.resolve())):
        if candidate.suffix.lower() == ".ckpt":
            return "a checkpoint (.ckpt)"
        if candidate.parent.name == "checkpoints":
            return f"inside the run's checkpoint folder {candidate.parent}"
        name = candidate.name
        if (name in RUN_FILE_NAMES or name.startswith("events.out.tfevents")) \
                and (candidate.parent / "checkpoints").is_dir():
            return f"the {name} of the run folder {candidate.parent}"
    return None


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: equal after resolving links, or one inode (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike,
    *,
    protected: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    what: str = "output",
    option: str = "--out",
    make_parents: bool = False,
    owner: str = "the inputs",
) -> Path:
    """Check that ``path`` may be written, before any work; return it as a :class:`Path`.

    Parameters
    ----------
    path : str or PathLike
        The output file.
    protected : iterable of str or PathLike
        Input files (data files, the checkpoint read) that must never be replaced.
    overwrite : bool
        Allow replacing an existing file that is neither protected nor part of a run.
    what : str
        What the file is (``"samples file"``, ``"analysis output"``), for messages.
    option : str
        The command-line option that named the path, for messages.
    make_parents : bool
        Create missing parent folders (otherwise a missing folder is an error).
    owner : str
        What the ``protected`` files belong to (``"the input data"``, ``"a run"``), for messages.

    Raises
    ------
    LFADSOutputError
        If ``path`` is a folder, a protected input, a run file, exists without ``overwrite``, or its folder is
        missing, not a folder, or not writable. The message names the path and the fix.
    """
    path = Path(path)
    if path.is_dir():
        raise LFADSOutputError(f"{option} {path} is a directory (a folder), not a file; give the {what} a file name, "
                               f"e.g. {path / 'out.h5'}.")
    never = f"which is never overwritten, with or without --overwrite; choose another {option}."
    for source in protected:
        if same_file(path, Path(source)):
            raise LFADSOutputError(f"Refusing to write {path} ({option}): it is the input file {source}, one of "
                                   f"the files of {owner}, {never}")
    reason = run_file_reason(path)
    if reason is not None:
        raise LFADSOutputError(f"Refusing to write {path} ({option}): it is {reason}, one of the files of a run, "
                               f"{never}")
    if os.path.lexists(path) and not overwrite:
        raise LFADSOutputError(f"{path} exists; pass --overwrite to replace it or choose another {option}.")
    _check_folder(path, option, make_parents)
    return path


def _check_folder(path: Path, option: str, make_parents: bool) -> None:
    """Check that the folder of ``path`` exists (or create it) and that files can be created in it."""
    folder = path.absolute().parent
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise LFADSOutputError(f"{path}: {ancestor} is a file, not a folder; choose another {option}.")
            break
    if not folder.is_dir():
        if not make_parents:
            raise LFADSOutputError(f"{path}: the folder {folder} does not exist; create it or choose another "
                                   f"{option}.")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LFADSOutputError(f"{path}: cannot create the folder {folder} ({err.strerror}); choose another "
                                   f"{option}.") from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LFADSOutputError(f"{path}: the folder {folder} is not writable; choose another {option} or change "
                               f"the folder's permissions.")


def check_output_dir(path: str | os.PathLike, *, option: str = "--out-dir", make: bool = True) -> Path:
    """Check that ``path`` is (or can be made) a writable folder for outputs; return it as a :class:`Path`.

    Raises
    ------
    LFADSOutputError
        If ``path`` is a file, cannot be created, or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LFADSOutputError(f"{path}: {option} is a file, not a folder; give a folder (it is created if "
                               f"missing).")
    if not path.exists() and not make:
        raise LFADSOutputError(f"{path}: the folder does not exist; create it or choose another {option}.")
    _check_folder(path / "x", option, make_parents=True)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Temporary file, signals and the final rename
# ---------------------------------------------------------------------------------------------------------------------

def _raise_interrupt(signum: int, frame: object) -> None:
    """Signal handler: turn SIGINT into KeyboardInterrupt and SIGTERM into SystemExit(128 + signum)."""
    if _INTERRUPTS.get(signum) is KeyboardInterrupt:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """While the block runs (main thread only), SIGINT and SIGTERM raise, so ``finally`` blocks run.

    Only signals left at their default action are taken over; ignored signals and handlers installed by others
    are kept. The previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in _INTERRUPTS:
        handler = signal.getsignal(signum)
        if handler in (signal.SIG_DFL, signal.default_int_handler):
            previous[signum] = handler
            signal.signal(signum, _raise_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _make_temp(path: Path, suffix: str, option: str) -> str:
    """Create an empty temporary file next to ``path`` with the permissions a new file would get."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.absolute().parent)
    except OSError as err:
        raise LFADSOutputError(f"{path}: cannot create a file in {path.absolute().parent} ({err.strerror}); "
                               f"choose another {option}.") from err
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def _link_new(tmp: str, path: Path, option: str) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist; exactly one of racing writers succeeds.

    A hard link fails atomically if the target exists. Where the file system has no hard links, an exclusive
    create reserves the name and the rename then replaces the empty reservation.
    """
    exists = LFADSOutputError(f"{path} exists: another process created it while this one was writing; it was not "
                              f"replaced. Pass --overwrite to replace it or choose another {option}.")
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise exists from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise exists from None
        os.replace(tmp, path)
        return
    os.remove(tmp)


def _remove_quietly(tmp: str | None) -> None:
    """Remove the temporary file ``tmp`` if it was made and still exists."""
    if tmp is None:
        return
    try:
        os.remove(tmp)
    except FileNotFoundError:
        pass


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed.

    Missing parent folders are created and an existing ``path`` is replaced; use :func:`guarded_output` for
    outputs named by a user. The temporary file gets the permissions a newly created file would (``mkstemp``
    makes it 0600) and is removed on any exception, SIGINT or SIGTERM.

    Examples
    --------
    >>> with atomic_output("out.h5") as tmp:  # doctest: +SKIP
    ...     h5py.File(tmp, "w").close()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _interrupts_raise():
        tmp = None
        try:
            tmp = _make_temp(path, suffix, "output path")
            yield tmp
            os.replace(tmp, path)
        except BaseException:
            _remove_quietly(tmp)
            raise


@contextmanager
def guarded_output(
    path: str | os.PathLike,
    *,
    protected: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    what: str = "output",
    option: str = "--out",
    make_parents: bool = False,
    suffix: str = ".tmp",
) -> Iterator[str]:
    """Check ``path`` (see :func:`check_output_path`), then yield a temporary path to write the output to.

    On leaving the block without an exception the temporary file becomes ``path``: with ``overwrite`` by a
    rename that replaces any file there; otherwise only if ``path`` still does not exist, so that of two writers
    racing for one new path exactly one succeeds and the other raises :class:`LFADSOutputError` saying it exists.
    On any exception, and on SIGINT or SIGTERM (turned into ``KeyboardInterrupt`` and ``SystemExit(143)`` while
    the block runs in the main thread), the temporary file is removed and nothing at ``path`` changes.

    Parameters
    ----------
    path : str or PathLike
        The output file.
    protected : iterable of str or PathLike
        Input files that must never be replaced (data files, the checkpoint read).
    overwrite : bool
        Allow replacing an existing file that is neither protected nor part of a run.
    what, option : str
        What the file is and which option named it, for messages.
    make_parents : bool
        Create missing parent folders instead of refusing.
    suffix : str
        Ending of the temporary file's name (e.g. ``".tmp.nwb"`` for writers that look at it).

    Yields
    ------
    str
        A new, empty temporary file in the folder of ``path``.

    Raises
    ------
    LFADSOutputError
        Before the block runs, if ``path`` may not be written; after it, if another process created ``path``.

    Examples
    --------
    >>> with guarded_output(args.out, protected=data_paths + [ckpt], overwrite=args.overwrite) as tmp:  # doctest: +SKIP
    ...     save_samples(tmp, results)
    """
    path = check_output_path(path, protected=protected, overwrite=overwrite, what=what, option=option,
                             make_parents=make_parents)
    with _interrupts_raise():
        tmp = None
        try:
            tmp = _make_temp(path, suffix, option)
            yield tmp
            if overwrite:
                try:
                    os.replace(tmp, path)
                except IsADirectoryError as err:
                    raise LFADSOutputError(f"{path}: became a folder while the {what} was written; nothing was "
                                           f"written. Choose another {option}.") from err
            else:
                _link_new(tmp, path, option)
        except BaseException:
            _remove_quietly(tmp)
            raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_output` (readers see the old file or the whole new one)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
