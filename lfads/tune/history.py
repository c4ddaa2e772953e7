"""``pbt_history.csv``: one row per reported round of one trial, and the choice of the best trial."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lfads.data.atomic import atomic_output

__all__ = ["HISTORY_FILE", "PopulationHistory", "read_population_history", "select_best_trial", "write_csv_rows"]

HISTORY_FILE = "pbt_history.csv"
TEXT_COLUMNS = ("trial", "exploited_from", "checkpoint_sha1", "resumed_sha1")
INTEGER_COLUMNS = ("round", "start_epoch", "epoch")


def write_csv_rows(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Write ``rows`` as a CSV with a header of every key in order of first appearance (temp file, then rename)."""
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@dataclasses.dataclass
class PopulationHistory:
    """Rows of ``pbt_history.csv``: one per reported round of one trial, in arrival order.

    Columns: ``trial``, ``round`` (Ray's ``training_iteration`` of this trial run), ``start_epoch``,
    ``epoch`` (epochs trained when reported), ``exploited_from`` (the trial whose checkpoint the round
    started from, empty when it continued its own), ``checkpoint_sha1`` (of the checkpoint it reported),
    ``resumed_sha1`` (of the checkpoint it started from), ``time_total_s``, then the searched
    hyperparameters the round trained with, then every reported ``valid/*`` metric.
    """

    path: Path
    hyperparameters: list[str]
    rows: list[dict] = dataclasses.field(default_factory=list)

    def add(self, trial: str, result: dict) -> dict:
        """Append a row built from a Ray Tune result and rewrite the CSV (atomically)."""
        config = result.get("config") or {}
        row = {
            "trial": trial,
            "round": result.get("training_iteration"),
            "start_epoch": result.get("start_epoch"),
            "epoch": result.get("epoch"),
            "exploited_from": result.get("exploited_from", ""),
            "checkpoint_sha1": result.get("checkpoint_sha1", ""),
            "resumed_sha1": result.get("resumed_sha1", ""),
            "time_total_s": result.get("time_total_s"),
        }
        row.update({name: config.get(name) for name in self.hyperparameters})
        row.update({k: v for k, v in sorted(result.items()) if k.startswith("valid/")})
        self.rows.append(row)
        self.write()
        return row

    def write(self) -> None:
        """Write all rows to :attr:`path` (temp file, then rename)."""
        write_csv_rows(self.path, self.rows)


def _parse_cell(key: str, value: str | None) -> Any:
    if key in TEXT_COLUMNS:
        return value or ""
    if value in ("", None):
        return None
    if key in INTEGER_COLUMNS:
        return int(float(value))
    try:
        return float(value)
    except ValueError:
        return value


def read_population_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a ``pbt_history.csv`` with numbers parsed (``float``; ``int`` for round and epochs)."""
    with open(path, newline="") as f:
        return [{key: _parse_cell(key, value) for key, value in raw.items()} for raw in csv.DictReader(f)]


def select_best_trial(rows: Sequence[dict], metric: str, mode: str = "min") -> tuple[str, float, dict[str, float]]:
    """The trial whose final report (largest epoch, then latest) is best by ``metric``.

    Returns
    -------
    tuple
        ``(best_trial, its final metric, {trial: final metric})``.

    Raises
    ------
    ValueError
        If no row holds a value of ``metric``.
    """
    final: dict[str, tuple[int, int, float]] = {}
    for order, row in enumerate(rows):
        value = row.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        key = (row.get("epoch") or 0, order)
        if row["trial"] not in final or key >= final[row["trial"]][:2]:
            final[row["trial"]] = (*key, float(value))
    if not final:
        raise ValueError(f"no trial reported '{metric}'.")
    values = {trial: v[2] for trial, v in sorted(final.items())}
    sign = 1.0 if mode == "min" else -1.0
    best = min(values, key=lambda t: sign * values[t])
    return best, values[best], values
