"""run_population end to end on a tiny population: training, fixed points, the HDF5 file, the summary."""

from __future__ import annotations

import copy
import shutil

import h5py
import numpy as np
import pytest
import torch

from lfads.analysis.fixed_points import LINEARIZATION_FIELDS
from lfads.errors import LFADSArgumentError, LFADSDataError, LFADSOutputError
from lfads.population.graphs import find_population_graphs, saddle_edges
from lfads.population.population import load_population, run_population, save_population


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("population") / "pop.h5"
    result = run_population(task="flipflop", archs=["gru", "lstm"], seeds=2, units=8, max_steps=20, batch_size=8,
                            n_initial_states=32, out=str(path), task_settings={"n_bits": 2, "n_time": 16})
    return result, path


def test_population_trains_each_architecture_and_finds_points_per_network(tiny):
    result, _ = tiny
    assert result.archs == ["gru", "lstm"]
    for arch in result.archs:
        fit = result.fits[arch]
        assert fit.model.n_networks == 2 and fit.losses.shape[1] == 2
        points = result.fixed_points[arch]
        assert len(points) == 2 and all(set(net) == {"zero"} for net in points)
        for n, net in enumerate(points):
            fps = net["zero"]
            assert len(fps) >= 1 and fps.hidden_size == (16 if arch == "lstm" else 8)
            # every reported fixed point is one of the trained network's own fixed points
            dyn = fit.model.cell(n).dynamics()
            h = torch.as_tensor(fps.states[fps.kind == "fixed"])
            np.testing.assert_allclose(dyn.step(h, torch.zeros(h.shape[0], 2, dtype=h.dtype)).numpy(), h.numpy(),
                                       atol=1e-4)


def test_population_file_round_trips(tiny):
    result, path = tiny
    back = load_population(path)
    assert back.task.name == "flipflop" and back.task.n_inputs == 2 and back.units == 8
    for arch in result.archs:
        a, b = result.fits[arch], back.fits[arch]
        np.testing.assert_array_equal(a.losses, b.losses)
        np.testing.assert_array_equal(a.reached, b.reached)
        assert b.config == a.config and b.target_loss == a.target_loss
        for name in ("weight_hh", "readout_weight"):
            torch.testing.assert_close(getattr(a.model, name), getattr(b.model, name), atol=0, rtol=0)
        for net_a, net_b in zip(result.fixed_points[arch], back.fixed_points[arch]):
            np.testing.assert_array_equal(net_a["zero"].states, net_b["zero"].states)
            np.testing.assert_array_equal(net_a["zero"].stability, net_b["zero"].stability)
    assert back.summary_rows() == result.summary_rows()


def test_population_file_stores_points_without_linearizations_and_reading_computes_them_again(tiny):
    result, path = tiny
    with h5py.File(path, "r") as f:
        node = f["lstm/fixed_points/0/zero"]
        assert "states" in node and not any(name in node for name in LINEARIZATION_FIELDS)
    back = load_population(path)
    for arch in result.archs:
        for net_a, net_b in zip(result.fixed_points[arch], back.fixed_points[arch]):
            a, b = net_a["zero"], net_b["zero"]
            for name in LINEARIZATION_FIELDS:
                np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=0, atol=1e-12, err_msg=name)


def test_population_file_with_stored_linearizations_is_read_as_it_is(tiny, tmp_path):
    result, path = tiny
    old = tmp_path / "with_linearizations.h5"
    shutil.copy(path, old)
    fps = result.fixed_points["gru"][1]["zero"]
    marked = fps.jac_state + 1.0  # not what the cell gives: proves the stored arrays are the ones read
    with h5py.File(old, "a") as f:
        node = f["gru/fixed_points/1/zero"]
        node["jac_state"] = marked
        for name in LINEARIZATION_FIELDS[1:]:
            node[name] = getattr(fps, name)
    back = load_population(old)
    np.testing.assert_array_equal(back.fixed_points["gru"][1]["zero"].jac_state, marked)


def test_summary_table_has_one_row_per_architecture(tiny):
    result, _ = tiny
    rows = result.summary_rows()
    assert [r["arch"] for r in rows] == ["gru", "lstm"]
    assert all(r["networks"] == 2 and 0 <= r["reached"] <= 2 for r in rows)
    text = result.summary()
    assert "gru" in text and "lstm" in text and "stable/net" in text
    # networks short of the target are counted per architecture, with the steps they had
    missed = {r["arch"]: r["networks"] - r["reached"] for r in rows}
    footer = text.splitlines()[-1]
    if any(missed.values()):
        assert footer.startswith("not reached") and "--max-steps" in footer
        for arch, n in missed.items():
            steps = result.fits[arch].config.max_steps
            assert (f"{n} {arch} in {steps} steps" in footer) == (n > 0)
    result = copy.deepcopy(result)  # the fixture is shared
    result.fits["gru"].reached[:] = True
    result.fits["lstm"].reached[:] = [True, False]
    assert result.summary().splitlines()[-1].endswith(
        f"1 lstm in {result.fits['lstm'].config.max_steps} steps; train them longer (--max-steps) or set another "
        "--target-loss.")
    result.fits["lstm"].reached[:] = True
    assert result.summary().splitlines()[-1].startswith("lstm")  # all reached: no footer


