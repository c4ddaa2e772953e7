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
# # 03 - Dynamics of the trained generator
#
# The generator is a recurrent map $g_t = F(g_{t-1}, u_t)$. Here it is reverse-engineered with the inputs
# held at $u^* = 0$: its fixed points $F(g^*, 0) = g^*$, their linearisations (eigenvalues of
# $J = \partial F / \partial g$ at $g^*$: a mode grows when $|\lambda| > 1$) and a Jacobian-switching
# linear dynamical system (JSLDS) that replaces $F$ at every step by its linearisation about an expansion
# point, $\hat g_t = F(e_t, 0) + J(e_t)(g_{t-1} - e_t) + J_u(e_t)\, u_t$.
#
# Prerequisite (from the repository root): the quickstart Lorenz run,
# `python -m datasets.lorenz --out data/lorenz.h5 && lfads fit --config configs/lorenz.yaml`.
# Any other run works too (the inputs are set to zero for the fixed points). A model trained with
# `--model.jslds true` also shows its co-trained JSLDS at the end.

# %%
import os
from pathlib import Path

if Path.cwd().name == "notebooks":  # opened from the notebooks folder: work from the repository root
    os.chdir("..")
DYNAMICS_RUN = os.environ.get("LFADS_DYNAMICS_RUN", "runs/lorenz")
N_SAMPLES = int(os.environ.get("LFADS_N_SAMPLES", "50"))  # posterior samples per trial when sampling
N_INITIAL_STATES = int(os.environ.get("LFADS_N_INITIAL_STATES", "512"))  # starts of the fixed-point search
EXPANSION_STEPS = int(os.environ.get("LFADS_EXPANSION_STEPS", "1500"))  # training steps of the expansion network
FIGURE_DIR = os.environ.get("LFADS_FIGURE_DIR", "")  # save every figure there as PNG when set

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from lfads import viz
from lfads.analysis.fixed_points import find_fixed_points, sample_initial_states
from lfads.analysis.jslds import Readout, fit_expansion_point_network, simulate_jslds
from lfads.analysis.projection import compute_pca
from lfads.run import load_run

torch.set_num_threads(1)
torch.manual_seed(0)


def save(fig, name):
    """Write ``fig`` to FIGURE_DIR/name.png when FIGURE_DIR is set."""
    if FIGURE_DIR:
        Path(FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURE_DIR) / f"{name}.png", dpi=110)


# %% [markdown]
# ## Generator trajectories
#
# One deterministic pass at the posterior means (initial condition and inferred inputs) over the
# validation trials gives generator trajectories $g_0, g_1, \dots, g_T$ and the inputs that drove them.

# %%
run = load_run(DYNAMICS_RUN, n_samples=N_SAMPLES, splits=("valid",))
model = run.model
valid = run.data("valid")
conditions = valid.extras.get("conditions")
bin_size = run.bin_size or 1.0
with torch.no_grad():
    mean_pass = model({0: torch.as_tensor(valid.encod_data)}, {0: torch.as_tensor(valid.ext_input)}, sample=False)[0]
gen_states = mean_pass.gen_states.double().numpy()  # (trials, time, gen_dim)
gen_init = mean_pass.gen_init.double().numpy()  # (trials, gen_dim)
gen_inputs = mean_pass.gen_inputs.double().numpy()  # (trials, time, co_dim + ext_dim)
cell = model.decoder.generator
print(f"{run.run_dir}: generator {cell.hidden_size} units, {cell.input_size} inputs, "
      f"{gen_states.shape[0]} trials x {gen_states.shape[1]} steps")

# %% [markdown]
# ## Fixed points
#
# Speed minimisation from states sampled along the trajectories (plus a little noise), then
# deduplication and linearisation at each point.

# %%
spread = float(gen_states.reshape(-1, gen_states.shape[-1]).std(0).mean())
init = sample_initial_states(gen_states, N_INITIAL_STATES, noise_std=0.05 * spread, seed=0)
fps = find_fixed_points(cell, init.states)
print(fps.summary(max_rows=12))

# %% [markdown]
# Eigenvalues of every point's Jacobian; the unit circle separates decaying from growing modes. A mode
# with $|\lambda|$ close to 1 is slow: it decays (or grows) with time constant
# $\tau = -\Delta t / \ln|\lambda|$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
viz.plot_eigenvalues(fps, ax=axes[0])
axes[0].set_title("all eigenvalues")
viz.plot_eigenvalues(fps, ax=axes[1])
axes[1].set_xlim(0.8, 1.1)
axes[1].set_ylim(-0.15, 0.15)
axes[1].set_title("near $\\lambda = 1$")
save(fig, "dynamics_eigenvalues")
if len(fps):
    lam_max = fps.max_abs_eigenvalue
    with np.errstate(divide="ignore"):
        tau_ms = 1000 * bin_size / np.abs(np.log(lam_max))
    for i in range(min(len(fps), 8)):
        print(f"point {i}: {fps.stability[i]:<8} {fps.n_unstable[i]} unstable mode(s), max |lambda| = "
              f"{lam_max[i]:.4f} (time constant {tau_ms[i]:.0f} ms), merged from {fps.count[i]} starts")

# %% [markdown]
# The points on the principal components of the trajectories (colour: stability class; circles: fixed
# points, squares: slow points), with each unstable mode drawn through its point. How close is each point
# to the states the generator actually visits?

