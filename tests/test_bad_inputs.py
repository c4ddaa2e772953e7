"""Bad inputs to every ``lfads`` command: one error line, exit status 2, nothing written, inputs unchanged.

Each case runs the real entry point (:func:`lfads.cli.main`, a few through ``python -m lfads``) on one bad
input: an HDF5 file in the LFADS or NLB layout, an NWB file, a YAML config or a command-line argument of
``fit``, ``sample``, ``analyze``, ``convert`` or ``tune``. Every case checks that the command

- exits with status 2 and prints exactly one line on stderr, ``lfads <command>: error: ...``, that names the
  file, key, option or field at fault (Lightning's informational lines such as "Seed set to 0" aside);
- prints no traceback;
- leaves its working folder as it found it (no run folder, no output, no temporary file);
- leaves every input file, and every file of the trained run (checkpoints, config, metrics), byte-identical.

The trained run is one tiny fit, made once for the module; the bad files are small and synthetic.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from lfads.cli import main

REPO = Path(__file__).resolve().parents[1]
LORENZ_CONFIG = REPO / "configs" / "lorenz.yaml"
PBT_CONFIG = REPO / "configs" / "pbt_lorenz.yaml"

INFO_LINES = re.compile(
    r"^(Seed set to \d+|GPU available|TPU available|HPU available|LOCAL_RANK|You are using a CUDA device"
    r"|💡 Tip|Trainer already configured)"
)
"""Lines Lightning may print on stderr before an error (informational, not errors)."""


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder``, plus every folder (as ``"dir"``)."""
    return {str(p.relative_to(folder)): (sha256(p) if p.is_file() else "dir") for p in sorted(folder.rglob("*"))}


def error_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not Lightning's informational lines (nor blank)."""
    return [line for line in stderr.splitlines() if line.strip() and not INFO_LINES.match(line)]


def run_main(argv: list[str], capfd) -> tuple[int, str]:
    """Run ``lfads argv`` in this process; return its exit status and stderr."""
    capfd.readouterr()
    code = 0
    try:
        main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    return code, capfd.readouterr().err


def write_h5(path: Path, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
        f.attrs.update(attrs or {})
    return path


def lorenz_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in f}, dict(f.attrs)


def fit_argv(data: str, *extra: str) -> list[str]:
    """``lfads fit`` of a tiny model on ``data``, logging under ``<tmp>/runs`` (``<tmp>`` filled in per case)."""
    logger = json.dumps([
        {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "<tmp>/runs", "name": "t"}},
        {"class_path": "pytorch_lightning.loggers.TensorBoardLogger",
         "init_args": {"save_dir": "<tmp>/runs", "name": "t"}},
    ])
    return [
        "fit", "--config", str(LORENZ_CONFIG), "--data.data_paths", data, "--data.batch_size", "8",
        "--model.gen_dim", "16", "--model.ic_dim", "8", "--model.fac_dim", "4", "--model.ic_enc_dim", "8",
        "--model.ci_enc_dim", "8", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.logger", logger, *extra,
    ]


def nlb_fit(name: str) -> list[str]:
    """``lfads fit`` on the small NLB file ``<bad>/name`` (2 validation trials: batches of 2)."""
    return fit_argv(f"<bad>/{name}", "--data.batch_size", "2")


# ---------------------------------------------------------------------------------------------------------------------
# The bad inputs, built once
# ---------------------------------------------------------------------------------------------------------------------


