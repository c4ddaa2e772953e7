"""``lfads tune``: population-based training of LFADS on Ray Tune (see :mod:`lfads.tune`)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Run ``lfads tune`` with the arguments after ``tune``; returns 0 on success."""
    from lfads.tune import tune_command

    return tune_command(argv)