def test_loading_another_file_names_the_problem(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "something else"
    with pytest.raises(LFADSDataError, match="not a population file"):
        load_population(path)


def test_loading_an_incomplete_population_file_names_the_file_and_what_is_missing(tiny, tmp_path):
    path = tmp_path / "incomplete.h5"
    shutil.copy(tiny[1], path)
    with h5py.File(path, "a") as f:
        del f.attrs["task"]
    with pytest.raises(LFADSDataError, match=r"incomplete\.h5: not a complete population file .*'task'"):
        load_population(path)


def test_graphs_of_every_network_are_stored_and_read_back(tiny, tmp_path):
    result, path = tiny
    back = load_population(path)
    back.graphs = find_population_graphs(back)
    assert all(sorted(a["zero"].graph.edges) == sorted(b["zero"].graph.edges)
               for arch in back.archs for a, b in zip(back.graphs[arch], result.graphs[arch]))  # as run_population
    assert set(back.graphs) == {"gru", "lstm"} and all(len(nets) == 2 for nets in back.graphs.values())
    for arch in back.archs:
        for net, fps in zip(back.graphs[arch], back.fixed_points[arch]):
            assert net["zero"].graph.number_of_nodes() == len(fps["zero"])
    again = load_population(save_population(back, tmp_path / "with_graphs.h5"))
    for arch in back.archs:
        for a, b in zip(back.graphs[arch], again.graphs[arch]):
            assert sorted(a["zero"].graph.edges) == sorted(b["zero"].graph.edges)
            assert saddle_edges(a["zero"]) == saddle_edges(b["zero"])


def test_identity_candidate_list_initialises_only_the_named_architectures():
    from lfads.population.train import StackedRNN

    result = run_population(task="context", archs=["gru", "ugrnn"], seeds=1, units=6, max_steps=1, lr=0.0,
                            identity_candidate=["gru"], find_points=False, task_settings={"n_time": 12})
    for arch, used in (("gru", True), ("ugrnn", False)):
        fit = result.fits[arch]
        assert fit.config.identity_candidate is used
        # lr 0: the weights are the initial ones, drawn with (gru) or without (ugrnn) the identity candidate
        init = StackedRNN.initialize(arch, [0], 6, 4, 1, identity_candidate=used)
        torch.testing.assert_close(fit.model.weight_hh.detach(), init.weight_hh.detach())
        other = StackedRNN.initialize(arch, [0], 6, 4, 1, identity_candidate=not used)
        assert not torch.equal(fit.model.weight_hh.detach(), other.weight_hh.detach())


def test_settings_of_one_architecture_replace_the_shared_ones_for_it_alone():
    result = run_population(task="flipflop", archs=["gru", "vanilla"], seeds=1, units=4, max_steps=4, lr=1e-3,
                            rate_penalty=0.1, arch_settings={"vanilla": {"rate_penalty": 0.5, "max_steps": 2}},
                            find_points=False, task_settings={"n_bits": 1, "n_time": 8})
    gru, vanilla = result.fits["gru"].config, result.fits["vanilla"].config
    assert (gru.rate_penalty, gru.max_steps, gru.lr) == (0.1, 4, 1e-3)
    assert (vanilla.rate_penalty, vanilla.max_steps, vanilla.lr) == (0.5, 2, 1e-3)
    assert result.fits["vanilla"].losses.shape[0] == 2 and result.fits["gru"].losses.shape[0] == 4


def test_a_setting_of_one_architecture_that_training_lacks_is_refused_by_name():
    with pytest.raises(LFADSArgumentError, match=r"arch_settings\['gru'\]: learning_rate not a training setting"):
        run_population(task="flipflop", archs=["gru"], seeds=1, units=4, max_steps=2, find_points=False,
                       arch_settings={"gru": {"learning_rate": 0.1}})


@pytest.mark.parametrize(("settings", "says"), [
    ({"seeds": 0}, "run_population: seeds must be a whole number of at least 1; got 0"),
    ({"units": 0}, "run_population: units must be a whole number of at least 1; got 0"),
    ({"n_initial_states": 0}, "n_initial_states must be a whole number of at least 1"),
    ({"noise_std": -1.0}, "noise_std must be a number of at least 0"),
    ({"batch_size": 0}, "TrainConfig: batch_size must be a whole number of at least 1; got 0"),
    ({"lr": -1.0}, "TrainConfig: lr must be a number of at least 0; got -1.0"),
    ({"max_steps": -5}, "TrainConfig: max_steps must be a whole number of at least 0"),
])
def test_population_settings_out_of_range_are_refused_before_training(settings, says):
    with pytest.raises(LFADSDataError) as info:
        run_population(archs=["gru"], **{"seeds": 1, "units": 4, "max_steps": 1, **settings})
    assert says in str(info.value)


def test_a_population_file_that_is_a_folder_is_refused_before_training(tmp_path, monkeypatch):
    import lfads.population.population as population

    monkeypatch.setattr(population, "train_population", lambda *a, **k: pytest.fail("trained before checking out"))
    with pytest.raises(LFADSOutputError, match="is a directory"):
        run_population(archs=["gru"], seeds=1, units=4, max_steps=1, out=str(tmp_path))
