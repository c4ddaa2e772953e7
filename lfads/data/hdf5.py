"""Reading and writing the LFADS HDF5 layout (one file per session)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lfads.data.atomic import atomic_output
from lfads.data.batch import SPLITS, SessionData, SplitData, session_name_from_path
from lfads.errors import LFADSDataError


def save_h5_atomic(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping | None = None,
    group_attrs: Mapping[str, Mapping] | None = None,
) -> Path:
    """Write ``arrays`` (name -> array; names may contain ``/`` for groups) to ``path`` atomically.

    ``attrs`` become root attributes; ``group_attrs`` maps a group path to the attributes of that group.

    The file is written to a temporary file in the same folder and renamed onto ``path``,
    so a crash never leaves a half-written file and readers never see one.
    """
    path = Path(path)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            value = np.asarray(value)
            kwargs = {"compression": "gzip", "compression_opts": 4} if value.ndim >= 2 and value.size > 1024 else {}
            f.create_dataset(key, data=value, **kwargs)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        for group, group_values in (group_attrs or {}).items():
            node = f.require_group(group)
            for key, value in group_values.items():
                node.attrs[key] = value
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Reading and validation
# ---------------------------------------------------------------------------------------------------------------------

DATA_FIELDS: tuple[str, ...] = ("encod_data", "recon_data", "ext_input", "truth")
"""Per-split datasets that the model reads; every other ``{split}_<name>`` dataset is an extra."""

MASK_FIELDS: tuple[str, ...] = ("encod_mask", "recon_mask")
"""Optional per-split boolean datasets marking the observed elements of ``encod_data`` and ``recon_data``
(True = observed); a file without them has every element observed."""

MAX_DATA_MAGNITUDE: float = 1e6
"""Largest magnitude accepted in ``encod_data`` and ``recon_data``: spike counts per bin, and the continuous
signals LFADS models, are far smaller, and squares of larger values overflow the model's float32 costs."""

REQUIRED_KEYS: tuple[str, ...] = ("train_encod_data", "train_recon_data", "valid_encod_data", "valid_recon_data")
"""Datasets every LFADS-layout file must hold."""

_SPLIT_KEY = re.compile(r"^(" + "|".join(SPLITS) + r")_(.+)$")


def check_split_keys(keys: Iterable[str], path: str | os.PathLike = "<memory>") -> None:
    """Refuse dataset names that look like a misspelt split or data field, instead of keeping them as extras.

    A key ``<prefix>_<field>`` is refused when ``<prefix>`` is not a split name and either ``<field>`` is one of
    :data:`DATA_FIELDS` or :data:`MASK_FIELDS` (``tset_encod_data``, ``validation_recon_mask``) or both parts are
    close to a split name and a data field (``vaild_recon_dat``); a key ``<split>_<field>`` is refused when
    ``<field>`` is close to, but not, a data or mask field (``train_ext_inputs``, ``train_recon_masks``).
    Closeness is :func:`difflib.get_close_matches` similarity.

    Raises
    ------
    LFADSDataError
        Naming the file, the key, the name it resembles and the splits the file holds.
    """
    keys = list(keys)
    present = [split for split in SPLITS if any(key.startswith(f"{split}_") for key in keys)]
    for key in keys:
        if "/" in key or "_" not in key:
            continue
        match = _SPLIT_KEY.match(key)
        if match is not None:
            split, fname = match.groups()
            close = difflib.get_close_matches(fname, DATA_FIELDS + MASK_FIELDS, n=1, cutoff=0.85)
            if fname not in DATA_FIELDS + MASK_FIELDS and close:
                raise LFADSDataError(f"{path}: dataset '{key}' looks like '{split}_{close[0]}' misspelt; rename it "
                                     f"to '{split}_{close[0]}' (or give a per-trial extra a name less like "
                                     f"'{close[0]}').")
            continue
        for cut in [i for i, char in enumerate(key) if char == "_"]:
            prefix, fname = key[:cut], key[cut + 1:]
            split_guess = difflib.get_close_matches(prefix, SPLITS, n=1, cutoff=0.6)
            known = DATA_FIELDS + MASK_FIELDS
            field_guess = [fname] if fname in known else difflib.get_close_matches(fname, known, n=1, cutoff=0.8)
            if field_guess and (split_guess or fname in known):
                suggestion = f" (did you mean '{split_guess[0]}_{field_guess[0]}'?)" if split_guess else ""
                raise LFADSDataError(
                    f"{path}: dataset '{key}' names an unknown split '{prefix}'{suggestion}; the file holds the "
                    f"splits {present} and split names are {list(SPLITS)}. Rename the dataset.")