def _lfads_variants(bad: Path, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    """LFADS-layout files, each with one defect."""
    TRUTH = ("train_truth", "valid_truth", "test_truth")

    def variant(name: str, change=None, drop=(), rename=None, **new_attrs) -> None:
        copy = {k: v.copy() for k, v in arrays.items() if k not in drop}
        if change is not None:
            change(copy)
        for old, new in (rename or {}).items():
            copy[new] = copy.pop(old)
        write_h5(bad / name, copy, {**attrs, **new_attrs})

    def at(key, value, index=(0, 0, 0)):
        def change(d):
            d[key] = d[key].astype(np.float32)
            d[key][index] = value
        return change

    variant("huge.h5", at("train_encod_data", 1e30))
    variant("huge_recon.h5", at("valid_recon_data", 1e30, (1, 2, 13)))
    variant("negative.h5", at("train_encod_data", -1.0))
    variant("fractional.h5", at("train_recon_data", 0.5))
    variant("nan.h5", at("train_encod_data", np.nan))
    variant("inf.h5", at("valid_recon_data", np.inf))
    variant("no_valid_recon.h5", drop=("valid_recon_data",))
    variant("no_train_encod.h5", drop=("train_encod_data",))
    variant("flat.h5", lambda d: d.__setitem__("train_encod_data", d["train_encod_data"][:, :, 0]))
    variant("fewer_recon.h5", lambda d: (d.__setitem__("train_recon_data", d["train_recon_data"][:, :, :6]),
                                         d.__setitem__("valid_recon_data", d["valid_recon_data"][:, :, :6])),
            drop=TRUTH)
    variant("neurons_differ.h5", lambda d: d.__setitem__("valid_encod_data", d["valid_encod_data"][:, :, :5]))
    variant("empty_valid.h5", lambda d: (d.__setitem__("valid_encod_data", d["valid_encod_data"][:0]),
                                         d.__setitem__("valid_recon_data", d["valid_recon_data"][:0])))
    variant("short_recon.h5", lambda d: (d.__setitem__("train_recon_data", d["train_recon_data"][:, :20]),
                                         d.__setitem__("valid_recon_data", d["valid_recon_data"][:, :20])),
            drop=TRUTH)
    variant("tset.h5", lambda d: d.__setitem__("tset_encod_data", d["train_encod_data"]))
    variant("ext_inputs.h5", lambda d: d.__setitem__("train_ext_inputs", d["train_encod_data"][:, :, :2]))
    variant("text_data.h5", lambda d: d.__setitem__("train_encod_data", np.array([b"spikes"] * 4)))
    variant("bad_bin.h5", bin_size=-0.01)
    variant("other_neurons.h5", lambda d: d.update({k: d[k][:, :, :10] for k in list(d) if k.endswith("_data")}),
            drop=TRUTH)
    with zipfile.ZipFile(bad / "foreign.ckpt", "w") as archive:  # a zip archive, but not one torch.save wrote
        archive.writestr("notes.txt", "not a checkpoint")
    shutil.copy(bad.parent / "lorenz.h5", bad / "..h5")
    (bad / "truncated.h5").write_bytes((bad.parent / "lorenz.h5").read_bytes()[:3000])
    (bad / "text.h5").write_text("train_encod_data, train_recon_data\n1, 2\n")
    (bad / "empty.h5").write_bytes(b"")
    (bad / "folder.h5").mkdir()


def _nlb_variants(bad: Path) -> None:
    """NLB-layout files (``train_spikes_heldin`` ...), each with one defect."""
    rng = np.random.default_rng(0)

    def arrays(**override):
        good = {
            "train_spikes_heldin": rng.poisson(1.0, (10, 6, 3)).astype(np.float32),
            "train_spikes_heldout": rng.poisson(1.0, (10, 6, 2)).astype(np.float32),
            "train_spikes_heldin_forward": rng.poisson(1.0, (10, 2, 3)).astype(np.float32),
            "train_spikes_heldout_forward": rng.poisson(1.0, (10, 2, 2)).astype(np.float32),
            "eval_spikes_heldin": rng.poisson(1.0, (4, 6, 3)).astype(np.float32),
        }
        for key, value in override.items():
            if value is None:
                del good[key]
            else:
                good[key] = value
        return good

    huge = arrays()
    huge["train_spikes_heldin"][3, 2, 1] = 1e30
    negative = arrays()
    negative["train_spikes_heldout"][0, 0, 0] = -2
    write_h5(bad / "nlb_huge.h5", huge)
    write_h5(bad / "nlb_negative.h5", negative)
    write_h5(bad / "nlb_heldout_trials.h5", arrays(train_spikes_heldout=np.zeros((7, 6, 2), np.float32)))
    write_h5(bad / "nlb_forward_half.h5", arrays(train_spikes_heldin_forward=None))
    write_h5(bad / "nlb_bin_text.h5", arrays(), {"bin_width": "five"})
    write_h5(bad / "nlb_bin_negative.h5", arrays(), {"bin_width": -5})
    write_h5(bad / "nlb_eval_neurons.h5", arrays(eval_spikes_heldin=np.zeros((4, 6, 5), np.float32)))
    good = bad / "nlb_good.h5"
    write_h5(good, arrays())
    (bad / "nlb_truncated.h5").write_bytes(good.read_bytes()[:2500])


def _nwb_variants(bad: Path) -> None:
    """NWB files: a good one and some with one defect."""
    sys.path.insert(0, str(Path(__file__).parent))
    from nwb_helpers import write_nwb

    trials = {"start_time": [0.0, 1.0, 2.0, 3.0], "stop_time": [0.8, 1.8, 2.8, 3.8],
              "move_onset_time": [0.3, 1.3, 2.3, 3.3], "split": ["train", "val", "train", "train"]}
    spikes = [[0.1, 0.4, 1.4, 2.5, 3.1], [0.2, 1.2, 2.2, 2.7, 3.5]]
    write_nwb(bad / "good.nwb", spikes, trials)
    write_nwb(bad / "notrials.nwb", spikes, None)
    write_nwb(bad / "nounits.nwb", None, trials)
    write_nwb(bad / "unsorted.nwb", [[0.5, 0.1, 1.4], [0.2, 1.2]], trials)
    (bad / "notes.nwb").write_text("not an NWB file")
    write_h5(bad / "plain.nwb", {"train_encod_data": np.zeros((2, 3, 4))})
    (bad / "twin").mkdir()
    shutil.copy(bad / "good.nwb", bad / "twin" / "good.nwb")
    (bad / "nwb_truncated.nwb").write_bytes((bad / "good.nwb").read_bytes()[:5000])
    shutil.copy(bad / "good.nwb", bad / "nwb_named.h5")  # an NWB file whose converted name is its own
    (bad / "nwb_config.yaml").write_text("data:\n  nwb:\n    bin_size: 20\n")
    (bad / "no_section.yaml").write_text("model:\n  gen_dim: 3\n")
    (bad / "broken.yaml").write_text("data: [unclosed\n")


def _configs(bad: Path) -> None:
    (bad / "list.yaml").write_text("- 1\n- 2\n")
    (bad / "unknown_key.yaml").write_text("model:\n  gen_dimm: 3\n")
    (bad / "tune_bad.yaml").write_text("tune:\n  num_samples: 1\n")
    (bad / "tune_unknown.yaml").write_text("tune:\n  populaton: 4\n")
    (bad / "notes.txt").write_text("some notes\n")
    (bad / "notes.ckpt").write_text("not a checkpoint\n")


@dataclass(frozen=True)
class World:
    """The module's files: ``root`` holds the clean data, the trained run and the bad inputs."""

    root: Path
    data: Path
    run: Path
    version: Path
    ckpt: Path
    bad: Path

    def fill(self, text: str, tmp: Path) -> str:
        for token, value in (("<tmp>", tmp), ("<data>", self.data), ("<run>", self.run),
                             ("<version>", self.version), ("<ckpt>", self.ckpt), ("<bad>", self.bad)):
            text = text.replace(token, str(value))
        return text


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """One tiny fit (one epoch) and the bad files, made once for the module."""
    from datasets.lorenz import write_lorenz

    root = tmp_path_factory.mktemp("bad_inputs")
    data = write_lorenz(root / "lorenz.h5", n_conditions=8, trials_per_condition=5, n_time=50, n_heldin=12,
                        n_heldout=4, seed=1) or root / "lorenz.h5"
    argv = [a.replace("<tmp>", str(root)) for a in fit_argv(str(root / "lorenz.h5"))]
    main(argv)
    version = root / "runs" / "t" / "version_0"
    ckpt = version / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    bad = root / "bad"
    bad.mkdir()
    _lfads_variants(bad, *lorenz_arrays(root / "lorenz.h5"))
    _nlb_variants(bad)
    _nwb_variants(bad)
    _configs(bad)
    return World(root=root, data=Path(data), run=version.parent, version=version, ckpt=ckpt, bad=bad)


# ---------------------------------------------------------------------------------------------------------------------
# The cases: (id, command line, what the error line must name)
# ---------------------------------------------------------------------------------------------------------------------

S = ["sample", "--run", "<run>", "--samples", "2", "--no-progress"]
SO = [*S, "--out", "<tmp>/s.h5"]
A = ["analyze", "--run", "<run>", "--no-progress", "--no-jslds", "--n-initial", "8", "--max-trials", "4"]
AO = [*A, "--out", "<tmp>/a.h5"]
C = ["convert", "--nwb", "<bad>/good.nwb", "--heldout-column", "none"]
T = ["tune", "--config", str(PBT_CONFIG), "--data.data_paths", "<data>", "--data.batch_size", "8"]

CASES: list[tuple[str, list[str], list[str]]] = [
    # ---- HDF5, LFADS layout (lfads fit) ----
    ("h5-truncated", fit_argv("<bad>/truncated.h5"), ["truncated.h5", "truncated"]),
    ("h5-text-file", fit_argv("<bad>/text.h5"), ["text.h5", "not an HDF5 file"]),
    ("h5-empty-file", fit_argv("<bad>/empty.h5"), ["empty.h5"]),
    ("h5-missing-file", fit_argv("<tmp>/nothere.h5"), ["nothere.h5", "not found"]),
    ("h5-folder", fit_argv("<bad>/folder.h5"), ["folder.h5", "folder"]),
    ("h5-glob-matches-nothing", fit_argv("<tmp>/*.hdf5"), ["*.hdf5", "matches no file"]),
    ("h5-listed-twice", fit_argv('["<data>", "<data>"]'), ["lorenz.h5", "twice"]),
    ("h5-counts-1e30", fit_argv("<bad>/huge.h5"), ["huge.h5", "train_encod_data"]),
    ("h5-recon-counts-1e30", fit_argv("<bad>/huge_recon.h5"), ["huge_recon.h5", "valid_recon_data"]),
    ("h5-negative-counts", fit_argv("<bad>/negative.h5"), ["negative.h5", "train_encod_data", "negative"]),
    ("h5-fractional-counts", fit_argv("<bad>/fractional.h5"), ["fractional.h5", "train_recon_data"]),
    ("h5-nan", fit_argv("<bad>/nan.h5"), ["nan.h5", "train_encod_data"]),
    ("h5-inf", fit_argv("<bad>/inf.h5"), ["inf.h5", "valid_recon_data"]),
    ("h5-missing-valid-recon", fit_argv("<bad>/no_valid_recon.h5"), ["no_valid_recon.h5", "valid_recon_data"]),
    ("h5-missing-train-encod", fit_argv("<bad>/no_train_encod.h5"), ["no_train_encod.h5", "train_encod_data"]),
    ("h5-rank-2", fit_argv("<bad>/flat.h5"), ["flat.h5", "train_encod_data"]),
    ("h5-recon-fewer-neurons", fit_argv("<bad>/fewer_recon.h5"), ["fewer_recon.h5", "train_recon_data", "6 neurons"]),
    ("h5-splits-disagree", fit_argv("<bad>/neurons_differ.h5"), ["neurons_differ.h5", "valid_encod_data"]),
    ("h5-empty-split", fit_argv("<bad>/empty_valid.h5"), ["empty_valid.h5", "valid_encod_data"]),
    ("h5-recon-shorter", fit_argv("<bad>/short_recon.h5"), ["short_recon.h5", "recon_data"]),
    ("h5-key-tset", fit_argv("<bad>/tset.h5"), ["tset.h5", "tset_encod_data"]),
    ("h5-key-ext-inputs", fit_argv("<bad>/ext_inputs.h5"), ["ext_inputs.h5", "train_ext_inputs"]),
    ("h5-text-dataset", fit_argv("<bad>/text_data.h5"), ["text_data.h5", "train_encod_data"]),
    ("h5-bin-size-negative", fit_argv("<bad>/bad_bin.h5"), ["bad_bin.h5", "bin_size"]),
    ("h5-dot-file-name", fit_argv("<bad>/..h5"), ["..h5", "session name"]),
    # ---- HDF5, NLB layout ----
    ("nlb-counts-1e30", nlb_fit("nlb_huge.h5"), ["nlb_huge.h5", "train_spikes_heldin"]),
    ("nlb-negative-counts", nlb_fit("nlb_negative.h5"), ["nlb_negative.h5", "train_spikes_heldout"]),
    ("nlb-heldout-trials", nlb_fit("nlb_heldout_trials.h5"), ["nlb_heldout_trials.h5", "train_spikes_heldout"]),
    ("nlb-forward-half", nlb_fit("nlb_forward_half.h5"), ["nlb_forward_half.h5", "forward"]),
    ("nlb-bin-width-text", nlb_fit("nlb_bin_text.h5"), ["nlb_bin_text.h5", "bin_width"]),
    ("nlb-bin-width-negative", nlb_fit("nlb_bin_negative.h5"), ["nlb_bin_negative.h5", "bin_width"]),
    ("nlb-eval-neurons", nlb_fit("nlb_eval_neurons.h5"), ["nlb_eval_neurons.h5", "eval_spikes_heldin"]),
    ("nlb-truncated", nlb_fit("nlb_truncated.h5"), ["nlb_truncated.h5"]),
    # ---- NWB through lfads fit ----
    ("nwb-fit-no-trials", fit_argv("<bad>/notrials.nwb"), ["notrials.nwb", "trials"]),
    ("nwb-fit-no-units", fit_argv("<bad>/nounits.nwb"), ["nounits.nwb", "Units"]),
    ("nwb-fit-text", fit_argv("<bad>/notes.nwb"), ["notes.nwb", "not an HDF5 file"]),
    ("nwb-fit-missing", fit_argv("<tmp>/absent.nwb"), ["absent.nwb", "not found"]),
    # ---- YAML configs and hyperparameters (lfads fit) ----
    ("fit-gen-dim-negative", fit_argv("<data>", "--model.gen_dim", "-5"), ["model.gen_dim"]),
    ("fit-lr-init-negative", fit_argv("<data>", "--model.lr_init", "-1"), ["model.lr_init"]),
    ("fit-fac-dim-zero", fit_argv("<data>", "--model.fac_dim", "0"), ["model.fac_dim"]),
    ("fit-co-dim-without-controller", fit_argv("<data>", "--model.co_dim", "2", "--model.con_dim", "0"),
     ["model.con_dim", "co_dim"]),
    ("fit-co-dim-without-ci-encoder", fit_argv("<data>", "--model.co_dim", "2", "--model.con_dim", "4",
                                               "--model.ci_enc_dim", "0"), ["model.ci_enc_dim"]),
    ("fit-dropout-1.5", fit_argv("<data>", "--model.dropout_rate", "1.5"), ["model.dropout_rate"]),
    ("fit-cd-rate-1", fit_argv("<data>", "--model.cd_rate", "1.0"), ["model.cd_rate"]),
    ("fit-kl-scale-negative", fit_argv("<data>", "--model.kl_ic_scale", "-1"), ["model.kl_ic_scale"]),
    ("fit-lr-decay-above-1", fit_argv("<data>", "--model.lr_decay", "1.5"), ["model.lr_decay"]),
    ("fit-reconstruction-unknown", fit_argv("<data>", "--model.reconstruction", "gamma_ray"),
     ["model.reconstruction"]),
    ("fit-unknown-key", fit_argv("<data>", "--model.gen_dimm", "3"), ["gen_dimm"]),
    ("fit-wrong-type", fit_argv("<data>", "--model.gen_dim", "many"), ["model.gen_dim"]),
    ("fit-batch-size-zero", fit_argv("<data>", "--data.batch_size", "0"), ["batch_size"]),
    ("fit-sv-rate-1.5", fit_argv("<data>", "--data.sv_rate", "1.5"), ["sv_rate"]),
    ("yaml-missing", fit_argv("<data>", "--config", "<tmp>/no_such.yaml"), ["no_such.yaml"]),
    ("yaml-broken", fit_argv("<data>", "--config", "<bad>/broken.yaml"), ["broken.yaml"]),
    ("yaml-a-list", fit_argv("<data>", "--config", "<bad>/list.yaml"), ["list.yaml"]),
    ("yaml-unknown-key", fit_argv("<data>", "--config", "<bad>/unknown_key.yaml"), ["gen_dimm"]),
    # ---- lfads sample ----
    ("sample-samples-0", [*SO, "--samples", "0"], ["--samples"]),
    ("sample-samples-negative", [*SO, "--samples", "-3"], ["--samples"]),
    ("sample-splits-typo", [*SO, "--splits", "tset"], ["--splits tset", "train, valid"]),
    ("sample-out-folder", [*S, "--out", "<tmp>"], ["<tmp>", "directory"]),
    ("sample-out-missing-folder", [*S, "--out", "<tmp>/no/such/s.h5"], ["<tmp>/no/such", "does not exist"]),
    ("sample-out-under-a-file", [*S, "--out", "<bad>/notes.txt/s.h5"], ["notes.txt", "not a folder"]),
    ("sample-out-data-file", [*S, "--out", "<data>", "--overwrite"], ["lorenz.h5", "input"]),
    ("sample-out-own-checkpoint", ["sample", "--ckpt", "<ckpt>", "--out", "<ckpt>", "--overwrite"],
     ["last.ckpt", "checkpoint"]),
    ("sample-out-run-metrics", [*S, "--out", "<version>/metrics.csv", "--overwrite"], ["metrics.csv", "run"]),
    ("sample-out-run-config", [*S, "--out", "<version>/config.yaml", "--overwrite"], ["config.yaml", "run"]),
    ("sample-out-exists", [*S, "--out", "<bad>/nlb_good.h5"], ["nlb_good.h5", "--overwrite"]),
    ("sample-ckpt-missing", ["sample", "--ckpt", "<tmp>/missing.ckpt", "--out", "<tmp>/s.h5"], ["missing.ckpt"]),
    ("sample-ckpt-text", ["sample", "--ckpt", "<bad>/notes.ckpt", "--out", "<tmp>/s.h5"],
     ["notes.ckpt", "not a checkpoint"]),
    ("sample-ckpt-folder", ["sample", "--ckpt", "<bad>", "--out", "<tmp>/s.h5"], ["directory"]),
    ("sample-run-missing", ["sample", "--run", "<tmp>/no_run", "--out", "<tmp>/s.h5"], ["no_run"]),
    ("sample-data-truncated", [*SO, "--data", "<bad>/truncated.h5"], ["truncated.h5"]),
    ("sample-data-missing", [*SO, "--data", "<tmp>/gone.h5"], ["gone.h5"]),
    ("sample-data-too-few-trials", [*SO, "--data", "<bad>/nlb_good.h5"], ["nlb_good.h5", "batch_size"]),
    ("sample-ensemble-no-out", ["sample", "--run", "<run>", "--run", "<run>"], ["--out"]),
    ("sample-ensemble-out-data", ["sample", "--run", "<run>", "--run", "<run>", "--out", "<data>", "--overwrite"],
     ["lorenz.h5", "input"]),
    ("sample-nwb-out-not-nwb", [*SO, "--nwb-out", "<tmp>/x.txt"], ["x.txt", ".nwb"]),
    ("sample-unknown-option", [*SO, "--bogus"], ["--bogus"]),
    ("sample-ckpt-foreign-zip", ["sample", "--ckpt", "<bad>/foreign.ckpt", "--out", "<tmp>/s.h5"],
     ["foreign.ckpt", "not a readable checkpoint"]),
    ("sample-data-other-neurons", [*SO, "--data", "<bad>/other_neurons.h5"], ["other_neurons.h5", "do not match"]),
    ("sample-run-is-a-file", ["sample", "--run", "<data>", "--out", "<tmp>/s.h5"], ["lorenz.h5", "is a file"]),
    ("sample-run-without-checkpoints", ["sample", "--run", "<bad>", "--out", "<tmp>/s.h5"],
     ["No checkpoints", "at least one epoch"]),
    ("sample-out-given-twice", [*SO, "--out", "<tmp>/t.h5"], ["--out", "s.h5", "t.h5", "more than once"]),
    ("sample-data-given-twice", [*SO, "--data", "<data>", "--data", "<bad>/..h5"], ["--data", "more than once"]),
    # ---- lfads analyze ----
    ("analyze-n-initial-0", [*AO, "--n-initial", "0"], ["--n-initial"]),
    ("analyze-session-given-twice-first-at-its-default", [*AO, "--session", "0", "--session", "1"],
     ["--session", "(0, then 1)", "more than once"]),
    ("analyze-n-initial-huge", [*AO, "--n-initial", "99999999999999999999"], ["--n-initial", "at most"]),
    ("analyze-max-trials-0", [*AO, "--max-trials", "0"], ["--max-trials"]),
    ("analyze-session-5", [*AO, "--session", "5"], ["--session 5"]),
    ("analyze-split-typo", [*AO, "--split", "tset"], ["--split tset", "train, valid"]),
    ("analyze-noise-negative", [*AO, "--noise", "-1"], ["--noise"]),
    ("analyze-expansion-steps-0", ["analyze", "--run", "<run>", "--out", "<tmp>/a.h5", "--expansion-steps", "0"],
     ["--expansion-steps"]),
    ("analyze-out-data-file", [*A, "--out", "<data>", "--overwrite"], ["lorenz.h5", "input"]),
    ("analyze-out-own-checkpoint", [*A, "--out", "<ckpt>", "--overwrite"], ["last.ckpt", "checkpoint"]),
    ("analyze-out-folder", [*A, "--out", "<tmp>"], ["<tmp>", "directory"]),
    ("analyze-out-missing-folder", [*A, "--out", "<tmp>/no/a.h5"], ["<tmp>/no", "does not exist"]),
    ("analyze-out-under-a-file", [*A, "--out", "<bad>/notes.txt/a.h5"], ["notes.txt", "not a folder"]),
    ("analyze-ckpt-text", ["analyze", "--ckpt", "<bad>/notes.ckpt", "--out", "<tmp>/a.h5"], ["notes.ckpt"]),
    ("analyze-ckpt-missing", ["analyze", "--ckpt", "<tmp>/x.ckpt", "--out", "<tmp>/a.h5"], ["x.ckpt"]),
    ("analyze-data-truncated", [*AO, "--data", "<bad>/truncated.h5"], ["truncated.h5"]),
    ("analyze-data-other-neurons", [*AO, "--data", "<bad>/other_neurons.h5"], ["other_neurons.h5", "do not match"]),
    ("analyze-ckpt-given-twice", ["analyze", "--ckpt", "<bad>/notes.ckpt", "--ckpt", "<ckpt>", "--out", "<tmp>/a.h5"],
     ["--ckpt", "notes.ckpt", "more than once"]),
    # ---- lfads convert (NWB) ----
    ("convert-nwb-missing", ["convert", "--nwb", "<tmp>/gone.nwb", "--out-dir", "<tmp>/h5"], ["gone.nwb"]),
    ("convert-nwb-text", ["convert", "--nwb", "<bad>/notes.nwb", "--out-dir", "<tmp>/h5"], ["notes.nwb"]),
    ("convert-nwb-plain-hdf5", ["convert", "--nwb", "<bad>/plain.nwb", "--out-dir", "<tmp>/h5"],
     ["plain.nwb", "not an NWB file"]),
    ("convert-nwb-no-trials", ["convert", "--nwb", "<bad>/notrials.nwb", "--out-dir", "<tmp>/h5"], ["notrials.nwb"]),
    ("convert-nwb-no-units", ["convert", "--nwb", "<bad>/nounits.nwb", "--out-dir", "<tmp>/h5"], ["nounits.nwb"]),
    ("convert-nwb-unsorted-spikes", ["convert", "--nwb", "<bad>/unsorted.nwb", "--out-dir", "<tmp>/h5",
                                     "--heldout-column", "none"], ["unsorted.nwb"]),
    ("convert-same-stem-twice", ["convert", "--nwb", "<bad>/good.nwb", "<bad>/twin/good.nwb", "--out-dir", "<tmp>/h5"],
     ["good.nwb", "both be written"]),
    ("convert-out-dir-is-a-file", [*C, "--out-dir", "<bad>/notes.txt"], ["notes.txt", "--out-dir"]),
    ("convert-out-dir-under-a-file", [*C, "--out-dir", "<bad>/notes.txt/h5"], ["notes.txt", "not a folder"]),
    ("convert-out-is-the-input", ["convert", "--nwb", "<bad>/nwb_named.h5", "--out-dir", "<bad>", "--overwrite"],
     ["nwb_named.h5", "input"]),
    ("convert-align-event-unknown", [*C, "--out-dir", "<tmp>/h5", "--align-event", "no_such_event"],
     ["no_such_event"]),
    ("convert-bin-ms-negative", [*C, "--out-dir", "<tmp>/h5", "--bin-ms", "-5"], ["bin_ms"]),
    ("convert-config-missing", [*C, "--out-dir", "<tmp>/h5", "--config", "<tmp>/none.yaml"], ["none.yaml"]),
    ("convert-config-no-section", [*C, "--out-dir", "<tmp>/h5", "--config", "<bad>/no_section.yaml"],
     ["no_section.yaml", "data.nwb"]),
    ("convert-config-unknown-option", [*C, "--out-dir", "<tmp>/h5", "--config", "<bad>/nwb_config.yaml"],
     ["nwb_config.yaml", "bin_size"]),
    ("convert-config-broken", [*C, "--out-dir", "<tmp>/h5", "--config", "<bad>/broken.yaml"], ["broken.yaml"]),
    ("convert-no-out-dir", ["convert", "--nwb", "<bad>/good.nwb"], ["--out-dir"]),
    ("convert-nwb-truncated", ["convert", "--nwb", "<bad>/nwb_truncated.nwb", "--out-dir", "<tmp>/h5"],
     ["nwb_truncated.nwb", "truncated"]),
    ("convert-nwb-given-twice", [*C, "--nwb", "<bad>/twin/good.nwb", "--out-dir", "<tmp>/h5"],
     ["--nwb", "more than once"]),
    ("convert-out-dir-given-twice", [*C, "--out-dir", "<tmp>/h5", "--out-dir", "<tmp>/h6"],
     ["--out-dir", "more than once"]),
    # ---- lfads nlb ----
    ("nlb-ckpt-foreign-zip", ["nlb", "submit", "--ckpt", "<bad>/foreign.ckpt", "--dataset", "mc_maze_small", "--out",
                              "<tmp>/sub.h5"], ["foreign.ckpt", "not a readable checkpoint"]),
    ("nlb-out-given-twice", ["nlb", "target", "--tensors", "<bad>/nlb_good.h5", "--dataset", "mc_maze_small",
                             "--out", "<tmp>/t1.h5", "--out", "<tmp>/t2.h5"], ["--out", "more than once"]),
    # ---- lfads tune ----
    ("tune-no-config", ["tune", "--data.data_paths", "<data>"], ["--config"]),
    ("tune-config-missing", ["tune", "--config", "<tmp>/none.yaml"], ["none.yaml"]),
    ("tune-unknown-setting", [*T, "--tune.populaton", "4"], ["populaton"]),
    ("tune-setting-in-config", ["tune", "--config", "<bad>/tune_unknown.yaml"], ["tune_unknown.yaml", "populaton"]),
    ("tune-population-of-1", [*T, "--tune.num_samples", "1"], ["num_samples"]),
    ("tune-address-malformed", [*T, "--tune.address", "nowhere"], ["tune.address"]),
    ("tune-address-unreachable", [*T, "--tune.address", "127.0.0.1:9"], ["127.0.0.1:9"]),
    ("tune-save-dir-under-a-file", [*T, "--tune.save_dir", "<bad>/notes.txt/runs"], ["notes.txt"]),
    ("tune-bad-hyperparameter", [*T, "--tune.num_samples", "2", "--model.fac_dim", "0"], ["model.fac_dim"]),
]

COMMANDS = {"fit", "sample", "analyze", "convert", "tune", "nlb"}


def test_there_are_at_least_80_distinct_bad_inputs():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) >= 80
    assert {case[1][0] for case in CASES} == COMMANDS


