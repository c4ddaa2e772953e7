"""The batched population trainer: the same numbers as one network at a time, and its stopping rule."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import lfads.population.train as train_module
from lfads.errors import LFADSDataError
from lfads.modules import native
from lfads.population.cells import ARCHITECTURES, GATES, cell_update, input_drive, state_size
from lfads.population.recurrence import run_recurrence
from lfads.population.tasks import TaskData, get_task
from lfads.population.train import (
    StackedRNN,
    TrainConfig,
    carried_loss,
    masked_mse,
    train_population,
    train_seed_loop,
)

TASK = get_task("flipflop", n_time=16)
SMALL = TrainConfig(max_steps=6, batch_size=8, lr=1e-2, check_every=3, eval_trials=16, target_loss=0.0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_batched_training_gives_each_seed_the_losses_it_gets_alone(arch):
    seeds = [3, 0, 5]
    batched = train_population(TASK, arch, seeds, units=12, config=SMALL)
    alone = train_seed_loop(TASK, arch, seeds, units=12, config=SMALL)
    np.testing.assert_allclose(batched.losses, np.concatenate([f.losses for f in alone], axis=1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(batched.final_loss, [f.final_loss[0] for f in alone], rtol=0, atol=1e-5)
    for n, fit in enumerate(alone):
        torch.testing.assert_close(batched.model.weight_hh[n], fit.model.weight_hh[0], atol=1e-5, rtol=0)
    assert batched.losses.shape == (6, 3) and batched.losses[0].std() > 0  # the seeds differ


@pytest.mark.parametrize("arch", ["vanilla", "lstm"])
def test_rate_penalty_keeps_each_seed_alone_and_lowers_its_activity(arch):
    seeds = [2, 7]
    penalised = TrainConfig(**{**SMALL.__dict__, "max_steps": 60, "check_every": 20, "rate_penalty": 1.0})
    batched = train_population(TASK, arch, seeds, units=12, config=penalised)
    alone = train_seed_loop(TASK, arch, seeds, units=12, config=penalised)
    np.testing.assert_allclose(batched.losses, np.concatenate([f.losses for f in alone], axis=1), rtol=0, atol=1e-5)
    free = train_population(TASK, arch, seeds, units=12, config=TrainConfig(**{**penalised.__dict__,
                                                                                "rate_penalty": 0.0}))
    trials = TASK.sample(16, torch.Generator().manual_seed(11))

    def mean_square_h(fit):
        with torch.no_grad():
            out, states = fit.model(trials.inputs)
        return states[..., :12].pow(2).mean(dim=(1, 2, 3)), masked_mse(out, trials.targets, trials.mask)

    pen_h, _ = mean_square_h(batched)
    free_h, _ = mean_square_h(free)
    assert (pen_h < 0.75 * free_h).all()
    # the recorded losses are the task's alone: the final loss is the task loss on the evaluation trials
    eval_trials = TASK.sample(16, torch.Generator().manual_seed(penalised.data_seed + train_module._EVAL_SEED_OFFSET))
    with torch.no_grad():
        out, _ = batched.model(eval_trials.inputs)
    np.testing.assert_allclose(batched.final_loss, masked_mse(out, eval_trials.targets, eval_trials.mask).numpy(),
                               rtol=1e-5)


def test_networks_that_reach_the_target_stop_and_keep_their_weights():
    seeds = list(range(6))
    probe = train_population(TASK, "gru", seeds, units=12, config=TrainConfig(**{**SMALL.__dict__, "max_steps": 3}))
    target = float(np.median(probe.eval_losses[0]))  # half the networks are below it after 3 steps
    config = TrainConfig(**{**SMALL.__dict__, "target_loss": target})
    fit = train_population(TASK, "gru", seeds, units=12, config=config)
    below = probe.eval_losses[0] < target
    np.testing.assert_array_equal(fit.reached[below], True)
    np.testing.assert_array_equal(fit.stop_step[below], 3)
    for n in np.nonzero(below)[0]:  # held at their weights after step 3
        torch.testing.assert_close(fit.model.weight_hh[n], probe.model.weight_hh[n], atol=0, rtol=0)
        assert np.isnan(fit.losses[3:, n]).all() and np.isfinite(fit.losses[:3, n]).all()
    for n in np.nonzero(~below)[0]:  # the others kept training
        assert not torch.equal(fit.model.weight_hh[n], probe.model.weight_hh[n])
        assert np.isfinite(fit.losses[:, n]).all()


def test_networks_that_never_reach_the_target_are_kept_and_marked():
    fit = train_population(TASK, "vanilla", [0, 1], units=8, config=SMALL)  # target 0: unreachable
    assert fit.reached.tolist() == [False, False] and fit.stop_step.tolist() == [6, 6]
    assert fit.model.n_networks == 2 and np.isfinite(fit.final_loss).all()
    assert fit.eval_steps.tolist() == [3, 6]


def test_a_reachable_target_ends_training_early():
    fit = train_population(TASK, "gru", [0, 1], units=8, config=TrainConfig(**{**SMALL.__dict__, "target_loss": 1e9}))
    assert fit.reached.all() and fit.losses.shape[0] == 3 and fit.stop_step.tolist() == [3, 3]


def test_stacked_networks_are_their_extracted_cells_and_readouts():
    model = StackedRNN.initialize("lstm", [0, 1], 5, 3, 2)
    x = torch.randn(4, 7, 3)
    out, states = model(x)
    assert out.shape == (2, 4, 7, 2) and states.shape == (2, 4, 7, 10)
    for n in range(2):
        cell, (w, b) = model.cell(n), model.readout(n)
        h = torch.zeros(4, 10)
        for t in range(7):
            h = cell(x[:, t], h)
            torch.testing.assert_close(states[n, :, t], h, atol=1e-6, rtol=0)
            torch.testing.assert_close(out[n, :, t], h[:, :5] @ w.T + b, atol=1e-6, rtol=0)


def test_initialisation_depends_only_on_the_seed():
    a = StackedRNN.initialize("ugrnn", [4, 9], 6, 3, 3)
    b = StackedRNN.initialize("ugrnn", [9], 6, 3, 3)
    torch.testing.assert_close(a.weight_hh[1], b.weight_hh[0], atol=0, rtol=0)
    torch.testing.assert_close(a.readout_weight[1], b.readout_weight[0], atol=0, rtol=0)


def test_train_config_identity_candidate_reaches_the_initialisation():
    config = TrainConfig(**{**SMALL.__dict__, "max_steps": 0, "identity_candidate": True})
    fit = train_population(TASK, "ugrnn", [3], units=6, config=config)
    near = StackedRNN.initialize("ugrnn", [3], 6, TASK.n_inputs, TASK.n_outputs, identity_candidate=True)
    plain = StackedRNN.initialize("ugrnn", [3], 6, TASK.n_inputs, TASK.n_outputs)
    torch.testing.assert_close(fit.model.weight_hh, near.weight_hh, atol=0, rtol=0)
    assert not torch.equal(near.weight_hh[0, 6:], plain.weight_hh[0, 6:])
    torch.testing.assert_close(near.weight_hh[0, :6], plain.weight_hh[0, :6], atol=0, rtol=0)


def test_masked_mse_counts_only_scored_entries():
    out = torch.zeros(2, 1, 3, 1)
    out[1] = 2.0
    target = torch.ones(1, 3, 1)
    mask = torch.tensor([[[1.0], [0.0], [1.0]]])
    torch.testing.assert_close(masked_mse(out, target, mask), torch.tensor([1.0, 1.0]))


def test_carried_loss_scores_the_chunks_after_the_first_and_carries_the_state():
    """A counter network: its output is the number of chunks it has run (the carried state); targets 0."""
    chunk = TaskData(torch.zeros(1, 2, 1), torch.zeros(1, 2, 1), torch.ones(1, 2, 1))

    def run(x, count):
        count = 1 if count is None else count + 1
        return torch.full((1, 1, 2, 1), float(count)), count

    # chunks 2 and 3 scored: outputs 2 and 3, squared errors 4 and 9 per entry, mean over 2 chunks
    torch.testing.assert_close(carried_loss(run, [chunk] * 3), torch.tensor([6.5]))
    torch.testing.assert_close(carried_loss(run, [chunk]), torch.tensor([1.0]))  # one chunk: scored


def test_carried_states_give_each_seed_the_losses_it_gets_alone():
    config = TrainConfig(**{**SMALL.__dict__, "carry_state": True})
    batched = train_population(TASK, "lstm", [1, 2], units=8, config=config)
    alone = train_seed_loop(TASK, "lstm", [1, 2], units=8, config=config)
    np.testing.assert_allclose(batched.losses, np.concatenate([f.losses for f in alone], axis=1), rtol=0, atol=1e-5)
    fresh = train_population(TASK, "lstm", [1, 2], units=8, config=SMALL)
    np.testing.assert_allclose(batched.losses[0], fresh.losses[0], atol=1e-6)  # the first batch starts at zero
    assert not np.allclose(batched.losses[1:], fresh.losses[1:])  # later ones continue the trials


def test_carrying_states_needs_a_task_whose_trials_continue():
    with pytest.raises(LFADSDataError, match="carry_state"):
        train_population(get_task("sine", n_time=8), "gru", [0], units=4,
                         config=TrainConfig(max_steps=2, batch_size=2, carry_state=True, eval_trials=2))


def _stepped_states(arch, inputs, h0, weight_ih, bias_ih, weight_hh, bias_hh):
    """Reference: :func:`cell_update` stepped through time under autograd, ``(N, T, B, S)``."""
    params = {"weight_ih": weight_ih, "bias_ih": bias_ih}
    h, states = h0, []
    for u_t in inputs.unbind(1):
        h = cell_update(arch, input_drive(params, u_t), h, weight_hh, bias_hh)
        states.append(h)
    return torch.stack(states, dim=1)


def _recurrence_inputs(arch, n=2, steps=4, batch=3, units=3, n_in=2, shared=False, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gh, size = GATES[arch] * units, state_size(arch, units)
    inputs = torch.randn(1 if shared else n, steps, batch, n_in, generator=gen, dtype=dtype)
    h0 = 0.5 * torch.randn(n, batch, size, generator=gen, dtype=dtype)
    weight_ih = torch.randn(n, gh, n_in, generator=gen, dtype=dtype)
    bias_ih = 0.3 * torch.randn(n, gh, generator=gen, dtype=dtype)
    weight_hh = torch.randn(n, gh, units, generator=gen, dtype=dtype) / units**0.5
    bias_hh = 0.3 * torch.randn(n, gh, generator=gen, dtype=dtype)
    return [x.requires_grad_() for x in (inputs, h0, weight_ih, bias_ih, weight_hh, bias_hh)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_cell_runs_the_compiled_loops_on_the_native_backend(arch, loop_backend, monkeypatch):
    calls = []
    if loop_backend == "compiled":
        lib = native.load()
        for name in ("population_forward", "population_backward"):
            original = getattr(lib, name)
            monkeypatch.setattr(lib, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    states = run_recurrence(arch, *_recurrence_inputs(arch, dtype=torch.float32))
    states.sum().backward()
    assert calls == (["population_forward", "population_backward"] if loop_backend == "compiled" else [])


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_recurrence_gradients_pass_gradcheck(arch, shared, loop_backend):
    inputs = _recurrence_inputs(arch, shared=shared)
    assert torch.autograd.gradcheck(lambda *x: run_recurrence(arch, *x), inputs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_recurrence_equals_the_stepped_cell_and_its_autograd_gradients(arch, shared, loop_backend):
    inputs = _recurrence_inputs(arch, n=3, steps=9, batch=5, units=6, shared=shared, seed=1)
    states = run_recurrence(arch, *inputs)
    reference = _stepped_states(arch, *inputs)
    torch.testing.assert_close(states, reference, atol=1e-12, rtol=0)
    weights = torch.randn(reference.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = torch.autograd.grad((states * weights).sum(), inputs)
    expected = torch.autograd.grad((reference * weights).sum(), inputs)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("arch", ["gru", "ugrnn", "lstm"])
def test_saturated_gates_and_a_large_cell_state_give_finite_states_and_gradients(arch, dtype, loop_backend):
    """Gate pre-activations of about ±1000 (and an LSTM cell state of -1000): exp(1000) overflows, the
    logistic must still saturate to 0 or 1, as in the stepped cell. 32 units: whole vectors of the compiled
    loops, not their scalar remainder."""
    inputs, h0, weight_ih, bias_ih, weight_hh, bias_hh = (
        x.detach() for x in _recurrence_inputs(arch, steps=3, batch=2, units=32, dtype=dtype)
    )
    bias_ih = (1000.0 * bias_ih.sign()).requires_grad_()
    if arch == "lstm":
        h0[..., 32:] = -1000.0
    weight_hh.requires_grad_()
    args = (inputs, h0, weight_ih, bias_ih, weight_hh, bias_hh)
    states = run_recurrence(arch, *args)
    reference = _stepped_states(arch, *args)
    torch.testing.assert_close(states, reference, atol=1e-6, rtol=1e-6)
    grads = torch.autograd.grad(states.sum(), (bias_ih, weight_hh))
    expected = torch.autograd.grad(reference.sum(), (bias_ih, weight_hh))
    for got, want in zip(grads, expected):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_recurrence_without_gradients_needs_no_initial_state(loop_backend):
    inputs, _, weight_ih, bias_ih, weight_hh, bias_hh = [x.detach() for x in _recurrence_inputs("gru")]
    with torch.no_grad():
        states = run_recurrence("gru", inputs, None, weight_ih, bias_ih, weight_hh, bias_hh)
    h0 = torch.zeros(2, 3, 3, dtype=inputs.dtype)
    torch.testing.assert_close(states, _stepped_states("gru", inputs, h0, weight_ih, bias_ih, weight_hh, bias_hh),
                               atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="gate blocks"):
        run_recurrence("lstm", inputs, None, weight_ih, bias_ih, weight_hh, bias_hh)
    with pytest.raises(ValueError, match=r"inputs are torch.float32 but the weights torch.float64"):
        run_recurrence("gru", inputs.float(), None, weight_ih, bias_ih, weight_hh, bias_hh)


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_a_run_in_chunks_of_steps_gives_the_states_and_gradients_of_one_run(arch, monkeypatch, loop_backend):
    model = StackedRNN.initialize(arch, [0, 1, 2], 6, 3, 2)
    x = torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(0))
    h0 = torch.randn(3, 4, model.state_size, generator=torch.Generator().manual_seed(1))
    runs = []
    for elements in (10**9, 4 * model.weight_hh.shape[1] * 3):  # one chunk; chunks of at most 3 steps
        monkeypatch.setattr(train_module, "CHUNK_ELEMENTS", elements)
        model.zero_grad()
        out, states = model(x, h0=h0)
        (out.square().sum() + states.sum()).backward()
        runs.append((out.detach(), states.detach(), [p.grad.clone() for p in model.parameters()]))
    assert StackedRNN._chunk_steps(model.weight_hh.shape[1], 4, 10) == 3  # 10 steps as 3, 3, 3, 1
    for got, want in zip(runs[1][:2], runs[0][:2]):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    for got, want in zip(runs[1][2], runs[0][2]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_progress_bar_reports_training_and_leaves_the_fit_unchanged(capsys, monkeypatch):
    monkeypatch.setattr(train_module, "tqdm", functools.partial(train_module.tqdm, mininterval=0))  # draw every update
    quiet = train_population(TASK, "gru", [0, 1], units=8, config=SMALL)
    shown = train_population(TASK, "gru", [0, 1], units=8, config=SMALL, progress=True)
    err = capsys.readouterr().err
    assert "training 2 gru" in err and "2 of 2 training" in err and "6/6" in err
    np.testing.assert_array_equal(quiet.losses, shown.losses)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_outputs_and_states_are_the_same_with_and_without_gradients(arch, loop_backend):
    """Without gradients the compiled loops keep no gate cache and the readout takes its other product order;
    the numbers must not change."""
    model = StackedRNN.initialize(arch, [0, 1, 2], 6, 3, 2)
    x = torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(0))
    h0 = torch.randn(3, 4, model.state_size, generator=torch.Generator().manual_seed(1))
    out, states = model(x, h0=h0)
    with torch.no_grad():
        out_ng, states_ng = model(x, h0=h0)
    torch.testing.assert_close(out_ng, out.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(states_ng, states.detach(), atol=0, rtol=0)