def check_h5_readable(path: str | os.PathLike, label: str = "", glob: bool = True) -> Path:
    """Return ``path`` as a :class:`Path` after checking that it names an existing HDF5 file that opens.

    Parameters
    ----------
    path : str or PathLike
        The file.
    label : str
        What gave the path (an option such as ``--tensors``), put before it in the messages.
    glob : bool
        Whether a folder's message suggests a glob of its files (where several files are accepted).

    Raises
    ------
    LFADSDataError
        If the file is missing, is a folder, is not HDF5, or is truncated.
    """
    path = Path(path)
    name = f"{label} {path}" if label else f"{path}"
    if not path.exists():
        raise LFADSDataError(f"{name}: file not found. Check the path (relative paths are taken from {Path.cwd()}).")
    if not path.is_file():
        hint = f", or a glob such as '{path}/*.h5'" if glob else ""
        raise LFADSDataError(f"{name}: is a folder, not a file. Give the path of an HDF5 file{hint}.")
    if not h5py.is_hdf5(path):
        raise LFADSDataError(f"{name}: not an HDF5 file. Data files must be HDF5 in the LFADS layout "
                             f"(train_encod_data, train_recon_data, ...) or the NLB layout, or NWB files "
                             f"ending in .nwb.")
    open_hdf5(path, label=label).close()
    return path


def open_hdf5(path: str | os.PathLike, fix: str = "Copy or write it again.", label: str = "") -> h5py.File:
    """``path`` opened read-only; a file HDF5 cannot open (h5py's ``OSError`` names no file) raises
    :class:`LFADSDataError` naming it (after ``label``, e.g. the option that gave it), as not HDF5 when it lacks
    the HDF5 signature and otherwise as truncated or still being written, followed by ``fix``."""
    try:
        return h5py.File(path, "r")
    except OSError as err:
        name = f"{label} {path}" if label else f"{path}"
        what = ("is not an HDF5 file" if _lacks_signature(path) else
                "cannot be opened as HDF5; the file is truncated or still being written")
        raise LFADSDataError(f"{name}: {what} ({_first_line(err)}). {fix}") from err


