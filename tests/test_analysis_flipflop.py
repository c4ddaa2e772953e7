"""The flip-flop task used to validate the fixed-point finder."""

from __future__ import annotations

import torch

from lfads.analysis.flipflop import FlipFlopRNN, generate_flipflop_data


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
