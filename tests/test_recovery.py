"""LFADS recovers the firing rates of a Lorenz system from spikes in a short CPU training."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl

from datasets.lorenz import write_lorenz
from lfads.data.datamodule import LFADSDataModule
from lfads.metrics import rate_r2
from lfads.model import LFADS
from lfads.sampling import sample_posteriors


@pytest.mark.slow
def test_short_training_on_lorenz_recovers_rates(tmp_path):
    path = write_lorenz(tmp_path / "lorenz.h5", n_conditions=20, trials_per_condition=10, n_time=60, seed=3)
    pl.seed_everything(0)
    dm = LFADSDataModule(str(path), batch_size=20)
    model = LFADS(
        dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim,
        ic_enc_dim=32, con_dim=0, co_dim=0, ic_dim=16, gen_dim=32, fac_dim=8, dropout_rate=0.05,
        kl_increase_epoch=10, lr_init=0.01,
    )
    trainer = pl.Trainer(max_epochs=100, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=200.0)
    trainer.fit(model, dm)
    valid = dm.sessions[0].splits["valid"]
    samples = sample_posteriors(model, dm, n_samples=10, splits=("valid",), progress=False)
    rates = samples[dm.session_names[0]]["valid"]["rates"]
    r2 = rate_r2(rates, valid.truth)
    print(f"rate R2 vs truth: {r2:.3f}")
    assert r2 >= 0.7, f"rate R2 vs truth {r2:.3f} < 0.7"
