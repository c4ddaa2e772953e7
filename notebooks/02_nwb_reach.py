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
# # 02 - LFADS on an NWB reaching session
#
# The synthetic delayed-reach session (`datasets/reach_nwb.py`) is an NWB file with spike times, a
# trials table (target onset, movement onset, reach condition) and hand velocity. LFADS is fitted
# straight from the NWB file (`configs/reach_nwb.yaml` bins 20 ms around movement onset). Here:
# condition-coloured latent trajectories with the trial events marked, and hand velocity decoded from
# the inferred rates, compared with decoding from smoothed spikes.
#
# Prerequisites (from the repository root):
#
# ```bash
# python -m datasets.reach_nwb --out data/reach.nwb --seed 0
# lfads fit --config configs/reach_nwb.yaml
# ```

# %%
import os
from pathlib import Path

if Path.cwd().name == "notebooks":  # opened from the notebooks folder: work from the repository root
    os.chdir("..")
REACH_RUN = os.environ.get("LFADS_REACH_RUN", "runs/reach_nwb")
NWB_PATH = os.environ.get("LFADS_REACH_NWB", "")  # default: the NWB file the run was trained on
N_SAMPLES = int(os.environ.get("LFADS_N_SAMPLES", "50"))  # posterior samples per trial when sampling
EVAL_SPLIT = os.environ.get("LFADS_REACH_EVAL_SPLIT", "valid")  # trials the decoders are scored on
FIGURE_DIR = os.environ.get("LFADS_FIGURE_DIR", "")  # save every figure there as PNG when set

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from pynwb import NWBHDF5IO

from lfads import viz
from lfads.baselines import smooth_spikes
from lfads.metrics import fit_ridge_cv, psth_r2, r2_score, vel_r2_cv_grouped
from lfads.run import load_run

torch.set_num_threads(1)
torch.manual_seed(0)


def save(fig, name):
    """Write ``fig`` to FIGURE_DIR/name.png when FIGURE_DIR is set."""
    if FIGURE_DIR:
        Path(FIGURE_DIR).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURE_DIR) / f"{name}.png", dpi=110)


# %% [markdown]
# ## Load the run and the trial events
#
# Each split's extras hold the NWB trial ids, the alignment times (movement onset), the binned hand
# velocity and the condition ids. Target onset is read from the NWB trials table.

# %%
run = load_run(REACH_RUN, n_samples=N_SAMPLES)
session = run.datamodule.sessions[0]
nwb_path = Path(NWB_PATH) if NWB_PATH else session.path
bin_size = run.bin_size
window_start = float(session.attrs["window_start"])
splits = [s for s in ("train", "valid", "test") if s in session.splits]
data = {s: run.data(s) for s in splits}
out = {s: run.outputs(s) for s in splits}
n_in = data["train"].encod_data.shape[2]
T = data["train"].recon_data.shape[1]
print(f"{nwb_path}: {', '.join(f'{s} {data[s].n_trials}' for s in splits)} trials, {T} bins of "
      f"{1000 * bin_size:g} ms from {1000 * window_start:g} ms, {n_in} held-in + "
      f"{data['train'].recon_data.shape[2] - n_in} held-out units")

with NWBHDF5IO(str(nwb_path), "r") as io:
    trials = io.read().trials
    target_on = np.asarray(trials["target_on_time"].data[:])


def event_bin(times, align):
    """Fractional bin (bin centres at integers) of event times relative to each trial's alignment time."""
    return (np.asarray(times) - np.asarray(align) - window_start) / bin_size - 0.5


events = {s: {"target on": event_bin(target_on[data[s].extras["trial_ids"]], data[s].extras["align_times"]),
              "move onset": event_bin(data[s].extras["align_times"], data[s].extras["align_times"])}
          for s in splits}
print("move onset lies at bin", events["train"]["move onset"][0])

# %% [markdown]
# ## Latent trajectories by reach direction
#
# Factors of all trials, averaged within each reach condition and projected on the top principal
# components of the single trials; colours go round the circle of reach directions. Markers: target onset
# (where it falls inside the window) and movement onset.

# %%
all_factors = np.concatenate([out[s]["factors"] for s in splits])
all_conditions = np.concatenate([data[s].extras["conditions"] for s in splits])
all_events = {k: np.concatenate([events[s][k] for s in splits]) for k in events["train"]}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
viz.plot_trajectories(all_factors, all_conditions, average_conditions=True, events=all_events, cmap="hsv",
                      linewidth=2.0, ax=axes[0])
axes[0].set_title("condition means")
viz.plot_trajectories(all_factors, all_conditions, events={"move onset": all_events["move onset"]}, cmap="hsv",
                      linewidth=0.6, alpha=0.5, ax=axes[1])
axes[1].set_title("single trials")
save(fig, "reach_trajectories")

fig = viz.plot_ic_embedding(np.concatenate([out[s]["ic_mean"] for s in splits]), all_conditions, cmap="hsv")
save(fig, "reach_ic_embedding")

# %% [markdown]
# ## Rates and PSTHs
#
# Spikes against inferred rates for two trials, and PSTHs of a held-in and a held-out unit by condition
# (spikes smoothed with a 1-bin Gaussian for display).

