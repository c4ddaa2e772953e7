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
# # 01 - Inspect a trained LFADS model
#
# What a fitted model infers from the spikes of the synthetic Lorenz data set: single-trial rates next to
# the spikes, condition-averaged PSTHs, factor trajectories and the initial-condition posteriors, and how
# close the rates come to the true ones. A second run, on the chaotic-RNN data with one input pulse per
# trial, shows inferred inputs against the pulses that actually drove the network.
#
# Prerequisites (from the repository root):
#
# ```bash
# python -m datasets.lorenz --out data/lorenz.h5
# lfads fit --config configs/lorenz.yaml
# python -m datasets.chaotic_rnn --input-pulse --out data/chaotic_rnn_inputs.h5
# lfads fit --config configs/chaotic_rnn_inputs.yaml
# ```
#
# Paths are relative to the repository root; each can be set through the environment variable named
# next to it. Posterior samples are read from `posterior_samples.h5` in a run folder, or drawn (seeded)
# and saved there the first time.

# %%
import os
from pathlib import Path

if Path.cwd().name == "notebooks":  # opened from the notebooks folder: work from the repository root
    os.chdir("..")
LORENZ_RUN = os.environ.get("LFADS_LORENZ_RUN", "runs/lorenz")
INPUTS_RUN = os.environ.get("LFADS_INPUTS_RUN", "runs/chaotic_rnn_inputs")
N_SAMPLES = int(os.environ.get("LFADS_N_SAMPLES", "50"))  # posterior samples per trial when sampling
FIGURE_DIR = os.environ.get("LFADS_FIGURE_DIR", "")  # save every figure there as PNG when set

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from lfads import viz
from lfads.baselines import smooth_spikes
from lfads.metrics import fit_ridge_cv, psth_r2, r2_score, rate_r2
from lfads.run import load_run

torch.set_num_threads(1)
torch.manual_seed(0)


def save(fig, name):
    """Write ``fig`` to FIGURE_DIR/name.png when FIGURE_DIR is set."""
    if FIGURE_DIR:
        Path(FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURE_DIR) / f"{name}.png", dpi=110)


# %% [markdown]
# ## The Lorenz run
#
# `load_run` finds the newest `version_*` folder and its best checkpoint, rebuilds the data module and
# returns the resolved config, the metrics table and posterior-averaged outputs for every split.

# %%
run = load_run(LORENZ_RUN, n_samples=N_SAMPLES)
print(f"run folder: {run.run_dir}\ncheckpoint: {run.checkpoint.name}")
print({k: run.config["model"][k] for k in ("gen_dim", "fac_dim", "ic_dim", "co_dim")})
bin_size = run.bin_size
train, valid = run.data("train"), run.data("valid")
out_train, out_valid = run.outputs("train"), run.outputs("valid")
cond_train, cond_valid = train.extras["conditions"], valid.extras["conditions"]
print(f"{valid.n_trials} validation trials, {valid.recon_data.shape[1]} bins of {bin_size} s, "
      f"{valid.encod_data.shape[2]} held-in + {valid.recon_data.shape[2] - valid.encod_data.shape[2]} held-out neurons")

# %% [markdown]
# Training curves: the reconstruction cost and the validation metrics logged every epoch.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
viz.plot_training_curves(run.metrics, ["train/recon", "valid/recon"], ax=axes[0])
viz.plot_training_curves(
    run.metrics, [k for k in ("valid/rate_r2", "valid/co_bps", "valid/heldin_bps") if k in run.metrics], ax=axes[1]
)
save(fig, "lorenz_training_curves")

# %% [markdown]
# ## Spikes and inferred rates
#
# Each row is one validation trial: the spike raster, the posterior-averaged rates and the true rates
# (same colour scale). The last neurons are held out: the encoder never saw their spikes.

# %%
fig = viz.plot_raster_and_rates(valid.recon_data, out_valid["rates"], trials=[0, 1, 2], truth=valid.truth,
                                bin_size=bin_size)
save(fig, "lorenz_raster_rates")

# %% [markdown]
# ## PSTHs by condition
#
# Trials of a condition share their latent trajectory, so their mean is the condition's PSTH. Training
# trials (several per condition) for a held-in and a held-out neuron; model solid, smoothed spikes dashed,
# truth dotted.

# %%
n_in = train.encod_data.shape[2]
show = np.unique(cond_train)[:4]
fig = viz.plot_psths(out_train["rates"], train.recon_data, cond_train, neurons=[0, n_in],
                     truth=train.truth, show_conditions=show, bin_size=bin_size, smooth_sigma=2.0)
save(fig, "lorenz_psths")
print(f"PSTH R2 vs true rates (train, all neurons): {psth_r2(out_train['rates'], train.truth, cond_train):.3f}")

# %% [markdown]
# ## Factor trajectories
#
# Factors of the validation trials on their top principal components, coloured by condition, with
# markers at the trial start and at its midpoint.

