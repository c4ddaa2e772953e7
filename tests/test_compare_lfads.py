"""LFADS fits to two synthetic data sets are told apart by their generators' DMD eigenvalues.

Two seeds on each of a tiny Lorenz and a tiny chaotic-RNN data set (60 trials x 50 bins, 12 s of training
each), compared with ``dsa_eigenvalues`` on each generator's own training trials: every within-data-set
distance must be smaller than every between-data-set one (separation AUC 1), and each model's nearest
neighbour must sit above its split-half noise floor.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_lfads_seeds_on_the_same_data_have_closer_dmd_eigenvalues_than_fits_to_other_data(tmp_path):
    from benchmarks.compare_lfads import fit_all, load_models, make_data
    from lfads.compare import DSA, compare_models, separation_auc, split_half_floor
    from lfads.compare.dsa import select_delay_rank

    paths = make_data(tmp_path, conditions=6, n_time=50)
    fit_all(paths, seeds=2, workdir=tmp_path, minutes=0.2, threads=1, parallel=2, batch_size=10)
    models, labels = load_models(tmp_path, seeds=2, max_trials=48)
    sel = select_delay_rank([m.trajectories for m in models])
    dsa = DSA(delays=sel.delays, rank=sel.rank)
    d = compare_models(models, ["dsa_eigenvalues"], dsa=dsa)["dsa_eigenvalues"]

    assert separation_auc(d, labels) == 1.0

    def distance(x: np.ndarray, y: np.ndarray) -> float:
        return float(DSA(delays=sel.delays, rank=sel.rank).fit([x, y]).eigenvalue_distances()[0, 1])

    for i, m in enumerate(models):
        floor = split_half_floor(m.trajectories, distance, n_splits=3)
        nearest = np.min(np.delete(d[i], i))
        assert nearest > floor.mean(), (m.name, nearest, floor)
