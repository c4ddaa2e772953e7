"""The pairs :math:`(i, j)`, :math:`i < j`, of :math:`N` models that every all-pairs distance visits, with a
progress bar."""

from __future__ import annotations

from collections.abc import Iterator

from tqdm.auto import tqdm

__all__ = ["model_pairs"]


def model_pairs(n: int, desc: str = "pairs", progress: bool = False) -> Iterator[tuple[int, int]]:
    """Yield the :math:`N (N - 1) / 2` pairs ``(i, j)``, ``i < j``, row by row; with ``progress`` a bar counts them."""
    with tqdm(total=n * (n - 1) // 2, desc=desc, unit="pair", disable=not progress, leave=False) as bar:
        for i in range(n):
            for j in range(i + 1, n):
                yield i, j
                bar.update()
