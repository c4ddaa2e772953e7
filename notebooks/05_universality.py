# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 - Universality across a population of flip-flop networks
#
# Many small recurrent networks (vanilla, GRU, LSTM, UGRNN; several seeds each) are trained at once on
# the 3-bit flip-flop: each of three inputs carries sparse $\pm 1$ pulses and the matching output must
# hold the sign of the latest one. Theory (Sussillo & Barak 2013) says a solution needs $2^3 = 8$
# stable fixed points, one per memory, with index-1 saddles between memories that differ in one bit,
# the edges of a cube. Maheswaranathan et al. (2019) found that networks of different architectures
# share this topology while the geometry of their states differs by architecture. This notebook trains
# the population (`lfads.population.run_population`), finds every network's fixed points and checks
# both statements.
#
# Run from the repository root; `LFADS_POPULATION_FILE` reuses a population saved by `run_population(out=...)`.

# %%
import os
from pathlib import Path

if Path.cwd().name == "notebooks":  # opened from the notebooks folder: work from the repository root
    os.chdir("..")
POPULATION_FILE = os.environ.get("LFADS_POPULATION_FILE", "")  # a saved population to load instead of training
SEEDS = int(os.environ.get("LFADS_POPULATION_SEEDS", "8"))  # networks per architecture
UNITS = int(os.environ.get("LFADS_POPULATION_UNITS", "64"))  # units per network
MAX_STEPS = int(os.environ.get("LFADS_POPULATION_STEPS", "3000"))  # training steps at most
N_INITIAL_STATES = int(os.environ.get("LFADS_N_INITIAL_STATES", "256"))  # starts of each fixed-point search
FIGURE_DIR = os.environ.get("LFADS_FIGURE_DIR", "")  # save every figure there as PNG when set

# %%
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import torch

from lfads.analysis.projection import compute_pca
from lfads.compare.stats import embed_mds, silhouette_test
from lfads.population.distances import arch_labels, geometry_distances, silhouette_by_arch, topology_distances
from lfads.population.graphs import saddle_edges
from lfads.population.population import load_population, run_population
from lfads.population.universality import TRAINING, flipflop_population

torch.set_num_threads(1)
COLORS = {"vanilla": "tab:blue", "relu": "tab:cyan", "gru": "tab:orange", "lstm": "tab:green", "ugrnn": "tab:red"}


def save(fig, name):
    """Write ``fig`` to FIGURE_DIR/name.png when FIGURE_DIR is set."""
    if FIGURE_DIR:
        Path(FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURE_DIR) / f"{name}.png", dpi=110)


# %% [markdown]
# ## Train the population
#
# All seeds of one architecture train as one batched model; each network stops once its evaluation
# loss is below the task's target (0.01). Networks that never get there stay in the population, marked.
# Each batch continues the trials of the previous one (`carry_state`), so memories must be held for
# arbitrarily long: they become attractors rather than slowly decaying transients.

# %%
if POPULATION_FILE and Path(POPULATION_FILE).exists():
    population = load_population(POPULATION_FILE)
else:
    population = run_population(task="flipflop", seeds=SEEDS, units=UNITS, max_steps=MAX_STEPS,
                                n_initial_states=N_INITIAL_STATES, out=POPULATION_FILE or None,
                                **TRAINING["flipflop"])
print(population.summary())

# %%
fig, axes = plt.subplots(1, len(population.archs), figsize=(3.2 * len(population.archs), 2.8), sharey=True)
for ax, arch in zip(np.atleast_1d(axes), population.archs):
    fit = population.fits[arch]
    ax.semilogy(fit.eval_steps, fit.eval_losses, color=COLORS[arch], lw=1)
    ax.axhline(fit.target_loss, color="k", ls=":", lw=1)
    ax.set(title=f"{arch}: {int(fit.reached.sum())}/{len(fit.reached)} reached", xlabel="step")
np.atleast_1d(axes)[0].set_ylabel("evaluation loss")
fig.tight_layout()
save(fig, "training")

# %% [markdown]
# ## Fixed points of one network per architecture
#
# States on long trials, their first two principal components, and the fixed points found from
# them: stable points (filled) and index-1 saddles (crosses).

# %%
trials = population.task.condition_sample("zero", 8, torch.Generator().manual_seed(0))
states = population.trajectories(trials.inputs)
fig, axes = plt.subplots(1, len(population.archs), figsize=(3.2 * len(population.archs), 3.0))
for ax, arch in zip(np.atleast_1d(axes), population.archs):
    x = states[arch][0]
    pca = compute_pca(x, 2)
    traj = pca.transform(x.reshape(-1, x.shape[-1])).reshape(x.shape[0], x.shape[1], 2)
    for tr in traj:
        ax.plot(tr[:, 0], tr[:, 1], color="0.8", lw=0.5)
    fps = population.fixed_points[arch][0]["zero"]
    units = population.fits[arch].model.units
    p = pca.transform(fps.states[:, :units])
    fixed = fps.kind == "fixed"  # roots, not the slow points of flat basins
    stable, saddle = fixed & (fps.stability == "stable"), fixed & (fps.stability == "saddle") & (fps.n_unstable == 1)
    ax.scatter(p[stable, 0], p[stable, 1], color=COLORS[arch], s=30, label="stable")
    ax.scatter(p[saddle, 0], p[saddle, 1], color="k", marker="x", s=25, label="index-1 saddle")
    ax.set(title=f"{arch}, seed 0", xlabel="PC 1", ylabel="PC 2")
