"""Co-trained LFADS-JSLDS: the expansion points become fixed points and the linear system tracks the generator."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from datasets.chaotic_rnn import write_chaotic_rnn
from lfads.data.datamodule import LFADSDataModule
from lfads.model import LFADS


def test_cotraining_makes_expansion_points_fixed_and_one_step_error_small(tmp_path):
    path = write_chaotic_rnn(tmp_path / "pulses.h5", n_conditions=20, trials_per_condition=4, n_units=20, n_time=40,
                             input_pulse=True, seed=2)
    pl.seed_everything(0)
    dm = LFADSDataModule(str(path), batch_size=16)
    model = LFADS(
        dm.encod_data_dims, dm.recon_data_dims, dm.encod_seq_len, dm.recon_seq_len, dm.ext_input_dim,
        ic_enc_dim=16, ci_enc_dim=16, con_dim=16, co_dim=1, ic_dim=8, gen_dim=24, fac_dim=6, dropout_rate=0.0,
        kl_increase_epoch=5, lr_init=0.01, jslds=True, jslds_hidden_dim=32,
    )
    valid = dm.sessions[0].splits["valid"]
    encod, ext = torch.as_tensor(valid.encod_data), torch.as_tensor(valid.ext_input)

    def residuals():
        model.eval()
        out = model.jslds_outputs(0, encod, ext)
        e, image = out["expansion_points"], out["expansion_images"]
        fp = float(((image - e).norm(dim=-1) / e.norm(dim=-1).clamp_min(1e-12)).mean())
        return fp, float(out["one_step_error"].mean()), out

    fp_before, _, _ = residuals()
    trainer = pl.Trainer(max_epochs=25, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=200.0)
    trainer.fit(model, dm)
    fp_after, one_step, out = residuals()
    assert fp_after < 0.5 * fp_before, (fp_before, fp_after)
    assert one_step < 0.05, one_step
    for key in ("approx_rates", "rollout_rates", "rollout_error"):
        assert torch.isfinite(out[key]).all()
    assert out["approx_rates"].shape == out["rates"].shape


def test_one_step_on_chosen_steps_equals_the_full_expansion_at_those_steps():
    from lfads.modules.gru import ClippedGRUCell
    from lfads.modules.jslds import JSLDS

    torch.manual_seed(0)
    cell, jslds = ClippedGRUCell(2, 6, clip_value=5.0), JSLDS(6, 8)
    nn_init = torch.nn.init
    nn_init.normal_(jslds.expansion.mlp[-1].weight, std=0.3)  # a non-trivial E(h)
    states, g0, inputs = torch.randn(3, 7, 6), torch.randn(3, 6), torch.randn(3, 7, 2)
    full = jslds.one_step(cell, states, g0, inputs)
    steps = torch.tensor([5, 0, 3])
    part = jslds.one_step(cell, states, g0, inputs, steps)
    for a, b in zip(part, full):
        torch.testing.assert_close(a, b[:, steps])


def test_jslds_step_fraction_outside_unit_interval_is_rejected():
    import pytest

    with pytest.raises(ValueError, match="jslds_step_fraction"):
        LFADS([3], [3], 5, 5, jslds=True, jslds_step_fraction=0.0)
