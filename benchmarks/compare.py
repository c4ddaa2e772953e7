"""Speed of lfads.compare on many models, all pairs, with the dsa-metric package as a reference.

Models: ``--models`` systems (half ring attractors, half rings cut into a line, each seen through tuning
curves of a random width, 40 units, 40 trials x 100 steps). Printed:

* closed-form geometry metrics (CCA, SVCCA, shape, Procrustes, Procrustes Euclidean, CKA), all pairs;
* DMD fits (with delay/rank selection by held-out prediction) and the eigenvalue Wasserstein distance;
* the full DSA similarity-transform distance, all pairs, and its triangle-inequality violation rate;
* dsa-metric (``import DSA``) on the same (centred) data with the same delays and rank, if it can be imported
  (``--dsa-metric-path`` adds a folder to ``sys.path``, e.g. one made with
  ``pip install --no-deps --target FOLDER dsa-metric PyDMD ...``), with the ratio of the two times and the
  rank correlation of the two distance matrices.

Usage::

    python benchmarks/compare.py --models 32 --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":  # BLAS threads are fixed when numpy loads: set them from --threads first
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)

import numpy as np


def make_models(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    from lfads.compare.systems import ring_attractor

    rng = np.random.default_rng(seed)
    models, labels = [], []
    for i in range(n):
        cut = None if i < n // 2 else 0.2 * np.pi
        models.append(ring_attractor(float(rng.uniform(0.0, 1.0)), seed=1000 + i, cut=cut))
        labels.append("ring" if cut is None else "line")
    return models, np.array(labels)


def time_reflected_recovery(n: int = 20, repeats: int = 5) -> tuple[float, float]:
    """Median seconds and the distance of recovering ``Q A Q^T`` with ``det Q = -1`` (``n`` x ``n``)."""
    from scipy.stats import ortho_group

    from lfads.compare.dsa import similarity_transform_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)) / np.sqrt(n)
    q = ortho_group.rvs(n, random_state=1)
    if np.linalg.det(q) > 0:
        q[:, 0] = -q[:, 0]
    times, distance = [], np.nan
    for _ in range(repeats):
        start = time.perf_counter()
        distance = similarity_transform_distance(a, q @ a @ q.T)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(distance)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and torch threads (the matrices are small: one thread is fastest on a shared "
                             "machine)")
    parser.add_argument("--dsa-metric-path", default=None, help="folder with the dsa-metric package")
    parser.add_argument("--dsa-metric-iters", type=int, default=1500, help="Adam iterations of dsa-metric")
    parser.add_argument("--skip-dsa-metric", action="store_true")
    args = parser.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    limits = threadpool_limits(args.threads)  # noqa: F841  (kept for the whole run)
    from scipy.stats import spearmanr

    from lfads.compare import DSA, pairwise_distances, silhouette, triangle_violation_rate
    from lfads.compare.geometry import GEOMETRY_METRICS

    seconds, distance = time_reflected_recovery()
    print(f"Q A Q^T with det Q = -1 (n = 20) recovered to distance {distance:.1e} in {seconds:.2f} s "
          "(median of 5; target < 2 s)")
    models, labels = make_models(args.models)
    n_pairs = args.models * (args.models - 1) // 2
    print(f"{args.models} models ({n_pairs} pairs), states {models[0].shape}, {args.threads} thread(s)")

    start = time.perf_counter()
    for name in GEOMETRY_METRICS:
        t0 = time.perf_counter()
        pairwise_distances(models, name)  # (the models' trials differ: only the time is meaningful here)
        print(f"  {name:<22s} {time.perf_counter() - t0:7.2f} s")
    closed = time.perf_counter() - start
    print(f"closed-form geometry metrics, all {len(GEOMETRY_METRICS)}: {closed:.2f} s (target <= 10 s)")

    t0 = time.perf_counter()
    dsa = DSA().fit(models)
    fit_time = time.perf_counter() - t0
    t1 = time.perf_counter()
    eig = dsa.eigenvalue_distances()
    eig_time = time.perf_counter() - t1
    print(f"DMD fits with delay/rank selection: {fit_time:.2f} s (delays {dsa.delays}, rank {dsa.rank}); "
          f"eigenvalue distances: {eig_time:.2f} s; together {fit_time + eig_time:.2f} s (target <= 30 s); "
          f"silhouette {silhouette(eig, labels):+.2f}")
    t1 = time.perf_counter()
    full = dsa.distances()
    dsa_time = time.perf_counter() - t1
    print(f"DSA similarity-transform distances: {dsa_time:.2f} s ({1e3 * dsa_time / n_pairs:.0f} ms per pair); "
          f"with the fits {fit_time + dsa_time:.2f} s (target <= 300 s); silhouette {silhouette(full, labels):+.2f}; "
          f"triangle-inequality violations in 1000 random triples: {100 * triangle_violation_rate(full):.1f}%")

    if args.skip_dsa_metric:
        return
    if args.dsa_metric_path:
        sys.path.insert(0, args.dsa_metric_path)
    try:
        from DSA import DSA as ReferenceDSA
    except ImportError as err:
        print(f"dsa-metric not importable ({err}); skipped")
        return
    t0 = time.perf_counter()
    # dsa-metric does not centre the data (a constant mode would take one of the rank's dimensions):
    # it gets each model minus its mean, as lfads.compare centres the delay embedding
    ref = ReferenceDSA(
        [m - m.mean(axis=(0, 1)) for m in models],
        n_delays=dsa.delays,
        rank=dsa.rank,
        score_method="euclidean",
        iters=args.dsa_metric_iters,
    )
    ref_d = np.asarray(ref.fit_score())
    ref_time = time.perf_counter() - t0
    iu = np.triu_indices(args.models, 1)
    rho = spearmanr(ref_d[iu], full[iu])[0]
    print(f"dsa-metric (n_delays {dsa.delays}, rank {dsa.rank}, {args.dsa_metric_iters} Adam iterations): "
          f"{ref_time:.2f} s; ratio dsa-metric / lfads.compare (fits + distances) = "
          f"{ref_time / (fit_time + dsa_time):.1f}; silhouette {silhouette(ref_d, labels):+.2f}; "
          f"triangle violations {100 * triangle_violation_rate(ref_d):.1f}%; Spearman rho with ours {rho:.2f}")


if __name__ == "__main__":
    main()
