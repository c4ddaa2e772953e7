"""lfads.viz on small synthetic inputs: what each function draws, and how it rejects inconsistent inputs."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from lfads import viz  # noqa: E402
from lfads.analysis.projection import compute_pca  # noqa: E402
from lfads.errors import LFADSDataError  # noqa: E402
from lfads.run import load_metrics  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def spikes_and_rates():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.05, 0.6, size=(6, 20, 5))
    spikes = rng.poisson(rates).astype(float)
    truth = rates * rng.uniform(0.9, 1.1, size=rates.shape)
    conditions = np.array([0, 0, 1, 1, 2, 2])
    return spikes, rates, truth, conditions


def scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


# --------------------------------------------------------------------------------------------- raster and rates
def test_raster_has_one_tick_per_nonzero_bin_and_rates_as_images(spikes_and_rates):
    spikes, rates, truth, _ = spikes_and_rates
    fig = viz.plot_raster_and_rates(spikes, rates, trials=[1, 4], truth=truth, bin_size=0.01)
    data_axes = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(data_axes) == 6  # 2 trials x (raster, rates, truth)
    for row, trial in enumerate([1, 4]):
        raster = data_axes[3 * row]
        (ticks,) = scatters(raster)
        assert len(ticks.get_offsets()) == np.count_nonzero(spikes[trial])
        assert raster.get_xlabel() == "time (s)" and raster.get_ylabel() == "neuron"
        offsets = np.asarray(ticks.get_offsets())
        assert offsets[:, 0].max() <= 0.19 + 1e-12  # 20 bins of 10 ms
        image = [im for im in data_axes[3 * row + 1].get_images() if isinstance(im, AxesImage)]
        assert len(image) == 1
        # neurons down, time across, in spikes/s
        np.testing.assert_allclose(image[0].get_array(), rates[trial].T / 0.01)
        assert len(data_axes[3 * row + 2].get_images()) == 1
    assert any(a.get_label() == "<colorbar>" and "spikes / s" in a.get_ylabel() for a in fig.axes)


def test_raster_rejects_rates_of_another_shape(spikes_and_rates):
    spikes, rates, _, _ = spikes_and_rates
    with pytest.raises(LFADSDataError, match=r"rates has shape \(6, 19, 5\) but spikes has shape \(6, 20, 5\)"):
        viz.plot_raster_and_rates(spikes, rates[:, :19])
    assert issubclass(LFADSDataError, ValueError)
    with pytest.raises(ValueError, match="spikes must be"):
        viz.plot_raster_and_rates(spikes[0], rates[0])
    with pytest.raises(ValueError, match=r"trials holds \[6\], out of range for 6 trials"):
        viz.plot_raster_and_rates(spikes, rates, trials=[6])


def test_raster_draws_into_given_axes_and_checks_their_number(spikes_and_rates):
    spikes, rates, _, _ = spikes_and_rates
    fig, axes = plt.subplots(1, 2)
    assert viz.plot_raster_and_rates(spikes, rates, trials=[0], ax=axes) is fig
    assert len(scatters(axes[0])) == 1 and len(axes[1].get_images()) == 1
    with pytest.raises(ValueError, match="ax holds 2 axes but this plot needs 4"):
        viz.plot_raster_and_rates(spikes, rates, trials=[0, 1], ax=axes)


# --------------------------------------------------------------------------------------------- PSTHs
def test_psth_lines_are_condition_means_of_model_data_and_truth(spikes_and_rates):
    spikes, rates, truth, conditions = spikes_and_rates
    fig = viz.plot_psths(rates, spikes, conditions, neurons=[2, 4], truth=truth, bin_size=0.02)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert len(ax.lines) == 3 * 3  # 3 conditions x (model, data, truth)
    model_c1, data_c1, truth_c1 = ax.lines[3:6]
    np.testing.assert_allclose(model_c1.get_ydata(), rates[2:4, :, 2].mean(0) / 0.02)
    np.testing.assert_allclose(data_c1.get_ydata(), spikes[2:4, :, 2].mean(0) / 0.02)
    np.testing.assert_allclose(truth_c1.get_ydata(), truth[2:4, :, 2].mean(0) / 0.02)
    assert model_c1.get_color() == data_c1.get_color() != ax.lines[0].get_color()
    assert ax.get_ylabel() == "rate (spikes / s)" and ax.get_title() == "neuron 2"


def test_psth_subset_of_conditions_and_smoothing():
    rates = np.ones((4, 30, 2))
    spikes = np.zeros((4, 30, 2))
    spikes[:, 15, 0] = 1.0  # one spike per trial in the middle bin
    fig = viz.plot_psths(rates, spikes, np.array([5, 5, 7, 7]), neurons=[0], show_conditions=[7], smooth_sigma=2.0,
                         start_time=-10)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(-10, 20))  # bins from start_time
    assert ax.get_xlabel() == "time (bins)" and ax.get_ylabel() == "rate (spikes / bin)"
    data = ax.lines[1].get_ydata()
    kernel = np.exp(-0.5 * (np.arange(-8, 9) / 2.0) ** 2)
    np.testing.assert_allclose(data[7:24], kernel / kernel.sum(), atol=1e-12)  # a normalized Gaussian bump


def test_psth_rejects_mismatched_conditions(spikes_and_rates):
    spikes, rates, _, conditions = spikes_and_rates
    with pytest.raises(ValueError, match=r"conditions has shape \(5,\) but rates has 6 trials"):
        viz.plot_psths(rates, spikes, conditions[:5])
    with pytest.raises(ValueError, match=r"show_conditions holds \[9\]"):
        viz.plot_psths(rates, spikes, conditions, show_conditions=[9])
    with pytest.raises(ValueError, match="spikes has shape"):
        viz.plot_psths(rates, spikes[:, :, :4], conditions)


# --------------------------------------------------------------------------------------------- trajectories
def planar_states(n_trials: int = 4, n_time: int = 25, dims: int = 6):
    """Circles in a 2-D plane of a 6-D space, one radius per trial."""
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.normal(size=(dims, 2)))
    phase = np.linspace(0, 2 * np.pi, n_time)
    radius = 1.0 + np.arange(n_trials)[:, None]
    plane = np.stack([radius * np.cos(phase), radius * np.sin(phase)], -1)  # (trials, time, 2)
    return plane @ basis.T + 3.0, plane


def test_trajectories_are_pca_projections_with_event_markers():
    states, plane = planar_states()
    conditions = np.array([0, 1, 0, 1])
    fig = viz.plot_trajectories(states, conditions, events={"start": 0, "go": np.array([3, 5, 7, np.nan])})
    ax = fig.axes[0]
    assert len(ax.lines) == 4
    pca = compute_pca(states, 2)
    for line, traj in zip(ax.lines, pca.transform(states)):
        np.testing.assert_allclose(np.c_[line.get_xdata(), line.get_ydata()], traj)
    # the states lie in a plane, so the projection keeps every distance within it
    xy = np.c_[ax.lines[3].get_xdata(), ax.lines[3].get_ydata()]
    np.testing.assert_allclose(np.linalg.norm(xy - xy[0], axis=1), np.linalg.norm(plane[3] - plane[3, 0], axis=1),
                               atol=1e-9)
    start, go = scatters(ax)
    assert len(start.get_offsets()) == 4
    assert len(go.get_offsets()) == 3  # the last trial has no 'go'
    np.testing.assert_allclose(go.get_offsets()[1], pca.transform(states[1, 5]))
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    assert ax.lines[0].get_color() == ax.lines[2].get_color() != ax.lines[1].get_color()
    assert np.isclose(pca.explained_variance_ratio.sum(), 1.0)


def test_trajectories_condition_averages_and_3d():
    states, _ = planar_states(dims=6)
    states = states + np.random.default_rng(2).normal(0, 0.01, states.shape)
    conditions = np.array([3, 3, 8, 8])
    fig = viz.plot_trajectories(states, conditions, average_conditions=True, events={})
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and not scatters(ax)
    pca = compute_pca(states, 2)
    np.testing.assert_allclose(ax.lines[1].get_xdata(), pca.transform(states[2:].mean(0))[:, 0])
    fig3 = viz.plot_trajectories(states, conditions, n_components=3)
    assert fig3.axes[0].name == "3d" and len(fig3.axes[0].lines) == 4
    _, ax2 = plt.subplots()
    with pytest.raises(ValueError, match="3-D axes"):
        viz.plot_trajectories(states, n_components=3, ax=ax2)


def test_trajectories_reject_mismatched_inputs():
    states, _ = planar_states()
    with pytest.raises(ValueError, match=r"conditions has shape \(3,\) but states has 4 trials"):
        viz.plot_trajectories(states, np.arange(3))
    with pytest.raises(ValueError, match=r"events\['go'\] has shape \(2,\)"):
        viz.plot_trajectories(states, events={"go": np.array([1, 2])})
    with pytest.raises(ValueError, match="pca was fitted to states of size 3 but states have size 6"):
        viz.plot_trajectories(states, pca=compute_pca(states[..., :3], 2))
    with pytest.raises(ValueError, match="average_conditions=True needs conditions"):
        viz.plot_trajectories(states, average_conditions=True)


# --------------------------------------------------------------------------------------------- inferred inputs
def test_align_to_events_cuts_windows_and_pads_with_nan():
    x = np.arange(2 * 6, dtype=float).reshape(2, 6, 1)
    aligned, lags = viz.align_to_events(x, np.array([1, 4]), (2, 3))
    np.testing.assert_array_equal(lags, [-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(aligned[0, :, 0], [np.nan, 0, 1, 2, 3])
    np.testing.assert_array_equal(aligned[1, :, 0], [8, 9, 10, 11, np.nan])
    with pytest.raises(ValueError, match=r"event_bins has shape \(3,\) but values has 2 trials"):
        viz.align_to_events(x, np.array([1, 2, 3]), (1, 1))


def test_inferred_inputs_aligned_mean_prior_band_and_true_input():
    n, t = 5, 40
    pulse = np.array([10, 12, 20, 25, 30])
    inputs = np.zeros((n, t, 2))
    true = np.zeros((n, t, 1))
    for i, p in enumerate(pulse):
        inputs[i, p:p + 3, 0] = [1.0, 0.5, 0.25]  # an input that decays after the pulse
        true[i, p, 0] = 20.0
    fig = viz.plot_inferred_inputs(inputs, event_bins=pulse, window=(4, 8), true_inputs=true, tau=[2.0, 5.0],
                                   bin_size=0.01, max_traces=3)
    main_axes = [a for a in fig.axes if a.get_ylabel().startswith("inferred input")]
    assert len(main_axes) == 2
    ax0 = main_axes[0]
    # 3 single traces, the mean, the event line
    assert len(ax0.lines) == 5
    mean = ax0.lines[3]
    np.testing.assert_allclose(mean.get_xdata(), np.arange(-4, 8) * 0.01)
    np.testing.assert_allclose(mean.get_ydata()[4:7], [1.0, 0.5, 0.25])
    (band,) = ax0.patches  # the prior's timescale: tau = 2 bins = 0.02 s after the event
    xs = band.get_patch_transform().transform(band.get_path().vertices)[:, 0]
    np.testing.assert_allclose([xs.min(), xs.max()], [0.0, 0.02])
    assert "AR(1) prior" in ax0.get_legend().get_texts()[1].get_text()
    twins = [a for a in fig.axes if a.get_ylabel() == "true input"]
    assert len(twins) == 2
    np.testing.assert_allclose(twins[0].lines[0].get_ydata()[4], 20.0)
    assert ax0.get_xlabel() == "time from event (s)"


def test_inferred_inputs_reject_bad_arguments():
    inputs = np.zeros((3, 10, 2))
    with pytest.raises(ValueError, match=r"tau has shape \(3,\) but inputs has co_dim = 2"):
        viz.plot_inferred_inputs(inputs, tau=[1, 2, 3])
    with pytest.raises(ValueError, match=r"true_inputs has shape \(3, 9, 1\) but inputs has shape \(3, 10, 2\)"):
        viz.plot_inferred_inputs(inputs, true_inputs=np.zeros((3, 9, 1)))
    with pytest.raises(ValueError, match=r"event_bins has shape \(2,\) but inputs has 3 trials"):
        viz.plot_inferred_inputs(inputs, event_bins=[1, 2])
    with pytest.raises(ValueError, match="co_dim = 0"):
        viz.plot_inferred_inputs(np.zeros((3, 10, 0)))


def test_inferred_inputs_without_events_draw_single_trials():
    inputs = np.random.default_rng(0).normal(size=(4, 15, 1))
    fig = viz.plot_inferred_inputs(inputs, trials=[0, 2])
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), inputs[2, :, 0])
    assert ax.get_xlabel() == "time (bins)"


# --------------------------------------------------------------------------------------------- IC embedding
def test_ic_embedding_is_a_2d_pca_scatter_coloured_by_condition():
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 5, size=(3, 8))
    conditions = np.repeat([0, 1, 2], 10)
    ic = centres[conditions] + rng.normal(0, 0.1, size=(30, 8))
    fig = viz.plot_ic_embedding(ic, conditions)
    ax = fig.axes[0]
    (points,) = scatters(ax)
    np.testing.assert_allclose(points.get_offsets(), compute_pca(ic, 2).transform(ic))
    colors = points.get_facecolors()
    assert len(np.unique(colors.round(6), axis=0)) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2"]
    assert ax.get_xlabel().startswith("IC PC1")
    with pytest.raises(ValueError, match=r"conditions has shape \(29,\) but ic_mean has 30 trials"):
        viz.plot_ic_embedding(ic, conditions[:29])
    with pytest.raises(ValueError, match="ic_mean must be"):
        viz.plot_ic_embedding(ic[None])


def test_ic_embedding_uses_a_colour_bar_for_many_conditions():
    ic = np.random.default_rng(0).normal(size=(40, 4))
    fig = viz.plot_ic_embedding(ic, np.arange(40) % 20)
    assert any(a.get_label() == "<colorbar>" for a in fig.axes)


# --------------------------------------------------------------------------------------------- training curves
def test_training_curves_skip_rows_without_a_value(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,valid/loss\n0,7,,0.9\n0,7,1.0,\n1,15,,0.7\n1,15,0.8,\n2,23,0.6,\n")
    metrics = load_metrics(path)
    assert list(metrics) == ["epoch", "step", "train/loss", "valid/loss"]
    assert np.isnan(metrics["train/loss"][0]) and metrics["valid/loss"][2] == 0.7
    fig = viz.plot_training_curves(tmp_path)  # the folder holding metrics.csv
    ax = fig.axes[0]
    train, valid = ax.lines
    np.testing.assert_array_equal(train.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(train.get_ydata(), [1.0, 0.8, 0.6])
    np.testing.assert_array_equal(valid.get_ydata(), [0.9, 0.7])
    assert ax.get_xlabel() == "epoch" and [t.get_text() for t in ax.get_legend().get_texts()] == ["train/loss",
                                                                                                   "valid/loss"]
    fig2 = viz.plot_training_curves(metrics, ["valid/loss"], x="step", logy=True)
    assert fig2.axes[0].get_yscale() == "log" and fig2.axes[0].get_ylabel() == "valid/loss"
    np.testing.assert_array_equal(fig2.axes[0].lines[0].get_xdata(), [7, 15])


def test_training_curves_name_missing_columns(tmp_path):
    metrics = {"epoch": np.arange(3.0), "train/loss": np.ones(3)}
    with pytest.raises(ValueError, match=r"keys \['valid/rate_r2'\] are not metrics columns; the columns are"):
        viz.plot_training_curves(metrics, ["valid/rate_r2"])
    with pytest.raises(ValueError, match="x='time' is not a metrics column"):
        viz.plot_training_curves(metrics, x="time")
    bad = tmp_path / "metrics.csv"
    bad.write_text("epoch,train/loss\n0,abc\n")
    with pytest.raises(ValueError, match="row 2, column 'train/loss' holds 'abc'"):
        load_metrics(bad)


# --------------------------------------------------------------------------------------------- dynamics
def test_eigenvalues_on_the_unit_circle_coloured_by_stability_class():
    lam = np.array([[0.5 + 0.5j, 0.5 - 0.5j, 0.2], [1.2, 0.9j, -0.9j], [1.5, -1.1, 2.0]])
    fig = viz.plot_eigenvalues(lam)  # classes from the eigenvalues: stable, saddle, unstable
    ax = fig.axes[0]
    circle = ax.lines[0]
    np.testing.assert_allclose(np.hypot(circle.get_xdata(), circle.get_ydata()), 1.0)
    per_point = scatters(ax)
    assert len(per_point) == 3
    np.testing.assert_allclose(per_point[0].get_offsets(), np.c_[lam[0].real, lam[0].imag])
    colors = [tuple(p.get_facecolors()[0].round(4)) for p in per_point]
    assert len(set(colors)) == 3  # three classes, three colours
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"stable", "saddle", "unstable"} <= legend
    assert ax.get_xlabel() == "Re λ" and ax.get_ylabel() == "Im λ"
    two = viz.plot_eigenvalues(lam, ["stable", "stable", "stable"], points=[0, 2])
    assert len(scatters(two.axes[0])) == 2
    with pytest.raises(ValueError, match=r"stability has shape \(2,\) but there are 3 points"):
        viz.plot_eigenvalues(lam, ["stable", "saddle"])
    with pytest.raises(ValueError, match=r"stability holds \['wobbly'\]"):
        viz.plot_eigenvalues(lam, ["stable", "saddle", "wobbly"])


@pytest.fixture(scope="module")
def cubic_fixed_points():
    """Fixed points of h0 -> h0 + (h0 - h0^3) / 2, h_j -> h_j / 2 (j > 0): stable at h0 = +-1 (lambda 0 and 1/2),
    a saddle at 0 whose one unstable mode (lambda = 3/2) is e0."""
    import torch

    from lfads.analysis.fixed_points import find_fixed_points

    def step(u, h):
        return torch.cat([h[:, :1] + 0.5 * (h[:, :1] - h[:, :1] ** 3), 0.5 * h[:, 1:]], 1)

    init = np.array([[-1.2, 0.3, 0.1], [-0.1, 0.2, -0.2], [0.05, -0.1, 0.3], [0.9, 0.1, 0.1], [1.3, -0.2, 0.0]])
    fps = find_fixed_points(step, init, hidden_size=3, input_size=0)
    assert sorted(fps.stability.tolist()) == ["saddle", "stable", "stable"]
    return fps


def test_fixed_points_over_trajectories_with_the_unstable_mode(cubic_fixed_points):
    fps = cubic_fixed_points
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(3, 30, 3)) * np.array([1.0, 0.5, 0.05])
    fig = viz.plot_fixed_points(fps, traj, conditions=np.array([0, 1, 2]), mode_scale=0.3)
    ax = fig.axes[0]
    # 3 trajectories + 1 unstable mode (of the saddle)
    assert len(ax.lines) == 4
    assert len({ln.get_color() for ln in ax.lines[:3]}) == 3  # coloured by condition
    pca = compute_pca(traj, 2)
    points = np.concatenate([p.get_offsets() for p in scatters(ax)])
    expected = pca.transform(fps.states)
    assert len(points) == 3
    for e in expected:
        assert np.min(np.linalg.norm(points - e, axis=1)) < 1e-9
    seg = np.c_[ax.lines[3].get_xdata(), ax.lines[3].get_ydata()]
    saddle = fps.states[fps.stability == "saddle"][0]
    np.testing.assert_allclose(seg.mean(0), pca.transform(saddle), atol=1e-9)
    # the segment is saddle +- 0.3 e0 (the unstable eigenvector), projected; its sign is arbitrary
    target = 0.6 * pca.transform_directions(np.eye(3)[0])
    delta = seg[1] - seg[0]
    assert np.allclose(delta, target, atol=1e-6) or np.allclose(delta, -target, atol=1e-6)
    assert ax.get_xlabel().startswith("PC1")


def test_fixed_points_without_trajectories_and_bad_inputs(cubic_fixed_points):
    fps = cubic_fixed_points
    fig = viz.plot_fixed_points(fps, show_unstable_modes=False)
    assert len(scatters(fig.axes[0])) >= 2 and not fig.axes[0].lines
    with pytest.raises(ValueError, match="trajectories have 2 units but fixed_points.states have 3"):
        viz.plot_fixed_points(fps, np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="fixed_points has no 'kind'"):
        viz.plot_fixed_points(SimpleNamespace(states=fps.states, stability=fps.stability, eigenvalues=fps.eigenvalues))
    with pytest.raises(ValueError, match="pca was fitted to states of size 2 but states have size 3"):
        viz.plot_fixed_points(fps, pca=compute_pca(np.random.default_rng(0).normal(size=(10, 2)), 2))


def test_jslds_error_mean_and_standard_error_band():
    e = np.array([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]])
    fig = viz.plot_jslds_error({"one-step": e, "rollout": 2 * e}, bin_size=0.01, logy=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.2, 0.3, 0.4])
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [0.0, 0.01, 0.02])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    np.testing.assert_allclose(top, 0.4 + np.std([0.5, 0.3], ddof=1) / np.sqrt(2))
    assert ax.get_yscale() == "log"
    single = viz.plot_jslds_error(np.array([0.1, 0.2]))
    assert len(single.axes[0].lines) == 1 and not single.axes[0].collections
    with pytest.raises(ValueError, match="different numbers of time bins"):
        viz.plot_jslds_error({"a": np.zeros((2, 3)), "b": np.zeros((2, 4))})


def test_a_negative_bin_size_or_smoothing_and_an_event_outside_every_trial_are_refused():
    rng = np.random.default_rng(0)
    spikes = rng.poisson(1.0, size=(6, 20, 5)).astype(float)
    rates = np.ones_like(spikes)
    with pytest.raises(LFADSDataError, match="bin_size must be a number above 0; got -0.01"):
        viz.plot_raster_and_rates(spikes, rates, bin_size=-0.01)
    with pytest.raises(LFADSDataError, match="smooth_sigma must be a number of at least 0"):
        viz.plot_psths(rates, spikes, np.zeros(6), smooth_sigma=-1.0)
    with pytest.raises(LFADSDataError, match=r"events\['go'\] falls outside every trial \(bins 0 to 19\)"):
        viz.plot_trajectories(spikes, events={"go": 50})
    plt.close("all")