# %%
ev = data[EVAL_SPLIT]
centre0 = window_start + bin_size / 2  # centre of bin 0, relative to movement onset
fig = viz.plot_raster_and_rates(ev.recon_data, out[EVAL_SPLIT]["rates"], trials=[0, 1], bin_size=bin_size,
                                start_time=centre0)
for a in fig.axes:
    if a.get_xlabel():
        a.set_xlabel("time from movement onset (s)")
save(fig, "reach_raster_rates")
all_rates = np.concatenate([out[s]["rates"] for s in splits])
all_counts = np.concatenate([data[s].recon_data for s in splits])
fig = viz.plot_psths(all_rates, all_counts, all_conditions, neurons=[0, n_in], bin_size=bin_size, smooth_sigma=1.0,
                     start_time=centre0, cmap="hsv")
for a in fig.axes:
    a.set_xlabel("time from movement onset (s)")
    a.axvline(0.0, color="0.5", lw=0.8, ls="--")
save(fig, "reach_psths")
print(f"PSTH R2 of the rates against the spikes' PSTHs (all trials): "
      f"held-in {psth_r2(all_rates[..., :n_in], all_counts[..., :n_in], all_conditions):.3f}, "
      f"held-out {psth_r2(all_rates[..., n_in:], all_counts[..., n_in:], all_conditions):.3f}")

# %% [markdown]
# ## Decoding hand velocity
#
# A ridge decoder maps the rates of the held-in units in bin $t$ to hand velocity in bin $t$; its penalty
# is chosen by cross-validation over training trials, and it is scored on the evaluation trials. The
# comparison decodes from the same units' spikes smoothed with a Gaussian whose width is chosen by
# cross-validated decoding on the training trials.

# %%
def decode(train_x, train_y, eval_x):
    """Fit a ridge decoder on training trials (penalty by trial-grouped CV) and predict evaluation trials."""
    groups = np.repeat(np.arange(train_x.shape[0]), train_x.shape[1])
    fit = fit_ridge_cv(train_x.reshape(-1, train_x.shape[-1]), train_y.reshape(-1, train_y.shape[-1]), groups=groups)
    return fit.predict(eval_x.reshape(-1, eval_x.shape[-1])).reshape(*eval_x.shape[:2], train_y.shape[-1])


tr = data["train"]
vel_train, vel_eval = tr.extras["behavior"], ev.extras["behavior"]
sigmas = [1.0, 1.5, 2.0, 3.0, 4.0]
cv = {s: vel_r2_cv_grouped(smooth_spikes(tr.encod_data, s), vel_train, n_folds=5) for s in sigmas}
best_sigma = max(cv, key=cv.get)
features = {
    "LFADS rates": (out["train"]["rates"][..., :n_in], out[EVAL_SPLIT]["rates"][..., :n_in]),
    "LFADS factors": (out["train"]["factors"], out[EVAL_SPLIT]["factors"]),
    f"smoothed spikes ({1000 * best_sigma * bin_size:g} ms)": (smooth_spikes(tr.encod_data, best_sigma),
                                                              smooth_spikes(ev.encod_data, best_sigma)),
}
decoded = {name: decode(x_tr, vel_train, x_ev) for name, (x_tr, x_ev) in features.items()}
scores = {name: r2_score(vel_eval.reshape(-1, 2), pred.reshape(-1, 2)) for name, pred in decoded.items()}
for name, score in scores.items():
    print(f"vel R2 ({EVAL_SPLIT} trials) from {name:<28} {score:.3f}")

# %% [markdown]
# Decoded velocity of one trial, and hand paths (velocity integrated over the window) of every evaluation
# trial, coloured by reach direction.

# %%
t = centre0 + np.arange(T) * bin_size
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
for k, comp in enumerate("xy"):
    axes[k].plot(t, vel_eval[0, :, k], color="k", lw=2, label="true")
    for c, (name, pred) in enumerate(decoded.items()):
        axes[k].plot(t, pred[0, :, k], color=f"C{c}", lw=1.2, label=name)
    axes[k].axvline(0.0, color="0.5", lw=0.8, ls="--")
    axes[k].set_xlabel("time from movement onset (s)")
    axes[k].set_ylabel(f"hand velocity {comp} (m/s)")
axes[0].legend(frameon=False, fontsize="small")
save(fig, "reach_velocity_trial")

cm = plt.get_cmap("hsv")
labels = np.unique(all_conditions)
color_of = {c: cm(i / labels.size) for i, c in enumerate(labels)}
paths = {"true": vel_eval, **{name: decoded[name] for name in list(decoded)[::2]}}
fig, axes = plt.subplots(1, len(paths), figsize=(3.6 * len(paths), 3.6), layout="constrained")
for a, (name, vel) in zip(axes, paths.items()):
    pos = np.cumsum(vel, axis=1) * bin_size
    for i in range(pos.shape[0]):
        a.plot(pos[i, :, 0], pos[i, :, 1], color=color_of[ev.extras["conditions"][i]], lw=1.0)
    a.set_title(name if name == "true" else f"{name}\nvel $R^2$ = {scores[name]:.2f}", fontsize="medium")
    a.set_xlabel("x (m)")
    a.set_aspect("equal", adjustable="datalim")
axes[0].set_ylabel("y (m)")
save(fig, "reach_hand_paths")