# %%
pca = compute_pca(gen_states, 3)
visited = gen_states.reshape(-1, gen_states.shape[-1])
radius = float(np.sqrt(((visited - visited.mean(0)) ** 2).sum(1).mean()))  # RMS distance from the centre
fig = viz.plot_fixed_points(fps, gen_states, conditions=conditions, pca=pca, mode_scale=0.3 * radius)
save(fig, "dynamics_fixed_points")
fig = viz.plot_fixed_points(fps, gen_states, conditions=conditions, pca=pca, n_components=3, mode_scale=0.3 * radius)
save(fig, "dynamics_fixed_points_3d")
if len(fps):
    nearest = np.sqrt(((fps.states[:, None, :] - visited[None, ::7, :]) ** 2).sum(-1)).min(1)
    print("distance to the nearest visited state / RMS radius of the trajectories:",
          np.round(nearest[:8] / radius, 3))

# %% [markdown]
# ## Jacobian-switching linear dynamics
#
# Two ways to pick the expansion point $e_t$ from the state $g_{t-1}$: the nearest fixed point found
# above, or a small network $e(g) = g + \mathrm{MLP}(g)$ fitted to map each visited state to a nearby
# approximate fixed point. Each JSLDS runs one step ahead from the true state (one-step error) and on its
# own from $g_0$ (rollout error); errors are $\lVert \hat g_t - g_t \rVert / \lVert g_t \rVert$.

# %%
readout = Readout(factor_weight=model.decoder.factor_weight().detach().double().numpy())
results = {}
if len(fps):
    results["nearest fixed point"] = simulate_jslds(cell, gen_init, gen_inputs, fps, readout=readout)
network, losses = fit_expansion_point_network(cell, gen_states, n_steps=EXPANSION_STEPS, seed=0)
results["expansion network"] = simulate_jslds(cell, gen_init, gen_inputs, network, readout=readout)
for name, res in results.items():
    print(f"[{name}]\n{res.summary()}\n")
# the map rerun in float64 from g_0 should retrace the model's (float32) trajectories
drift = np.abs(results["expansion network"].states - gen_states).max() / np.abs(gen_states).max()
print(f"largest difference between the rerun map and the model's trajectories: {drift:.1e} (relative)")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
viz.plot_jslds_error({name: res.one_step_error for name, res in results.items()}, bin_size=run.bin_size,
                     logy=True, ax=axes[0])
axes[0].set_title("one-step error")
viz.plot_jslds_error({name: res.rollout_error for name, res in results.items()}, bin_size=run.bin_size,
                     logy=True, ax=axes[1])
axes[1].set_title("rollout error")
save(fig, "dynamics_jslds_errors")

fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.plot(losses, lw=1.0)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("expansion-network loss")
save(fig, "dynamics_expansion_loss")

# %% [markdown]
# Expansion points picked by the network along the trajectories (dots, coloured like their trial), and
# one trial's factors: the nonlinear generator against the JSLDS rollout.

# %%
res = results["expansion network"]
fig = viz.plot_trajectories(gen_states, conditions, pca=pca, events={}, alpha=0.4)
ax = fig.axes[0]
e_proj = pca.transform(res.one_step_expansion)[..., :2]
for trial in range(min(5, e_proj.shape[0])):
    ax.scatter(e_proj[trial, ::3, 0], e_proj[trial, ::3, 1], s=8, color=ax.lines[trial].get_color(), zorder=3)
if len(fps):
    viz.plot_fixed_points(fps, pca=pca, ax=ax, show_unstable_modes=False)
ax.set_title("expansion points (dots) and fixed points")
save(fig, "dynamics_expansion_points")

t = np.arange(gen_states.shape[1]) * bin_size
fig, axes = plt.subplots(min(3, res.factors.shape[-1]), 1, figsize=(7, 5), sharex=True, layout="constrained",
                         squeeze=False)
for k, a in enumerate(axes[:, 0]):
    a.plot(t, res.factors[0, :, k], color="k", lw=1.6, label="generator")
    a.plot(t, res.rollout_factors[0, :, k], color="C1", lw=1.2, ls="--", label="JSLDS rollout")
    a.set_ylabel(f"factor {k}")
axes[0, 0].legend(frameon=False, fontsize="small")
axes[-1, 0].set_xlabel("time (s)" if run.bin_size else "time (bins)")
save(fig, "dynamics_jslds_factors")

# %% [markdown]
# ## Co-trained JSLDS
#
# A model fitted with `--model.jslds true` learns its own expansion-point network together with the
# generator; its errors on the same trials:

# %%
if getattr(model, "jslds", None) is not None:
    co = model.jslds_outputs(0, torch.as_tensor(valid.encod_data), torch.as_tensor(valid.ext_input))
    errors = {"one-step": co["one_step_error"].numpy(), "rollout": co["rollout_error"].numpy()}
    for name, e in errors.items():
        print(f"co-trained JSLDS {name} relative error: mean {e.mean():.3e}")
    fig = viz.plot_jslds_error(errors, bin_size=run.bin_size, logy=True)
    fig.axes[0].set_title("co-trained JSLDS")
    save(fig, "dynamics_cotrained_jslds")
else:
    print("This model was trained without a JSLDS (model.jslds is false): nothing to show here.")
