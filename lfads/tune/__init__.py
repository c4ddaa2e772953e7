r"""Population-based training of LFADS on Ray Tune (AutoLFADS): ``lfads tune``.

A population of ``K`` LFADS fits with hyperparameters :math:`h_k` (learning rate, dropout,
coordinated dropout, KL and L2 weights) trains in rounds of ``perturbation_interval`` epochs. After a
round each trial reports its validation metric :math:`m_k` (``valid/recon_smth`` by default, lower is
better) and a checkpoint. Ray Tune's :class:`~ray.tune.schedulers.PopulationBasedTraining` then lets
every trial in the worst quantile *exploit* a trial of the best quantile (continue from its checkpoint)
and *explore* (perturb the copied hyperparameters):

.. math::

    h \leftarrow \mathrm{clip}_{[a, b]}(c\, h_{best}),\ c \in \{0.8, 1.2\}
    \quad\text{or, with probability } p_{resample},\quad h \sim \mathcal U(a, b)
    \ \text{(or log-uniform)},

so the population follows a schedule of hyperparameters rather than one fixed setting.

Every trial is an ordinary ``lfads fit``: the same LightningCLI class, model, data module, callbacks
and checkpointing, built from the same YAML with the trial's hyperparameters as ``--model.<name>``
overrides. A round is one ``Trainer.fit`` resumed from the trial's last checkpoint (optimizer, epoch
and KL/L2 ramps continue); when PBT copies another trial's checkpoint, every learning rate of the
copied optimizer is scaled by ``lr_init(new) / lr_init(copied)`` so that the plateau schedule's decay
so far is kept.

Results (``{save_dir}/{name}/tune_{YYYYmmdd-HHMMSS}/``):

- ``trial_NN/``: one lfads run directory per trial (``config.yaml`` of its latest round,
  ``metrics.csv`` over all rounds, ``checkpoints/`` with the best by ``valid/recon_smth_ramped`` (the
  reconstruction cost, not the whole objective as in ``lfads fit``: PBT changes the cost weights between
  rounds, so only the reconstruction cost compares across them) and ``last.ckpt``), usable with
  ``lfads sample --run``;
- ``pbt_history.csv``: one row per round and trial (epoch, hyperparameters, metrics, the trial whose
  checkpoint the round started from when it exploited one);
- ``summary.json``: the final metric of every trial and the best trial's run directory;
- ``base_config.yaml`` (the resolved Lightning config every trial starts from), ``tune.yaml`` (the
  resolved ``tune:`` section) and ``ray/`` (Ray Tune's own experiment state and checkpoints).

The ``tune:`` section of the config (removed before the rest goes to the Lightning CLI)::

    tune:
      num_samples: 8                # population size
      perturbation_interval: 25     # epochs per round
      max_epochs: 400
      metric: valid/recon_smth
      mode: min
      resources_per_trial: {cpu: 1, gpu: 0}
      num_cpus: null                # CPUs of the Ray instance started here (default: all)
      address: null                 # or host:port of a running Ray cluster (results dir must be shared)
      search_space:
        lr_init: {distribution: loguniform, low: 1.0e-3, high: 1.0e-2}
        dropout_rate: {distribution: uniform, low: 0.0, high: 0.3}

Any ``tune`` key can be overridden on the command line as ``--tune.<key> VALUE`` (YAML value; a
mapping-valued key takes a YAML mapping). ``tune.address`` is checked to accept connections before Ray
starts. A Ray cluster does not authenticate its clients: join one only on a trusted network.
Ray Tune is optional: ``pip install 'lfads[tune]'``.

Modules: :mod:`~lfads.tune.settings` (the ``tune:`` section), :mod:`~lfads.tune.rounds` (one trial's
rounds and checkpoints), :mod:`~lfads.tune.driver` (the population on Ray), :mod:`~lfads.tune.history`
(``pbt_history.csv``), :mod:`~lfads.tune.command` (the command line).
"""

from lfads.tune.command import split_tune_argv, tune_command
from lfads.tune.driver import (
    RayClusterUnreachable,
    TuneOutcome,
    check_cluster_reachable,
    format_summary,
    run_population_based_training,
)
from lfads.tune.history import PopulationHistory, read_population_history, select_best_trial
from lfads.tune.rounds import TrialSetup, train_trial
from lfads.tune.settings import DISTRIBUTIONS, SearchDimension, TuneSettings, load_tune_settings, parse_tune_settings

__all__ = [
    "DISTRIBUTIONS",
    "PopulationHistory",
    "RayClusterUnreachable",
    "SearchDimension",
    "TrialSetup",
    "TuneOutcome",
    "TuneSettings",
    "check_cluster_reachable",
    "format_summary",
    "load_tune_settings",
    "parse_tune_settings",
    "read_population_history",
    "run_population_based_training",
    "select_best_trial",
    "split_tune_argv",
    "train_trial",
    "tune_command",
]
