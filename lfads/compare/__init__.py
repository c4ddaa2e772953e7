"""Comparing the dynamics of many models: geometry, data-driven dynamics, fixed-point topology, spectra.

* :mod:`~lfads.compare.geometry` -- CCA/SVCCA, generalized shape metrics (CCA to Procrustes), linear CKA;
* :mod:`~lfads.compare.dsa` -- dynamical similarity analysis: delay embedding, DMD, the orthogonal
  similarity-transform distance between operators and the Wasserstein distance between their eigenvalues;
* :mod:`~lfads.compare.topology` -- the graph of fixed points joined by the flow out of saddles, and
  distances between such graphs;
* :mod:`~lfads.compare.spectra` -- fixed points of two models matched, Jacobian spectra compared;
* :mod:`~lfads.compare.stats` -- permutation tests, noise floors, bootstrap intervals, MDS, silhouettes;
* :mod:`~lfads.compare.api` -- :func:`compare_models`, all of the above for many models at once.
"""
