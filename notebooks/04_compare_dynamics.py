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
# # 04 - Comparing the dynamics of many models
#
# Do two models compute the same way? The answer depends on what is measured:
#
# * **geometry** (`procrustes`, `cca`, `cka`): how the states are arranged, up to rotation (or any
#   invertible linear map for CCA);
# * **dynamics** (`dsa`): the linear operator that advances the (delay-embedded) states, up to rotation;
# * **fixed-point topology** (`topology`): which saddles lead to which attractors;
# * **linearizations** (`spectra`): the eigenvalues of the Jacobian at matched fixed points.
#
# Three experiments with known answers show where each one sees a difference. Everything here runs on
# synthetic systems and small task-trained networks, so it needs no LFADS run.

# %%
import os
from pathlib import Path

if Path.cwd().name == "notebooks":  # opened from the notebooks folder: work from the repository root
    os.chdir("..")
FIGURE_DIR = os.environ.get("LFADS_FIGURE_DIR", "")  # save every figure there as PNG when set
NUM_THREADS = int(os.environ.get("LFADS_NUM_THREADS", "1"))
FLIPFLOP_STEPS = int(os.environ.get("LFADS_FLIPFLOP_STEPS", "300"))  # training steps of each flip-flop network

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import spearmanr

from lfads.analysis.fixed_points import find_fixed_points, sample_initial_states
from lfads.analysis.projection import compute_pca
from lfads.compare import DSA, Model, ShapeMetric, compare_models, pairwise_distances, silhouette
from lfads.compare.api import exact_points
from lfads.compare.systems import DECISION_FAMILIES, decision_system, ring_attractor
from lfads.population.single import train_flipflop_rnn
from lfads.population.tasks import generate_flipflop_data
from lfads.viz.compare import plot_comparison, plot_distance_matrices, plot_topology

torch.set_num_threads(NUM_THREADS)


def save(fig, name):
    """Write ``fig`` to FIGURE_DIR/name.png when FIGURE_DIR is set."""
    if FIGURE_DIR:
        Path(FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURE_DIR) / f"{name}.png", dpi=110)


# %% [markdown]
# ## 1. Same condition averages, different dynamics
#
# Three families of 2-D systems share their condition-averaged trajectories by construction, $x_t =
# m_{c,t} + r_t$, and differ only in how trial-to-trial deviations $r_t$ evolve: around a **point
# attractor** they decay, along a **line attractor** one direction keeps them, and near a **saddle between
# two attractors** they are pushed to one side (bistable). Five instances per family, each rotated at
# random and with its own noise.

# %%
systems, families = [], []
for fi, family in enumerate(DECISION_FAMILIES):
    for i in range(5):
        x, cond = decision_system(family, seed=100 * fi + i)
        systems.append(x)
        families.append(family)
averages = [np.stack([x[cond == c].mean(0) for c in (1.0, -1.0)]) for x in systems]

fig, axes = plt.subplots(1, 3, figsize=(11, 3.5), layout="constrained", sharex=True, sharey=True)
for a, fi in zip(axes, range(3)):
    x, _ = decision_system(DECISION_FAMILIES[fi], seed=100 * fi, rotate=False)
    for k in range(0, 100, 10):
        a.plot(x[k, :, 0], x[k, :, 1], color="C0" if cond[k] > 0 else "C1", lw=0.6, alpha=0.6)
    for c, col in ((1.0, "C0"), (-1.0, "C1")):
        m = x[cond == c].mean(0)
        a.plot(m[:, 0], m[:, 1], color="k", lw=2)
    a.set_title(DECISION_FAMILIES[fi])
    a.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")
save(fig, "compare_families")

# %% [markdown]
# Procrustes on the condition averages cannot tell the families apart; DSA, fitted to the residuals about
# the condition averages (`conditions=`), separates them. Delays and rank are chosen by held-out
# prediction error.

# %%
geometry = pairwise_distances(averages, "procrustes")
result = compare_models(systems, metrics=["dsa", "dsa_eigenvalues"], names=[f[:2] + str(i % 5) for i, f in
                        enumerate(families)], conditions=cond)
result.distances = {"procrustes (averages)": geometry, **result.distances}
print(f"DSA delays {result.settings['dsa']['delays']}, rank {result.settings['dsa']['rank']}")
for metric, d in result.distances.items():
    print(f"{metric:<22s} largest distance {d.max():.3f}, silhouette by family {silhouette(d, families):+.2f}")
fig = plot_comparison(result, labels=families)
save(fig, "compare_families_distances")

# %% [markdown]
# ## 2. A deformed ring attractor
#
# A ring attractor (diffusion along a ring) seen through tuning curves that sharpen with a deformation
# parameter: the geometry changes, the dynamics do not. Cutting the ring into a line changes the dynamics.

