"""Task generators of lfads.population.tasks: inputs, targets and masks against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfads.errors import LFADSDataError
from lfads.population.single import FlipFlopRNN
from lfads.population.tasks import (
    generate_context_data,
    generate_flipflop_data,
    generate_sine_data,
    get_task,
    sine_frequencies,
    sine_input_levels,
)


def test_flipflop_targets_hold_the_sign_of_the_latest_pulse():
    data = generate_flipflop_data(5, 60, 3, pulse_prob=0.1, generator=torch.Generator().manual_seed(0))
    x, y = data.inputs.numpy(), data.targets.numpy()
    assert set(x.ravel().tolist()) <= {-1.0, 0.0, 1.0} and (x != 0).any()
    for trial in range(5):
        for bit in range(3):
            memory = 0.0
            for t in range(60):
                if x[trial, t, bit] != 0:
                    memory = x[trial, t, bit]
                assert y[trial, t, bit] == memory


def test_flipflop_memories_can_continue_from_a_previous_batch():
    start = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    data = generate_flipflop_data(2, 30, 2, pulse_prob=0.0, initial_targets=start)
    assert torch.equal(data.targets, start[:, None, :].expand(2, 30, 2))


def test_flipflop_network_returns_outputs_and_states_per_step():
    out, states = FlipFlopRNN(3, 8)(torch.zeros(4, 7, 3))
    assert out.shape == (4, 7, 3) and states.shape == (4, 7, 8)


def test_flipflop_pulse_rate_and_signs_match_the_settings():
    data = generate_flipflop_data(400, 100, 3, pulse_prob=0.05, generator=torch.Generator().manual_seed(3))
    x = data.inputs.numpy()
    rate = (x != 0).mean()
    assert abs(rate - 0.05) < 4 * np.sqrt(0.05 * 0.95 / x.size)
    assert abs((x > 0).sum() / (x != 0).sum() - 0.5) < 0.02
    assert torch.equal(data.mask, torch.ones_like(data.targets))


def test_flipflop_is_reproducible_from_its_seed():
    a = generate_flipflop_data(4, 20, 2, generator=torch.Generator().manual_seed(7))
    b = generate_flipflop_data(4, 20, 2, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_sine_targets_oscillate_at_exactly_the_frequency_the_input_selects():
    omegas, levels = sine_frequencies(51, 0.1, 0.6), sine_input_levels(51)
    np.testing.assert_allclose(np.diff(omegas), 0.01, atol=1e-12)
    j = torch.tensor([0, 10, 25, 50])
    data = generate_sine_data(4, 80, frequency_index=j)
    x, y = data.inputs.numpy()[..., 0], data.targets.numpy()[..., 0].astype(np.float64)
    # the input is static and names the frequency
    np.testing.assert_allclose(x, np.repeat(levels[j.numpy()][:, None], 80, axis=1), rtol=1e-7)
    # y_{t+1} + y_{t-1} = 2 cos(omega) y_t for a sinusoid of angular frequency omega
    two_cos = 2 * np.cos(omegas[j.numpy()])[:, None]
    np.testing.assert_allclose(y[:, 2:] + y[:, :-2], two_cos * y[:, 1:-1], atol=1e-6)
    assert np.all(y[:, 0] == 0) and np.allclose(y[:, 1], np.sin(omegas[j.numpy()]), atol=1e-7)


def test_sine_trials_draw_every_frequency_uniformly():
    data = generate_sine_data(5100, 3, n_frequencies=51, generator=torch.Generator().manual_seed(0))
    counts = np.unique(data.inputs[:, 0, 0].numpy(), return_counts=True)[1]
    assert counts.size == 51 and counts.min() > 60 and counts.max() < 145


def test_context_targets_are_the_sign_of_the_cued_streams_cumulative_evidence():
    data = generate_context_data(300, 40, max_coherence=0.3, noise_std=0.5, response_steps=7,
                                 generator=torch.Generator().manual_seed(1))
    x, y, m = (t.numpy() for t in data)
    cue = x[:, :, 2:]
    assert np.all(cue.sum(2) == 1) and np.all(cue == cue[:, :1])  # one-hot, static
    context = cue[:, 0].argmax(1)
    relevant = x[np.arange(300), :, context]
    np.testing.assert_array_equal(y[..., 0], np.sign(np.cumsum(relevant.astype(np.float64), axis=1)))
    # only the last 7 steps are scored
    assert np.all(m[:, -7:] == 1) and np.all(m[:, :-7] == 0)
    # evidence: per-trial means within +-0.3 and noise of standard deviation 0.5
    means = x[:, :, :2].mean(1)
    resid = x[:, :, :2] - means[:, None]
    assert np.abs(means).max() < 0.3 + 4 * 0.5 / np.sqrt(40)
    assert abs(resid.std() * np.sqrt(40 / 39) - 0.5) < 0.02
    assert 0.4 < context.mean() < 0.6


def test_context_integral_report_is_the_running_sum_in_units_of_its_final_noise():
    data = generate_context_data(200, 40, max_coherence=0.3, noise_std=0.5, response_steps=30,
                                 generator=torch.Generator().manual_seed(2), report="integral")
    x, y, m = (t.numpy() for t in data)
    context = x[:, 0, 2:].argmax(1)
    relevant = x[np.arange(200), :, context].astype(np.float64)
    np.testing.assert_allclose(y[..., 0], np.cumsum(relevant, axis=1) / (0.5 * np.sqrt(40)), rtol=1e-5, atol=1e-6)
    assert np.all(m[:, -30:] == 1) and np.all(m[:, :-30] == 0)


def test_context_integral_report_without_drift_is_a_random_walk_of_variance_t_over_T():
    # mu = 0: y_t = sigma * sum(eps) / (sigma sqrt(T)), so E y_t = 0 and Var y_t = (t + 1) / T
    data = generate_context_data(6000, 30, max_coherence=0.0, noise_std=2.0, response_steps=30,
                                 generator=torch.Generator().manual_seed(3), report="integral")
    y = data.targets[..., 0].numpy().astype(np.float64)
    var = (np.arange(30) + 1) / 30
    np.testing.assert_allclose(y.var(0), var, rtol=0.08)
    assert np.all(np.abs(y.mean(0)) < 4 * np.sqrt(var / 6000))


def test_context_integral_report_at_the_end_has_the_drift_variance_added():
    # Var S_T / (sigma^2 T) = 1 + T mu_max^2 / (3 sigma^2) with mu ~ U(-mu_max, mu_max)
    data = generate_context_data(8000, 40, max_coherence=0.2, noise_std=0.5, response_steps=1,
                                 generator=torch.Generator().manual_seed(4), report="integral")
    y_end = data.targets[:, -1, 0].numpy().astype(np.float64)
    assert abs(y_end.var() / (1 + 40 * 0.2**2 / (3 * 0.5**2)) - 1) < 0.05


@pytest.mark.parametrize(("lam", "low"), [(1.0, True), (0.99, False), (1.01, False), (1.03, False)])
def test_context_integral_report_is_met_only_by_an_integrator_without_leak_or_runaway(lam, low):
    # x_t = lam x_{t-1} + e_t read out as x_t / (sigma sqrt T): exact at lam = 1,
    # above the 0.02 target at |lam - 1| >= 0.01
    data = generate_context_data(1000, 100, response_steps=90, generator=torch.Generator().manual_seed(5),
                                 report="integral")
    x, y, m = (t.numpy().astype(np.float64) for t in data)
    relevant = x[np.arange(1000), :, x[:, 0, 2:].argmax(1)]
    state, out = np.zeros(1000), []
    for t in range(100):
        state = lam * state + relevant[:, t]
        out.append(state / np.sqrt(100))
    loss = ((np.stack(out, 1) - y[..., 0]) ** 2 * m[..., 0]).sum() / m.sum()
    assert (loss < 1e-10) if low else (loss > 0.05)


def test_context_rejects_an_unknown_report():
    with pytest.raises(LFADSDataError, match="report='choice'"):
        generate_context_data(2, 40, report="choice")


def test_context_rejects_a_response_window_longer_than_the_trial():
    with pytest.raises(LFADSDataError, match="response_steps=50"):
        generate_context_data(2, 40, response_steps=50)


@pytest.mark.parametrize(("name", "n_in", "n_out"), [("flipflop", 3, 3), ("sine", 1, 1), ("context", 4, 1)])
def test_tasks_sample_trials_of_their_declared_sizes(name, n_in, n_out):
    task = get_task(name)
    data = task.sample(5, torch.Generator().manual_seed(0))
    assert data.inputs.shape == (5, task.n_time, n_in) and data.targets.shape == (5, task.n_time, n_out)
    assert data.mask.shape == data.targets.shape and data.inputs.dtype == torch.float32
    assert all(u.shape == (n_in,) for u in task.conditions.values())


def test_unknown_task_names_the_choices():
    with pytest.raises(LFADSDataError, match="choose one of"):
        get_task("reach")


@pytest.mark.parametrize("name", ["flipflop", "sine", "context"])
def test_condition_trials_hold_the_input_of_their_condition(name):
    task = get_task(name)
    for label, u in task.conditions.items():
        data = task.condition_sample(label, 6, torch.Generator().manual_seed(0))
        if name == "sine":  # the static input is the condition's level
            np.testing.assert_allclose(data.inputs.numpy(), np.broadcast_to(u, data.inputs.shape), rtol=1e-6)
        elif name == "context":  # the cue is the condition's
            np.testing.assert_array_equal(data.inputs[:, :, 2:].numpy(), np.broadcast_to(u[2:], (6, task.n_time, 2)))
        else:
            assert data.inputs.shape == (6, 4 * task.n_time, 3)


@pytest.mark.parametrize(("name", "settings", "says"), [
    ("flipflop", {"bits": 3}, "flipflop task: unknown settings ['bits']; it takes ['n_bits'"),
    ("flipflop", {"n_bits": 0}, "flipflop task: n_bits must be a whole number of at least 1; got 0"),
    ("flipflop", {"pulse_prob": 1.5}, "pulse_prob must be a number above 0 and at most 1; got 1.5"),
    ("flipflop", {"n_time": 2.5}, "n_time must be a whole number"),
    ("sine", {"omega_min": 0.5, "omega_max": 0.2}, "sine task: omega_max must be a number of at least 0.5"),
    ("context", {"response_steps": 60}, "response_steps must be a whole number of at least 1 and at most 50"),
    ("context", {"report": "sum"}, "report='sum'"),
    ("context", {"noise_std": float("nan")}, "noise_std must be a number of at least 0; got nan"),
])
def test_task_settings_out_of_range_or_unknown_are_refused_naming_task_and_setting(name, settings, says):
    with pytest.raises(LFADSDataError) as info:
        get_task(name, **settings)
    assert says in str(info.value)