def _lacks_signature(path: str | os.PathLike) -> bool:
    try:
        return not h5py.is_hdf5(path)
    except OSError:  # unreadable: say nothing about its contents
        return False


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _to_python(value: Any) -> Any:
    """Numpy scalars -> Python scalars, bytes -> str; arrays are kept."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value


def read_h5_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every dataset (keyed by its HDF5 path, without a leading ``/``) and the root attributes of a file.

    Returns
    -------
    arrays : dict of str to np.ndarray
    attrs : dict
        Root attributes, numpy scalars converted to Python scalars.
    """
    path = check_h5_readable(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = np.asarray(obj[()])

            f.visititems(visit)
            attrs = {key: _to_python(value) for key, value in f.attrs.items()}
    except OSError as err:
        raise LFADSDataError(f"{path}: cannot read the HDF5 file ({_first_line(err)}). Is it truncated or still being "
                             f"written?") from err
    return arrays, attrs


def _as_float32(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise LFADSDataError(f"{path}: '{key}' has dtype {array.dtype}; it must hold numbers (float32 counts).")
    return np.ascontiguousarray(array, dtype=np.float32)


def _read_scalar(value: Any, path: Path, key: str) -> float:
    array = np.asarray(value)
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        raise LFADSDataError(f"{path}: '{key}' must be one number, got {array!r}.")
    scalar = float(array.reshape(()))
    if not np.isfinite(scalar) or scalar <= 0:
        raise LFADSDataError(f"{path}: '{key}' must be a positive finite number, got {scalar}.")
    return scalar


def build_session(
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    path: str | os.PathLike = "<memory>",
    name: str | None = None,
) -> SessionData:
    """Parse and validate a mapping ``name -> array`` in the LFADS layout into a :class:`SessionData`.

    ``{split}_truth`` is divided by ``conversion_factor`` (root dataset or attribute; 1 if absent) so that
    ``truth`` holds expected counts per bin. ``{split}_ext_input`` defaults to an ``(n, T_recon, 0)`` array.
    ``{split}_recon_mask`` and ``{split}_encod_mask`` (see :func:`_read_masks`) become ``SplitData.recon_mask``
    and ``SplitData.encod_mask``, and the data at unobserved elements are set to 0 (they may be NaN in the
    file). Other ``{split}_<name>`` datasets become ``SplitData.extras[<name>]``; datasets without a split prefix
    become ``SessionData.extras``.

    Parameters
    ----------
    arrays : mapping of str to np.ndarray
        The datasets, keyed as in the file.
    attrs : mapping, optional
        Root attributes (``bin_size`` in seconds, ``conversion_factor``, descriptive entries).
    path : str or PathLike
        Where the data came from; used in error messages and stored in the result.
    name : str, optional
        Session name; defaults to the stem of ``path``.

    Raises
    ------
    LFADSDataError
        For any violation of the layout (see :func:`validate_session`), naming the file and the key.
    """
    path = Path(path)
    attrs = {key: _to_python(value) for key, value in (attrs or {}).items()}
    arrays = dict(arrays)
    check_split_keys(arrays, path)

    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise LFADSDataError(
            f"{path}: missing required dataset(s) {missing}. An LFADS file holds {list(REQUIRED_KEYS)} "
            f"(optional: test_encod_data, test_recon_data, {{split}}_ext_input, {{split}}_truth); "
            f"found {sorted(arrays)}.")

    # conversion factor: root dataset or attribute
    conversion_factor = 1.0
    if "conversion_factor" in arrays:
        conversion_factor = _read_scalar(arrays.pop("conversion_factor"), path, "conversion_factor")
        if "conversion_factor" in attrs:
            other = _read_scalar(attrs["conversion_factor"], path, "conversion_factor (attribute)")
            if other != conversion_factor:
                raise LFADSDataError(f"{path}: the dataset 'conversion_factor' ({conversion_factor}) and the "
                                     f"attribute 'conversion_factor' ({other}) disagree; keep one.")
    elif "conversion_factor" in attrs:
        conversion_factor = _read_scalar(attrs["conversion_factor"], path, "conversion_factor (attribute)")
    attrs.pop("conversion_factor", None)

    bin_size = None
    if attrs.get("bin_size") is not None:
        bin_size = _read_scalar(attrs["bin_size"], path, "bin_size (attribute)")
        attrs["bin_size"] = bin_size

    grouped: dict[str, dict[str, np.ndarray]] = {split: {} for split in SPLITS}
    session_extras: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        match = _SPLIT_KEY.match(key)
        if match is None:
            session_extras[key] = np.asarray(value)
        else:
            grouped[match.group(1)][match.group(2)] = np.asarray(value)

    for split, fields in grouped.items():
        if fields and "encod_data" not in fields:
            raise LFADSDataError(f"{path}: found {[f'{split}_{k}' for k in fields]} but no '{split}_encod_data'; "
                                 f"a split needs its encoder data. Add '{split}_encod_data' or remove the others.")
        for fname in DATA_FIELDS:
            if fname in fields and fields[fname].ndim != 3:
                raise LFADSDataError(f"{path}: '{split}_{fname}' has shape {fields[fname].shape}; it must be 3-D "
                                     f"(trials, time, neurons).")

    recon_len = grouped["train"]["recon_data"].shape[1]
    splits: dict[str, SplitData] = {}
    for split, fields in grouped.items():
        if not fields:
            continue
        encod = _as_float32(fields.pop("encod_data"), path, f"{split}_encod_data")
        recon = fields.pop("recon_data", None)
        recon = None if recon is None else _as_float32(recon, path, f"{split}_recon_data")
        ext = fields.pop("ext_input", None)
        if ext is None:
            t_recon = recon.shape[1] if recon is not None else recon_len
            ext = np.zeros((encod.shape[0], t_recon, 0), dtype=np.float32)
        else:
            ext = _as_float32(ext, path, f"{split}_ext_input")
        truth = fields.pop("truth", None)
        if truth is not None:
            truth = _as_float32(truth, path, f"{split}_truth")
            if conversion_factor != 1.0:
                truth = (truth / np.float32(conversion_factor)).astype(np.float32)
        recon_mask, encod_mask = _read_masks(fields, encod, recon, path, split)
        if encod_mask is not None:
            encod = np.where(encod_mask, encod, np.float32(0.0))
        if recon_mask is not None:
            recon = np.where(recon_mask, recon, np.float32(0.0))
        splits[split] = SplitData(encod_data=encod, recon_data=recon, ext_input=ext, truth=truth, extras=fields,
                                  recon_mask=recon_mask, encod_mask=encod_mask)

    session = SessionData(name=name if name is not None else session_name_from_path(path), path=path, splits=splits, attrs=attrs,
                          bin_size=bin_size, extras=session_extras)
    validate_session(session)
    return session


def _as_mask(array: np.ndarray, path: Path, key: str, shape: tuple[int, ...], like: str) -> np.ndarray:
    """``array`` as a bool mask after checking it is boolean (or 0/1) with the shape of dataset ``like``."""
    array = np.asarray(array)
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.number) or not np.isin(array, (0, 1)).all():
            raise LFADSDataError(f"{path}: '{key}' must be boolean (True = observed) or hold only 0 and 1; got dtype "
                                 f"{array.dtype}.")
        array = array.astype(bool)
    if array.shape != shape:
        raise LFADSDataError(f"{path}: '{key}' has shape {array.shape} but '{like}' has {shape}; a mask marks every "
                             f"element of its data.")
    return np.ascontiguousarray(array)


def _read_masks(
    fields: dict[str, np.ndarray], encod: np.ndarray, recon: np.ndarray | None, path: Path, split: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Pop and check ``{split}_recon_mask`` and ``{split}_encod_mask`` from a split's datasets.

    The encoder data are the block ``recon[:, :T_enc, :N_in]``, so the two masks must agree there; a mask the
    file lacks is filled in from the other: ``encod_mask = recon_mask[:, :T_enc, :N_in]``, or ``recon_mask``
    True everywhere except that block, which is ``encod_mask``.

    Returns
    -------
    recon_mask, encod_mask : np.ndarray or None
        Bool, True = observed; ``(None, None)`` when the split has no mask.
    """
    recon_mask, encod_mask = fields.pop("recon_mask", None), fields.pop("encod_mask", None)
    if recon_mask is None and encod_mask is None:
        return None, None
    t_enc, n_in = encod.shape[1:]
    if encod_mask is not None:
        encod_mask = _as_mask(encod_mask, path, f"{split}_encod_mask", encod.shape, f"{split}_encod_data")
    if recon_mask is not None:
        if recon is None:
            raise LFADSDataError(f"{path}: '{split}_recon_mask' is given but '{split}_recon_data' is not; remove the "
                                 f"mask or add the data.")
        recon_mask = _as_mask(recon_mask, path, f"{split}_recon_mask", recon.shape, f"{split}_recon_data")
        block = recon_mask[:, :t_enc, :n_in]
        if encod_mask is not None and not np.array_equal(encod_mask, block):
            index = _first_index(encod_mask != block)
            raise LFADSDataError(f"{path}: '{split}_encod_mask' and '{split}_recon_mask' disagree at {index} (trial, "
                                 f"time, neuron); the encoder data are the first {t_enc} bins and {n_in} neurons of "
                                 f"the recon data, so their masks must agree there.")
        encod_mask = np.ascontiguousarray(block)
    elif recon is not None:
        recon_mask = np.ones(recon.shape, dtype=bool)
        recon_mask[:, :t_enc, :n_in] = encod_mask
    return recon_mask, encod_mask


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def validate_session(session: SessionData) -> None:
    """Check a session against the LFADS layout; raise :class:`LFADSDataError` on the first violation.

    Checks: ``train`` and ``valid`` exist and have ``recon_data``; data arrays are 3-D with at least one trial,
    bin and neuron; within a split all arrays have the same number of trials; across splits ``T_enc``, ``N_in``,
    ``T_recon``, ``N_recon`` and ``ext_dim`` agree; ``T_recon >= T_enc`` and ``N_recon >= N_in``;
    ``ext_input`` is ``(n, T_recon, ext_dim)`` and ``truth`` is ``(n, T_recon, N_recon)``; no NaN or Inf in
    ``encod_data``, ``recon_data``, ``ext_input`` or ``truth``; masks, where present, are bool arrays of their
    data's shape and agree on the encoder block.
    """
    path = session.path
    unknown = sorted(set(session.splits) - set(SPLITS))
    if unknown:
        raise LFADSDataError(f"{path}: unknown split(s) {unknown}; splits are named {list(SPLITS)}.")
    for split in ("train", "valid"):
        if split not in session.splits:
            raise LFADSDataError(f"{path}: missing required dataset '{split}_encod_data'; every session needs a "
                                 f"train and a valid split.")
        if session.splits[split].recon_data is None:
            raise LFADSDataError(f"{path}: missing required dataset '{split}_recon_data'; train and valid need "
                                 f"reconstruction data.")

    ref_encod = session.splits["train"].encod_data
    ref_recon = session.splits["train"].recon_data
    ref_ext = session.splits["train"].ext_input
    for split in SPLITS:
        if split not in session.splits:
            continue
        data = session.splits[split]
        for fname in DATA_FIELDS:
            array = getattr(data, fname)
            if array is not None and np.ndim(array) != 3:
                raise LFADSDataError(f"{path}: '{split}_{fname}' has shape {np.shape(array)}; it must be 3-D "
                                     f"(trials, time, neurons).")
        n = data.encod_data.shape[0]
        if n == 0:
            raise LFADSDataError(f"{path}: '{split}_encod_data' has 0 trials (shape {data.encod_data.shape}); "
                                 f"every split present needs at least one trial. Remove the empty split or add trials.")
        if min(data.encod_data.shape[1:]) == 0:
            raise LFADSDataError(f"{path}: '{split}_encod_data' has shape {data.encod_data.shape}; it needs at least "
                                 f"one time bin and one neuron.")
        # agreement with train
        if data.encod_data.shape[1:] != ref_encod.shape[1:]:
            raise LFADSDataError(
                f"{path}: '{split}_encod_data' has shape {data.encod_data.shape} but 'train_encod_data' has "
                f"{ref_encod.shape}; (time, neurons) must agree across splits.")
        if data.recon_data is not None:
            if data.recon_data.shape[0] != n:
                raise LFADSDataError(f"{path}: '{split}_recon_data' has {data.recon_data.shape[0]} trials but "
                                     f"'{split}_encod_data' has {n}; they must match trial for trial.")
            if data.recon_data.shape[1:] != ref_recon.shape[1:]:
                raise LFADSDataError(
                    f"{path}: '{split}_recon_data' has shape {data.recon_data.shape} but 'train_recon_data' has "
                    f"{ref_recon.shape}; (time, neurons) must agree across splits.")
        t_recon, n_recon = ref_recon.shape[1:]
        if data.ext_input.shape[:2] != (n, t_recon):
            raise LFADSDataError(f"{path}: '{split}_ext_input' has shape {data.ext_input.shape}; expected "
                                 f"({n}, {t_recon}, ext_dim) = (trials, T_recon, ext_dim).")
        if data.ext_input.shape[2] != ref_ext.shape[2]:
            raise LFADSDataError(f"{path}: '{split}_ext_input' has {data.ext_input.shape[2]} channels but "
                                 f"'train_ext_input' has {ref_ext.shape[2]}; ext_dim must agree across splits "
                                 f"(a missing ext_input counts as 0 channels).")
        if data.truth is not None and data.truth.shape != (n, t_recon, n_recon):
            raise LFADSDataError(f"{path}: '{split}_truth' has shape {data.truth.shape}; expected "
                                 f"{(n, t_recon, n_recon)} = (trials, T_recon, N_recon) like the recon data.")
        _check_masks(path, split, data)
        for key, extra in data.extras.items():
            if np.ndim(extra) == 0 or np.shape(extra)[0] != n:
                raise LFADSDataError(f"{path}: '{split}_{key}' has shape {np.shape(extra)}; a per-trial dataset "
                                     f"named '{split}_<name>' needs {n} entries along its first axis (one per trial). "
                                     f"Rename it without the split prefix if it is not per trial.")
        for fname in DATA_FIELDS:
            array = getattr(data, fname)
            if array is None or array.size == 0:
                continue
            bad = ~np.isfinite(array)
            if bad.any():
                index = _first_index(bad)
                raise LFADSDataError(f"{path}: '{split}_{fname}' holds {int(bad.sum())} non-finite value(s) "
                                     f"(first: {array[index]} at index {index}); replace NaN/Inf before fitting.")
            huge = np.abs(array) > MAX_DATA_MAGNITUDE if fname in ("encod_data", "recon_data") else None
            if huge is not None and huge.any():
                index = _first_index(huge)
                raise LFADSDataError(f"{path}: '{split}_{fname}' holds {int(huge.sum())} value(s) above "
                                     f"{MAX_DATA_MAGNITUDE:g} in magnitude (first: {array[index]:g} at index {index} "
                                     f"(trial, time, neuron)); spike counts per bin are far smaller. Check the data's "
                                     f"units (counts per bin, not rates or time stamps).")

    t_enc, n_in = ref_encod.shape[1:]
    t_recon, n_recon = ref_recon.shape[1:]
    if t_recon < t_enc:
        raise LFADSDataError(f"{path}: 'train_recon_data' has {t_recon} time bins but 'train_encod_data' has {t_enc}; "
                             f"recon data must cover at least the encoder's bins (extra bins are forward prediction).")
    if n_recon < n_in:
        raise LFADSDataError(f"{path}: 'train_recon_data' has {n_recon} neurons but 'train_encod_data' has {n_in}; "
                             f"recon data must hold the encoder's neurons first (extra neurons are held out).")


def _check_masks(path: Path, split: str, data: SplitData) -> None:
    """Masks of a split: bool, the shape of their data, both present when the split has recon data, agreeing."""
    if data.recon_mask is None and data.encod_mask is None:
        return
    pairs = (("encod_mask", data.encod_mask, data.encod_data), ("recon_mask", data.recon_mask, data.recon_data))
    for name, mask, values in pairs:
        if values is None:
            if mask is not None:
                raise LFADSDataError(f"{path}: '{split}_{name}' is given but its data are not; remove the mask.")
            continue
        if mask is None or np.asarray(mask).dtype != np.bool_ or np.shape(mask) != values.shape:
            raise LFADSDataError(f"{path}: '{split}_{name}' must be a bool array of shape {values.shape} (True = "
                                 f"observed) when the split has a mask; got "
                                 f"{None if mask is None else (np.asarray(mask).dtype, np.shape(mask))}.")
    if data.recon_mask is not None:
        t_enc, n_in = data.encod_data.shape[1:]
        if not np.array_equal(data.encod_mask, data.recon_mask[:, :t_enc, :n_in]):
            raise LFADSDataError(f"{path}: '{split}_encod_mask' and '{split}_recon_mask' disagree on the encoder "
                                 f"block (the first {t_enc} bins and {n_in} neurons).")


def check_count_array(array: np.ndarray, path: str | os.PathLike, key: str, fix: str, finite: bool = True) -> None:
    """Check that ``array`` (dataset ``key`` of file ``path``) holds spike counts: finite, >= 0, whole, bounded.

    ``fix`` ends the message (what the user can do). The bound is :data:`MAX_DATA_MAGNITUDE`. With
    ``finite=False`` NaN and Inf are passed over (left to :func:`validate_session`, which names the split).

    Raises
    ------
    LFADSDataError
        Naming the file, the key and the first offending ``(trial, time, neuron)`` index and value.
    """
    array = np.asarray(array)
    if array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return
    if not finite:
        array = np.where(np.isfinite(array), array, 0)
    where = "at index {index} (trial, time, neuron)"
    checks = (
        (~np.isfinite(array), "non-finite value {value} " + where + "; spike counts must be finite."),
        (array < 0, "negative value {value} " + where + "; a count likelihood needs non-negative integer spike "
                    "counts."),
        (array != np.floor(array), "non-integer value {value} " + where + "; a count likelihood needs integer "
                                   "spike counts."),
        (array > MAX_DATA_MAGNITUDE, "value {value:g} " + where + f", above {MAX_DATA_MAGNITUDE:g}; spike counts "
                                     "per bin are far smaller. Check the units (counts per bin, not rates or time "
                                     "stamps)."),
    )
    with np.errstate(invalid="ignore"):
        for bad, what in checks:
            if bad.any():
                index = _first_index(bad)
                raise LFADSDataError(f"{path}: '{key}' has " + what.format(value=array[index], index=index)
                                     + f" {fix}")


def check_counts(session: SessionData) -> None:
    """Check that ``encod_data`` and ``recon_data`` of every split are non-negative integers (spike counts).

    Needed by count likelihoods (Poisson, ...), whose log-probability is undefined elsewhere.

    Raises
    ------
    LFADSDataError
        Naming the file, the key and the first offending ``(trial, time, neuron)`` index and value.
    """
    for split, data in session.splits.items():
        for fname in ("encod_data", "recon_data"):
            array = getattr(data, fname)
            if array is None:
                continue
            check_count_array(array, session.path, f"{split}_{fname}",
                              "Bin spikes into counts, fix the data, or use a continuous likelihood.")


def load_lfads_h5(path: str | os.PathLike) -> SessionData:
    """Read and validate one session stored in the LFADS HDF5 layout.

    Parameters
    ----------
    path : str or PathLike
        An HDF5 file holding ``train_encod_data`` ``(n_train, T_enc, N_in)``, ``train_recon_data``
        ``(n_train, T_recon, N_recon)``, the same for ``valid`` (and optionally ``test``), and optional
        ``{split}_ext_input``, ``{split}_truth``, ``{split}_recon_mask`` / ``{split}_encod_mask`` (bool, True =
        observed) and per-trial extras.

    Returns
    -------
    SessionData
        Named after the file's stem; ``truth`` is in expected counts per bin (divided by ``conversion_factor``).

    Raises
    ------
    LFADSDataError
        If the file is missing, not HDF5, or breaks the layout (missing key, wrong rank, shape mismatch between
        splits, empty split, NaN or Inf); the message names the file and the key.
    """
    arrays, attrs = read_h5_arrays(path)
    return build_session(arrays, attrs, path=path)


def convert_session_to_arrays(session: SessionData) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Flatten a session into the LFADS layout's ``name -> array`` mapping and root attributes.

    ``truth`` is written in expected counts per bin with ``conversion_factor = 1``; an ``ext_input`` with
    0 channels is left out (reading restores it).
    """
    arrays: dict[str, np.ndarray] = {}
    has_truth = False
    for split in SPLITS:
        if split not in session.splits:
            continue
        data = session.splits[split]
        arrays[f"{split}_encod_data"] = data.encod_data
        if data.recon_data is not None:
            arrays[f"{split}_recon_data"] = data.recon_data
        if data.ext_input.shape[-1] > 0:
            arrays[f"{split}_ext_input"] = data.ext_input
        if data.truth is not None:
            arrays[f"{split}_truth"] = data.truth
            has_truth = True
        for key, value in data.extras.items():
            arrays[f"{split}_{key}"] = value
        for key in MASK_FIELDS:
            if getattr(data, key) is not None:
                arrays[f"{split}_{key}"] = getattr(data, key)
    arrays.update(session.extras)
    attrs = {key: value for key, value in session.attrs.items() if value is not None}
    attrs.pop("conversion_factor", None)
    if session.bin_size is not None:
        attrs["bin_size"] = float(session.bin_size)
    else:
        attrs.pop("bin_size", None)
    if has_truth:
        attrs["conversion_factor"] = 1.0
    return arrays, attrs


def save_lfads_h5(
    path: str | os.PathLike,
    data: SessionData | Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Validate and write one session in the LFADS HDF5 layout, atomically (see :func:`save_h5_atomic`).

    Parameters
    ----------
    path : str or PathLike
        Output file.
    data : SessionData or mapping of str to np.ndarray
        A session (e.g. from :func:`load_lfads_h5`), or the datasets keyed as in the file
        (``train_encod_data`` ``(n, T_enc, N_in)``, ...).
    attrs : mapping, optional
        Root attributes; they override the session's own (``bin_size`` in seconds, ``description``, ...).

    Returns
    -------
    Path
        The written file. ``load_lfads_h5(path)`` returns the same arrays (data arrays as float32).

    Raises
    ------
    LFADSDataError
        If the data break the layout; nothing is written then.
    """
    path = Path(path)
    if isinstance(data, SessionData):
        validate_session(data)
        arrays, all_attrs = convert_session_to_arrays(data)
        all_attrs.update(attrs or {})
    else:
        arrays, all_attrs = dict(data), dict(attrs or {})
        build_session(arrays, all_attrs, path=path)  # validates; raises before anything is written
    return save_h5_atomic(path, arrays, all_attrs)