@pytest.mark.parametrize(("argv", "names"), [pytest.param(argv, names, id=cid) for cid, argv, names in CASES])
def test_bad_input_is_one_error_line_and_changes_nothing(argv, names, world, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)  # a default "runs" folder would appear here
    monkeypatch.setattr(sys, "argv", ["lfads"])
    argv = [world.fill(a, tmp_path) for a in argv]
    before_inputs, before_here = snapshot(world.root), snapshot(tmp_path)

    code, stderr = run_main(argv, capfd)

    assert "Traceback" not in stderr
    lines = error_lines(stderr)
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"lfads {argv[0]}: error: "), lines[0]
    for name in names:
        assert world.fill(name, tmp_path) in lines[0], lines[0]
    assert snapshot(world.root) == before_inputs  # inputs, checkpoints and run records unchanged
    after_here = snapshot(tmp_path)
    if argv[0] == "convert" and "--out-dir" in argv:  # the folder it names is created if missing, and left empty
        after_here = {k: v for k, v in after_here.items() if tmp_path / k != Path(argv[argv.index("--out-dir") + 1])}
    assert after_here == before_here  # no run folder, no output, no temporary file


# ---------------------------------------------------------------------------------------------------------------------
# Through the installed entry point (a fresh process), and two writers racing for one new file
# ---------------------------------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("LFADS_DEBUG", None)
    return env


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        pytest.param(["sample", "--ckpt", "<ckpt>", "--out", "<ckpt>", "--overwrite"], ["last.ckpt"], id="sample-ckpt"),
        pytest.param([*A, "--out", "<data>", "--overwrite"], ["lorenz.h5"], id="analyze-data", marks=pytest.mark.slow),
        pytest.param(["sample", "--ckpt", "<bad>/notes.ckpt", "--samples", "0"], ["--samples"], id="sample-samples",
                     marks=pytest.mark.slow),
        pytest.param([*C, "--out-dir", "<bad>/notes.txt"], ["notes.txt"], id="convert-out-dir",
                     marks=pytest.mark.slow),
        pytest.param(fit_argv("<bad>/truncated.h5"), ["truncated.h5"], id="fit-truncated", marks=pytest.mark.slow),
    ],
)
def test_the_installed_command_prints_one_line(argv, names, world, tmp_path):
    argv = [world.fill(a, tmp_path) for a in argv]
    before = snapshot(world.root)
    done = subprocess.run([sys.executable, "-m", "lfads", *argv], capture_output=True, text=True, env=_env(),
                          cwd=tmp_path, check=False, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"lfads {argv[0]}: error: "), done.stderr
    assert all(name in lines[0] for name in names), lines[0]
    assert snapshot(world.root) == before and list(tmp_path.iterdir()) == []