# %%
T = valid.recon_data.shape[1]
fig = viz.plot_trajectories(out_valid["factors"], cond_valid, events={"start": 0, "midpoint": T // 2})
save(fig, "lorenz_factors")
fig = viz.plot_trajectories(out_valid["factors"], cond_valid, n_components=3, events={"start": 0})
save(fig, "lorenz_factors_3d")

# %% [markdown]
# The factors are a linear image of the Lorenz state if the model found the right latent system: a ridge
# map fitted on training trials, scored on validation trials.

# %%
latent_r2 = None
if "latents" in train.extras:
    fac_dim = out_train["factors"].shape[-1]
    trial_of_sample = np.repeat(np.arange(train.n_trials), T)
    ridge = fit_ridge_cv(out_train["factors"].reshape(-1, fac_dim), train.extras["latents"].reshape(-1, 3),
                         groups=trial_of_sample)
    predicted = ridge.predict(out_valid["factors"].reshape(-1, fac_dim))
    latent_r2 = r2_score(valid.extras["latents"].reshape(-1, 3), predicted)
    print(f"Lorenz state from factors (linear, validation trials): R2 = {latent_r2:.3f}")
    fig, axes = plt.subplots(3, 1, figsize=(7, 5), sharex=True, layout="constrained")
    t = np.arange(T) * bin_size
    for k, name in enumerate("xyz"):
        axes[k].plot(t, valid.extras["latents"][0, :, k], color="k", lw=1.5, label="true")
        axes[k].plot(t, predicted.reshape(valid.n_trials, T, 3)[0, :, k], color="C1", lw=1.2, label="from factors")
        axes[k].set_ylabel(name)
    axes[0].legend(frameon=False, fontsize="small")
    axes[-1].set_xlabel("time (s)")
    save(fig, "lorenz_latents")

# %% [markdown]
# ## Initial-condition posteriors
#
# The posterior means of the initial condition on their first two principal components: trials of one
# condition start from the same state, so their IC means should cluster.

# %%
fig = viz.plot_ic_embedding(out_train["ic_mean"], cond_train)
save(fig, "lorenz_ic_embedding")

# %% [markdown]
# ## Rates against the truth
#
# Single-trial rate $R^2$ (per neuron over all validation trials and bins, averaged over neurons), next to
# Gaussian spike smoothing with its width chosen on the training trials (best $R^2$ there).

# %%
r2_lfads = rate_r2(out_valid["rates"], valid.truth)
sigmas = [1.0, 2.0, 4.0, 8.0, 12.0, 16.0]
best_sigma = max(sigmas, key=lambda s: rate_r2(smooth_spikes(train.recon_data, s), train.truth))
r2_smooth = rate_r2(smooth_spikes(valid.recon_data, best_sigma), valid.truth)
print(f"rate R2 (validation): LFADS {r2_lfads:.3f}; spike smoothing (sigma = {best_sigma:g} bins) {r2_smooth:.3f}")
fig, ax = plt.subplots(figsize=(4.2, 4), layout="constrained")
rng = np.random.default_rng(0)
pick = rng.choice(valid.truth.size, size=min(5000, valid.truth.size), replace=False)
truth_hz, rates_hz = valid.truth.ravel()[pick] / bin_size, out_valid["rates"].ravel()[pick] / bin_size
ax.scatter(truth_hz, rates_hz, s=3, alpha=0.3, edgecolors="none")
lim = [0, float(max(truth_hz.max(), rates_hz.max()))]
ax.plot(lim, lim, color="k", lw=0.8)
ax.set_xlabel("true rate (spikes/s)")
ax.set_ylabel("inferred rate (spikes/s)")
ax.set_title(f"validation bins, rate $R^2$ = {r2_lfads:.3f}")
save(fig, "lorenz_rate_scatter")

# %% [markdown]
# ## Inferred inputs: chaotic RNN with input pulses
#
# Every trial of this data set got one brief input pulse at a random time. The model's controller has to
# infer it: below, the posterior-mean inputs aligned to each trial's pulse, with the true pulse on the
# right axis and the band showing the learned timescale $\tau$ of the inputs' AR(1) prior.

# %%
inputs_run = load_run(INPUTS_RUN, n_samples=N_SAMPLES, splits=("valid",))
u_data = inputs_run.data("valid")
u_out = inputs_run.outputs("valid")
pulse_bins = u_data.extras["pulse_bins"]
tau = inputs_run.co_prior_tau()
print(f"co_dim = {u_out['co_means'].shape[-1]}, learned prior timescale tau = {np.round(tau, 2)} bins")
fig = viz.plot_inferred_inputs(u_out["co_means"], event_bins=pulse_bins, window=(10, 30),
                               true_inputs=u_data.extras["true_inputs"], tau=tau, bin_size=inputs_run.bin_size,
                               event_label="pulse")
save(fig, "chaotic_inferred_inputs")

# %% [markdown]
# Where is each trial's largest inferred input relative to its pulse? (A pulse in bin $p$ first changes
# the rates of bin $p + 1$.)

# %%
magnitude = np.abs(u_out["co_means"]).sum(-1)
lag = magnitude.argmax(1) - pulse_bins
near = float(np.mean(np.abs(lag) <= 2))
print(f"largest inferred input within 2 bins of the pulse in {100 * near:.0f}% of {lag.size} validation trials "
      f"(median lag {np.median(lag):+.0f} bins)")
fig, ax = plt.subplots(figsize=(4.5, 3), layout="constrained")
ax.hist(lag, bins=np.arange(lag.min() - 0.5, lag.max() + 1.5), color="C0")
ax.set_xlabel("bin of largest inferred input - pulse bin")
ax.set_ylabel("trials")
save(fig, "chaotic_input_lag")
fig = viz.plot_raster_and_rates(u_data.recon_data, u_out["rates"], trials=[0], truth=u_data.truth,
                                bin_size=inputs_run.bin_size)
for a in fig.axes[:3]:
    a.axvline(pulse_bins[0] * inputs_run.bin_size, color="C2", lw=1.0, ls="--")
save(fig, "chaotic_raster_rates")
print(f"rate R2 (validation, chaotic RNN): {rate_r2(u_out['rates'], u_data.truth):.3f}")