np.atleast_1d(axes)[0].legend(fontsize=7)
fig.tight_layout()
save(fig, "fixed_points")

# %% [markdown]
# ## The memories, read out
#
# Each stable point's readout $y = W h^* + b$ should sit on a corner of the cube $\{\pm 1\}^3$, one
# point per corner. Below: the readouts of every network's stable points (channel 1 against channel
# 2, channel 3 as the marker), and the fraction of networks of each architecture with exactly the 8
# memories.

# %%
edges = {a: [saddle_edges(net["zero"]) for net in population.graphs[a]] for a in population.archs}
structure = flipflop_population(population, saddle_edges=edges)
fig, (ax, bx) = plt.subplots(1, 2, figsize=(8, 3.4))
for arch in population.archs:
    for n, net in enumerate(population.fixed_points[arch]):
        fps = net["zero"]
        w, b = population.readout(arch, n)
        y = fps.states[(fps.stability == "stable") & (fps.kind == "fixed"), : w.shape[1]] @ w.T + b
        for marker, sel in (("o", y[:, 2] > 0), ("s", y[:, 2] <= 0)):
            ax.scatter(y[sel, 0], y[sel, 1], color=COLORS[arch], marker=marker, s=12, alpha=0.5)
ax.set(xlabel="readout 1", ylabel="readout 2", title="stable points of every network")
memories = [np.mean([s.all_memories for s in structure[a]]) for a in population.archs]
cubes = [np.mean([s.all_memories and bool(s.cube) for s in structure[a]]) for a in population.archs]
pos = np.arange(len(population.archs))
bx.bar(pos - 0.2, memories, 0.4, color=[COLORS[a] for a in population.archs], label="8 memories")
bx.bar(pos + 0.2, cubes, 0.4, color=[COLORS[a] for a in population.archs], alpha=0.5, hatch="//",
       label="... and the cube")
bx.set_xticks(pos, population.archs)
bx.axhline(0.8, color="k", ls=":", lw=1)
bx.set(ylim=(0, 1.05), ylabel="fraction of networks", title="stable points and saddle edges")
bx.legend(fontsize=7)
fig.tight_layout()
save(fig, "memories")
for arch in population.archs:
    counts = [s.n_stable for s in structure[arch]]
    print(f"{arch:<8} stable points per network: {counts}; index-1 saddles: {[s.n_index1 for s in structure[arch]]}")

# %% [markdown]
# ## Fixed-point graphs
#
# Each network's fixed points joined by the flow out of their unstable directions
# (`lfads.compare.topology`), drawn at the readouts of the points (channel 1 against channel 2, plus a
# small shift by channel 3): stable points in the architecture's colour, saddles in grey by index.
# In a network that solves the task the index-1 saddles sit between memories one bit apart.

# %%
fig, axes = plt.subplots(1, len(population.archs), figsize=(3.2 * len(population.archs), 3.2))
for ax, arch in zip(np.atleast_1d(axes), population.archs):
    graph = population.graphs[arch][0]["zero"].graph
    fps = population.fixed_points[arch][0]["zero"]
    w, b = population.readout(arch, 0)
    y = fps.states[:, : w.shape[1]] @ w.T + b
    pos = {k: (y[k, 0] + 0.25 * y[k, 2], y[k, 1] + 0.15 * y[k, 2]) for k in graph.nodes}
    index = np.array([graph.nodes[k]["index"] for k in graph.nodes])
    colors = [COLORS[arch] if i == 0 else str(0.3 + 0.2 * min(i, 3)) for i in index]
    nx.draw_networkx(graph, pos=pos, ax=ax, node_color=colors, node_size=40, with_labels=False, width=0.8)
    ax.set(title=f"{arch}, seed 0: {graph.number_of_nodes()} points, {graph.number_of_edges()} edges")
    ax.set_axis_on()
    ax.tick_params(left=True, bottom=True, labelleft=True, labelbottom=True)
fig.tight_layout()
save(fig, "graphs")

# %% [markdown]
# ## Geometry differs, topology does not
#
# Distances between every pair of networks: SVCCA between their states on the same trials, and the
# distance between their fixed-point graphs. Each matrix is embedded in two dimensions by metric MDS;
# the silhouette by architecture says how well the architectures separate (1: fully, 0: not at all), and
# its p-value how often 1000 shuffles of the architecture labels score as high (random labellings score
# below 0, so a silhouette near 0 can still be above chance).

# %%
trials = population.task.condition_sample("zero", 64, torch.Generator().manual_seed(12345))
labels = arch_labels(population)
d_geometry = geometry_distances(population.trajectories(trials.inputs), "svcca")
d_topology, _ = topology_distances(population, "zero")
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, (name, d) in zip(axes, (("SVCCA (geometry)", d_geometry), ("fixed-point graphs (topology)", d_topology))):
    xy = embed_mds(d)
    for arch in population.archs:
        sel = labels == arch
        ax.scatter(xy[sel, 0], xy[sel, 1], color=COLORS[arch], label=arch, s=25)
    p = silhouette_test(d, labels).p_value
    ax.set(title=f"{name}\nsilhouette by architecture {silhouette_by_arch(d, labels):.2f} (p = {p:.2g})",
           xlabel="MDS 1", ylabel="MDS 2")
axes[0].legend(fontsize=7)
fig.tight_layout()
save(fig, "mds")
