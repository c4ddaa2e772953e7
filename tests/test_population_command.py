"""`lfads population`: a tiny population trained, analysed and written through the command line."""

from __future__ import annotations

import pytest

from lfads.cli import main
from lfads.population.population import load_population

TINY = ["--task", "flipflop", "--arch", "gru,vanilla", "--seeds", "2", "--units", "8", "--max-steps", "20",
        "--n-initial", "16"]


def test_population_file_holds_every_network_and_its_fixed_points(tmp_path, capsys):
    out = tmp_path / "pop.h5"
    assert main(["population", *TINY, "--out", str(out)]) == 0
    pop = load_population(out)
    assert pop.archs == ["gru", "vanilla"] and pop.units == 8
    for arch in pop.archs:
        assert len(pop.fits[arch].reached) == 2 and len(pop.fixed_points[arch]) == 2
    assert "median loss" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "says"), [
    (["--arch", "gru,transformer"], "--arch"),
    (["--seeds", "0"], "--seeds"),
    (["--task", "juggling"], "juggling"),
])
def test_bad_arguments_are_one_line_before_any_training(tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit) as exit_info:
        main(["population", *TINY, *extra, "--out", str(tmp_path / "pop.h5")])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("lfads population: error:") and says in line
    assert not (tmp_path / "pop.h5").exists()


def test_an_existing_file_is_kept_without_overwrite(tmp_path, capsys):
    out = tmp_path / "pop.h5"
    out.write_bytes(b"earlier results")
    with pytest.raises(SystemExit):
        main(["population", *TINY, "--out", str(out)])
    assert out.read_bytes() == b"earlier results"
    assert "--overwrite" in capsys.readouterr().err