RACER = """
import sys, time
from pathlib import Path

import lfads.sampling
from lfads.cli import main

barrier, me = Path(sys.argv[1]), sys.argv[2]
write = lfads.sampling.save_samples


def save_when_both_are_ready(*args, **kwargs):
    # both processes have passed every check and hold a temporary file: only now may either write
    (barrier / me).touch()
    deadline = time.monotonic() + 120
    while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return write(*args, **kwargs)


lfads.sampling.save_samples = save_when_both_are_ready
sys.exit(main(sys.argv[3:]))
"""
"""A ``python -c`` program: ``lfads.cli.main`` whose sampler waits, before writing, until the other racer has
passed every check too (a barrier in a folder), so that both race for the one new file."""


@pytest.mark.slow  # two fresh processes, each importing torch and sampling
def test_two_samplers_racing_for_one_new_file_one_wins_and_the_file_is_complete(world, tmp_path):
    out = tmp_path / "work" / "samples.h5"
    out.parent.mkdir()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    argv = ["sample", "--ckpt", str(world.ckpt), "--out", str(out), "--samples", "2", "--seed", "0",
            "--no-progress"]
    before = snapshot(world.root)
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(barrier), f"racer{i}", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=out.parent)
             for i in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(p.name for p in barrier.iterdir()) == ["racer0", "racer1"]  # both reached the write
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    lines = error_lines(loser)
    assert len(lines) == 1 and lines[0].startswith("lfads sample: error: ") and "exists" in lines[0], loser
    with h5py.File(out, "r") as f:
        session = next(iter(f))
        for split in ("train", "valid"):
            rates = f[f"{session}/{split}/rates"][()]
            assert rates.ndim == 3 and np.all(np.isfinite(rates))
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary file left behind
    assert snapshot(world.root) == before