# %%
levels = np.linspace(0.0, 1.0, 8)
reference = ring_attractor(0.0, seed=0)
deformed = [ring_attractor(b, seed=10 + i) for i, b in enumerate(levels)]
same_noise = [ring_attractor(0.0, seed=10 + i) for i in range(len(levels))]
line = ring_attractor(0.0, seed=99, cut=0.2 * np.pi)
procrustes = [ShapeMetric(alpha=1.0)(u, x) for u, x in zip(same_noise, deformed)]
ring_dsa = DSA().fit([reference, *deformed, line])
dyn = ring_dsa.distances()[0, 1:]
print(f"Spearman rho with the deformation: Procrustes {spearmanr(levels, procrustes)[0]:+.2f}, "
      f"DSA {spearmanr(levels, dyn[:-1])[0]:+.2f}; DSA to the cut ring {dyn[-1]:.3f} "
      f"(rings at most {dyn[:-1].max():.3f})")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
axes[0].plot(levels, procrustes, "o-", label="Procrustes (geometry)")
axes[0].plot(levels, dyn[:-1] / max(dyn.max(), 1e-12) * max(procrustes), "s-",
             label="DSA (scaled to the same range)")
axes[0].set_xlabel("deformation")
axes[0].set_ylabel("distance to the undeformed ring")
axes[0].legend(fontsize="small", frameon=False)
axes[1].bar(["rings (max)", "cut ring"], [dyn[:-1].max(), dyn[-1]], color=["C0", "C3"])
axes[1].set_ylabel("DSA distance")
save(fig, "compare_ring")

# %% [markdown]
# ## 3. Task-trained networks: fixed-point topology and linearizations
#
# Flip-flop GRUs remember the sign of the last pulse on each input channel: a network that has learned the
# $N$-bit task holds $2^N$ memories as attractors, with saddles between them. Networks trained briefly hold
# only some of them (others fade slowly). Three networks are trained here (two 3-bit, one 2-bit); for
# each, the memories it still holds after 3000 steps without input are counted by simulation and compared
# with the stable fixed points that `find_fixed_points` reports (each attractor counted once). A memory can
# outlast 3000 steps at a *slow point* (speed small but not zero) rather than at an attractor; the topology
# and spectra comparisons use only the points resolved to rounding error (`exact_only=True`).

# %%
import itertools

networks, fixed_points, names, bits_of = [], [], [], []
for name, bits, seed in (("3bit_a", 3, 1), ("3bit_b", 3, 4), ("2bit", 2, 1)):
    net, losses = train_flipflop_rnn(hidden_size=64, n_bits=bits, n_steps=FLIPFLOP_STEPS, batch_size=32,
                                     n_time=96, lr=2e-2, pulse_prob=0.03, carry_state=True, seed=seed)
    data = generate_flipflop_data(32, 200, bits, 0.03, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        _, states = net(data.inputs)
        # memories held: set each pattern with one pulse, then 3000 steps without input
        patterns = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=bits)))
        pulse = torch.zeros(len(patterns), 3000, bits)
        pulse[:, 5] = patterns
        out, _ = net(pulse)
    held = int((torch.sign(out[:, -1]) == patterns).all(1).sum())
    init = sample_initial_states(states, 256, noise_std=0.05, seed=0)
    fps = find_fixed_points(net.gru, init.states)
    networks.append(net)
    fixed_points.append(fps)
    names.append(name)
    bits_of.append(bits)
    stable = fps.stability == "stable"
    attractors = int((exact_points(fps).stability == "stable").sum())
    print(f"{name}: loss {np.mean(losses[-20:]):.4f}, memories held {held} of {2 ** bits}; stable points "
          f"{int(stable.sum())}, of which resolved to rounding error (attractors) {attractors}")
    print("   " + fps.summary(max_rows=0).splitlines()[1])

models = [Model(n, cell=net.gru, fixed_points=fps, readout=net.readout) for n, net, fps in
          zip(names, networks, fixed_points)]
result = compare_models(models, metrics=["topology", "topology_counts", "spectra"], names=names,
                        spectra_kwargs={"n_modes": 4, "stable_only": True})
for m in models:
    print(f"{m.name}: {m.topology.summary()}")
print(result)

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
for a, m in zip(axes, models):
    pts = m.fixed_points.states
    pos = compute_pca(pts, 2).transform(pts) if len(pts) > 2 else None
    plot_topology(m.topology, pos, title=f"{m.name}: counts by index {m.topology.count_vector().tolist()}", ax=a)
save(fig, "compare_topology")

fig = plot_distance_matrices(result)
save(fig, "compare_topology_distances")
