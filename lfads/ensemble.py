r"""Ensembles: average the rates that several LFADS models infer for the same trials.

For :math:`M` models fitted to the same data (different seeds, or different settings), each with its
posterior-averaged rates :math:`\hat r^{(m)}` ``(trials, time, neurons)`` (see :mod:`lfads.sampling`),
the ensemble estimate is

.. math::

    \hat r_{k,t,n} = \frac{1}{M} \sum_{m=1}^{M} \hat r^{(m)}_{k,t,n}.

Independently initialized models settle into different solutions whose errors are partly independent,
so their average is closer to the true rates than any one of them. Measured on the chaotic-RNN data
(``benchmarks/fit_synthetic.py --ensemble 2``, a 2-core CPU): two fits trained side by side for 10
minutes, a core each, reach rate R2 0.848 and 0.849 and their average 0.854; one fit given both cores
for the same 10 minutes trains 23% more epochs and reaches 0.849. On the real MC_Maze_Small recording
(``benchmarks/fit_real.py --ensemble 2``) two such fits score co-bps 0.189 each and their average 0.208.

Only rates are averaged: they are what every member estimates in the same units. Factors, generator
states and inferred inputs of different models live in unrelated coordinates (any rotation of a
model's factors is absorbed by its read-out), so their average means nothing; sample each member on
its own for those.
"""

from __future__ import annotations

import numpy as np

from lfads.errors import LFADSDataError


def check_same_trials(datamodules: list, names: list[str]) -> None:
    """Raise :class:`LFADSDataError` unless every data module holds the same sessions, splits and counts.

    Members of an ensemble must score the same trials in the same order; a different file, a different
    train/valid split (e.g. another ``valid_fraction``) or another neuron count is named in the error.
    ``names`` labels each data module in the message (e.g. its checkpoint).
    """
    ref, ref_name = datamodules[0], names[0]
    ref_sessions = [s.name for s in ref.sessions]
    for dm, name in zip(datamodules[1:], names[1:]):
        sessions = [s.name for s in dm.sessions]
        if sessions != ref_sessions:
            raise LFADSDataError(
                f"Ensemble members saw different sessions: {ref_name} {ref_sessions}, {name} {sessions}."
            )
        for a, b in zip(ref.sessions, dm.sessions):
            if sorted(a.splits) != sorted(b.splits):
                raise LFADSDataError(
                    f"Session {a.name!r}: {ref_name} has splits {sorted(a.splits)}, {name} has {sorted(b.splits)}."
                )
            for split in a.splits:
                x, y = np.asarray(a.splits[split].recon_data), np.asarray(b.splits[split].recon_data)
                if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
                    raise LFADSDataError(
                        f"Session {a.name!r}, split {split!r}: {ref_name} and {name} hold different trials "
                        f"(recon_data {x.shape} vs {y.shape}{'' if x.shape != y.shape else ', different counts'}). "
                        "Sample all members on the same files with --data, and train them with the same data settings."
                    )


def ensemble_rates(member_results: list[dict]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Average the rates of several :func:`lfads.sampling.sample_posteriors` results.

    Parameters
    ----------
    member_results : list[dict]
        One ``{session: {split: {"rates": (trials, time, neurons), ...}}}`` per member, all over the same trials.

    Returns
    -------
    dict
        ``{session: {split: {"rates": (trials, time, neurons)}}}``, the member mean, for the sessions and
        splits every member has.
    """
    if not member_results:
        raise ValueError("An ensemble needs at least one member.")
    first = member_results[0]
    out: dict = {}
    for session, by_split in first.items():
        out[session] = {}
        for split in by_split:
            stack = [r[session][split]["rates"] for r in member_results if split in r.get(session, {})]
            if len(stack) < len(member_results):
                continue
            shapes = {x.shape for x in stack}
            if len(shapes) > 1:
                raise ValueError(f"{session}/{split}: members' rates differ in shape {sorted(shapes)}.")
            out[session][split] = {"rates": np.mean(np.stack(stack), axis=0, dtype=np.float64).astype(stack[0].dtype)}
    return out
