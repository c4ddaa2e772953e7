"""Populations of task-trained recurrent networks: tasks, cells, batched training, fixed points, universality.

* :mod:`~lfads.population.tasks` -- seeded task generators (N-bit flip-flop, sine-wave generation,
  context-dependent integration) and the dynamics each one needs;
* :mod:`~lfads.population.cells` -- vanilla (tanh, ReLU), GRU, LSTM and UGRNN cells as maps
  :math:`h_t = F(h_{t-1}, u_t)` with closed-form Jacobians, usable by :mod:`lfads.analysis`;
* :mod:`~lfads.population.train` -- many seeds of one architecture trained at once, each with its
  own stopping rule;
* :mod:`~lfads.population.population` -- :func:`~lfads.population.population.run_population`: train,
  find fixed points and graphs, write one HDF5 file;
* :mod:`~lfads.population.spread` -- :func:`~lfads.population.spread.run_population_ray`: the same
  population with its training spread over Ray Tune trials (architecture, chunk of seeds);
* :mod:`~lfads.population.graphs` -- each network's fixed-point graph (:mod:`lfads.compare.topology`);
* :mod:`~lfads.population.universality` -- per-network checks against each task's theory;
* :mod:`~lfads.population.distances` -- geometry and topology distances between networks, silhouettes;
* :mod:`~lfads.population.comparison` -- every network as a :class:`lfads.compare.Model` (shared trials,
  stored fixed points and graphs), compared with any metric of :func:`lfads.compare.compare_models`;
* :mod:`~lfads.population.single` -- one torch GRU trained on the flip-flop (a network with known
  attractors, for checking the analysis).
"""
