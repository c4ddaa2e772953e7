"""The speed benchmark's reference, torch's own recurrent modules trained one network at a time, is the same
training as the batched trainer."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.plain_loop import train_plain_loop
from lfads.population.cells import ARCHITECTURES
from lfads.population.tasks import get_task
from lfads.population.train import TrainConfig, train_population

TASK = get_task("flipflop", n_time=16)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("carry_state", [False, True])
def test_torch_modules_one_at_a_time_give_the_batched_losses(arch, carry_state):
    config = TrainConfig(max_steps=6, batch_size=8, lr=1e-2, check_every=3, eval_trials=16, target_loss=0.0,
                         carry_state=carry_state, identity_candidate=True)
    seeds = [4, 1]
    batched = train_population(TASK, arch, seeds, units=12, config=config)
    plain = train_plain_loop(TASK, arch, seeds, units=12, config=config)
    np.testing.assert_allclose(np.stack([f.losses for f in plain], axis=1), batched.losses, rtol=0, atol=1e-5)
    np.testing.assert_allclose([f.final_loss for f in plain], batched.final_loss, rtol=0, atol=1e-5)
    assert batched.losses[0].std() > 0


def test_the_torch_loop_stops_where_the_batched_trainer_stops():
    config = TrainConfig(max_steps=400, batch_size=8, lr=1e-2, check_every=10, eval_trials=32, target_loss=0.05)
    batched = train_population(TASK, "gru", [0, 1], units=16, config=config)
    plain = train_plain_loop(TASK, "gru", [0, 1], units=16, config=config)
    assert batched.reached.all()
    assert [f.stop_step for f in plain] == list(batched.stop_step)
    assert all(f.reached for f in plain)
