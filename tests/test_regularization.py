"""Ramps, L2 penalties, dropout masks, coordinated dropout, and the coordinated-dropout reconstruction cost."""

from __future__ import annotations

import math

import pytest
import torch

import lfads.model
from lfads.data.batch import SessionBatch
from lfads.model import LFADS
from lfads.modules.augmentations import coordinated_dropout_masks
from lfads.modules.dropout import FastDropout, keep_mask
from lfads.modules.encoder import BidirectionalGRUEncoder
from lfads.modules.gru import ClippedGRUCell
from lfads.modules.likelihoods import Poisson
from lfads.modules.regularizers import linear_ramp, recurrent_l2

torch.set_num_threads(1)

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------- ramps and L2
@pytest.mark.parametrize(
    "epoch,start,length,expected",
    [
        (0.0, 0.0, 10.0, 0.0),  # at the start of the ramp
        (3.0, 5.0, 10.0, 0.0),  # before it
        (5.0, 5.0, 10.0, 0.0),
        (10.0, 5.0, 10.0, 0.5),  # halfway
        (7.5, 5.0, 10.0, 0.25),
        (15.0, 5.0, 10.0, 1.0),  # at the end
        (40.0, 5.0, 10.0, 1.0),  # after it
        (5.0, 5.0, 0.0, 1.0),  # zero length: a step at the start
        (4.999, 5.0, 0.0, 0.0),
    ],
)
def test_linear_ramp_values(epoch: float, start: float, length: float, expected: float) -> None:
    assert linear_ramp(epoch, start, length) == pytest.approx(expected, abs=1e-12)


def test_recurrent_l2_of_a_cell_is_half_mean_square_of_its_recurrent_kernel() -> None:
    torch.manual_seed(0)
    cell = ClippedGRUCell(3, 5)
    w = cell.weight_hh.detach()
    expected = 0.5 * (w**2).sum() / w.numel()
    torch.testing.assert_close(recurrent_l2(cell), expected)
    # Input kernels and biases do not count.
    with torch.no_grad():
        cell.weight_ih.mul_(10)
        cell.bias_hh.add_(3)
    torch.testing.assert_close(recurrent_l2(cell), expected)


def test_recurrent_l2_sums_over_both_directions_of_an_encoder() -> None:
    torch.manual_seed(1)
    enc = BidirectionalGRUEncoder(3, 4)
    fwd, bwd = enc.gru.weight_hh_l0.detach(), enc.gru.weight_hh_l0_reverse.detach()
    expected = 0.5 * (fwd**2).mean() + 0.5 * (bwd**2).mean()
    torch.testing.assert_close(recurrent_l2(enc), expected)


def test_recurrent_l2_gradient_is_weight_over_numel() -> None:
    cell = ClippedGRUCell(2, 3)
    recurrent_l2(cell).backward()
    torch.testing.assert_close(cell.weight_hh.grad, cell.weight_hh.detach() / cell.weight_hh.numel())


def test_recurrent_l2_of_missing_module_is_zero() -> None:
    assert recurrent_l2(None) == 0.0


# ---------------------------------------------------------------------------- dropout masks
N_BYTES = 7 * 300_000  # one mask element per random byte; 7 usable bytes per int64 word


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_keep_mask_keeps_the_rounded_fraction_and_has_mean_one(rate: float) -> None:
    torch.manual_seed(2)
    mask = keep_mask((N_BYTES // 7, 7), rate, CPU, torch.float32)
    threshold = round((1.0 - rate) * 256)
    keep_prob = threshold / 256  # documented rounding to a multiple of 1/256
    kept = mask > 0
    # Values: 0 or the rounded inverse keep probability, so E[mask] = 1 exactly.
    torch.testing.assert_close(mask[kept].unique(), torch.tensor([256.0 / threshold]))
    assert (mask[~kept] == 0).all()
    n = mask.numel()
    se = math.sqrt(keep_prob * (1 - keep_prob) / n)
    assert abs(kept.double().mean().item() - keep_prob) < 5 * se
    assert abs(kept.double().mean().item() - (1 - rate)) < 1 / 512 + 5 * se
    # Every byte position of the int64 words is uniform (column j of this layout is byte j).
    per_byte = kept.double().mean(0)
    assert (per_byte - keep_prob).abs().max() < 5 * math.sqrt(keep_prob * (1 - keep_prob) / (n // 7))
    mean_se = mask.double().std().item() / math.sqrt(n)
    assert abs(mask.double().mean().item() - 1.0) < 5 * mean_se


def test_keep_mask_detects_rounding_of_keep_probability() -> None:
    """rate 0.3 keeps 179/256 = 0.6992 (not 0.7): the rounding is visible in a large sample."""
    torch.manual_seed(3)
    n = 12_000_000
    kept = (keep_mask((n,), 0.3, CPU, torch.float32) > 0).double().mean().item()
    se = math.sqrt(0.7 * 0.3 / n)
    assert abs(kept - 179 / 256) < 4 * se
    assert abs(kept - 0.7) > 4 * se




@pytest.mark.parametrize("rate", [0.0, 0.001])
def test_keep_mask_with_rate_below_half_a_step_keeps_everything(rate: float) -> None:
    assert (keep_mask((3, 4), rate, CPU, torch.float32) == 1).all()


def test_fast_dropout_with_tiny_rate_keeps_its_input() -> None:
    x = torch.randn(10, 20)
    torch.testing.assert_close(FastDropout(0.001).train()(x), x)


def test_keep_mask_shapes_dtypes_and_full_drop() -> None:
    assert (keep_mask((3, 4), 1.0, CPU, torch.float32) == 0).all()
    odd = keep_mask((5, 3, 11), 0.5, CPU, torch.float64)
    assert odd.shape == (5, 3, 11) and odd.dtype == torch.float64
    assert set(odd.unique().tolist()) <= {0.0, 2.0}


def test_fast_dropout_is_identity_in_eval_mode_and_drops_in_train_mode() -> None:
    drop = FastDropout(0.5)
    x = torch.randn(64, 32)
    drop.eval()
    assert drop(x) is x
    drop.train()
    y = drop(x)
    zeroed = y == 0
    assert 0.3 < zeroed.double().mean().item() < 0.7
    torch.testing.assert_close(y[~zeroed], 2.0 * x[~zeroed])
    assert FastDropout(0.0).train()(x) is x


# ---------------------------------------------------------------------------- coordinated dropout
@pytest.mark.parametrize("cd_rate", [0.1, 0.3, 0.7])
def test_coordinated_dropout_masks(cd_rate: float) -> None:
    torch.manual_seed(4)
    shape = torch.Size((100, 50, 40))
    input_mask, weight = coordinated_dropout_masks(shape, cd_rate, CPU)
    assert input_mask.shape == weight.shape == shape
    kept = input_mask > 0
    n = kept.numel()
    se = math.sqrt(cd_rate * (1 - cd_rate) / n)
    assert abs((~kept).double().mean().item() - cd_rate) < 5 * se
    # Encoders see x * m / (1 - cd_rate) with m in {0, 1}.
    scaled = input_mask * (1.0 - cd_rate)
    torch.testing.assert_close(scaled, kept.float(), rtol=0, atol=1e-6)
    # Loss weights: exactly zero where the input was kept, 1 / cd_rate where it was dropped.
    assert (weight[kept] == 0).all()
    torch.testing.assert_close(weight[~kept], torch.full_like(weight[~kept], 1.0 / cd_rate))
    # Expectation of each weight is 1 (and of each input scale).
    w_se = math.sqrt((1 - cd_rate) / cd_rate / n)
    assert abs(weight.double().mean().item() - 1.0) < 5 * w_se
    m_se = math.sqrt(cd_rate / (1 - cd_rate) / n)
    assert abs(input_mask.double().mean().item() - 1.0) < 5 * m_se


@pytest.mark.parametrize("cd_rate", [0.0, 1.0, -0.1])
def test_coordinated_dropout_rejects_rates_outside_open_unit_interval(cd_rate: float) -> None:
    with pytest.raises(ValueError, match="cd_rate"):
        coordinated_dropout_masks(torch.Size((2, 3)), cd_rate, CPU)


# ---------------------------------------------------------------------------- _step with coordinated dropout
B, T_ENC, T_REC, N_IN, N_REC, CD = 4, 5, 7, 3, 5, 0.4


def _cd_model() -> LFADS:
    torch.manual_seed(5)
    model = LFADS(
        encod_data_dims=[N_IN], recon_data_dims=[N_REC], encod_seq_len=T_ENC, recon_seq_len=T_REC,
        ic_enc_dim=4, ci_enc_dim=4, con_dim=4, co_dim=2, ic_dim=3, gen_dim=6, fac_dim=3,
        dropout_rate=0.0, cd_rate=CD, kl_start_epoch=5,  # KL and L2 ramps are 0 at epoch 0
    )
    model.log = lambda *a, **k: None
    return model


def _cd_batch(sv_mask: torch.Tensor | None = None) -> SessionBatch:
    g = torch.Generator().manual_seed(6)
    recon = torch.poisson(torch.full((B, T_REC, N_REC), 2.0), generator=g)
    mask = torch.ones(B, T_ENC, N_IN) if sv_mask is None else sv_mask
    return SessionBatch(recon[:, :T_ENC, :N_IN].clone(), recon, torch.zeros(B, T_REC, 0), None, mask)


def _known_cd_masks() -> tuple[torch.Tensor, torch.Tensor]:
    keep = torch.rand((B, T_ENC, N_IN), generator=torch.Generator().manual_seed(7)) >= CD
    assert keep.any() and (~keep).any()
    return keep.float() / (1 - CD), (~keep).float() / CD


class _Recorder:
    """Wraps ``model.forward`` to record what the encoders saw and what the model returned."""

    def __init__(self, model: LFADS) -> None:
        self.forward, self.calls = model.forward, []

    def __call__(self, encod, ext=None, sample=True):
        out = self.forward(encod, ext, sample=sample)
        self.calls.append((encod, out))
        return out


def _run_step(batch: SessionBatch, masks, monkeypatch, seed: int = 8):
    model = _cd_model()
    recorder = _Recorder(model)
    model.forward = recorder
    calls = []

    def fake_masks(shape, cd_rate, device):
        calls.append((tuple(shape), cd_rate))
        return masks

    monkeypatch.setattr(lfads.model, "coordinated_dropout_masks", fake_masks)
    logged = {}
    model.log = lambda name, value, **k: logged.__setitem__(name, value)
    torch.manual_seed(seed)
    loss = model._step({0: batch}, "train")
    return model, loss, recorder.calls, calls, logged


def test_step_reconstruction_cost_counts_held_in_elements_only_where_dropped(monkeypatch) -> None:
    batch = _cd_batch()
    input_mask, weight = _known_cd_masks()
    model, loss, fwd_calls, mask_calls, logged = _run_step(batch, (input_mask, weight), monkeypatch)
    assert mask_calls == [((B, T_ENC, N_IN), CD)]
    (encod, out), = fwd_calls
    # The encoders saw the kept elements, scaled by 1 / (1 - cd_rate), and zeros elsewhere.
    torch.testing.assert_close(encod[0], batch.encod_data * input_mask)
    # Hand computation with the likelihood module: held-out neurons and forward bins always count;
    # held-in elements of the encoder bins count with weight 1 / cd_rate where dropped and 0 where kept.
    nll = Poisson().nll(out[0].params.detach(), batch.recon_data, full=False)
    w = torch.ones(B, T_REC, N_REC)
    w[:, :T_ENC, :N_IN] = weight
    expected = (nll * w).sum() / (B * T_REC * N_REC)
    torch.testing.assert_close(logged["train/recon"].detach(), expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-6, atol=1e-7)  # KL and L2 ramps are 0


def test_step_loss_ignores_recon_data_of_kept_held_in_elements(monkeypatch) -> None:
    """Changing the target at a kept element leaves the loss unchanged; at a dropped element it changes it."""
    input_mask, weight = _known_cd_masks()
    kept = input_mask > 0
    base = _cd_batch()
    loss0 = _run_step(base, (input_mask, weight), monkeypatch)[1]
    for where, should_change in ((kept, False), (~kept, True)):
        recon = base.recon_data.clone()
        recon[:, :T_ENC, :N_IN][where] += 3.0
        changed = base._replace(recon_data=recon)
        loss1 = _run_step(changed, (input_mask, weight), monkeypatch)[1]
        assert (abs(loss1.item() - loss0.item()) > 1e-4) == should_change, (where.sum(), loss0, loss1)
    # Held-out neurons and forward-prediction bins always count.
    for region in ((slice(None), slice(T_ENC, None), slice(None)), (slice(None), slice(None), slice(N_IN, None))):
        recon = base.recon_data.clone()
        recon[region] += 3.0
        loss1 = _run_step(base._replace(recon_data=recon), (input_mask, weight), monkeypatch)[1]
        assert abs(loss1.item() - loss0.item()) > 1e-4


def test_step_combines_sample_validation_mask_with_coordinated_dropout(monkeypatch) -> None:
    sv_mask = (torch.rand((B, T_ENC, N_IN), generator=torch.Generator().manual_seed(9)) >= 0.25).float()
    batch = _cd_batch(sv_mask)
    input_mask, weight = _known_cd_masks()
    _, loss, fwd_calls, _, logged = _run_step(batch, (input_mask, weight), monkeypatch)
    (encod, out), = fwd_calls
    torch.testing.assert_close(encod[0], batch.encod_data * sv_mask / sv_mask.mean() * input_mask)
    nll = Poisson().nll(out[0].params.detach(), batch.recon_data, full=False)
    w = torch.ones(B, T_REC, N_REC)
    w[:, :T_ENC, :N_IN] = weight * sv_mask  # sample-validation elements never count in training
    torch.testing.assert_close(logged["train/recon"].detach(), (nll * w).sum() / w.numel(), rtol=1e-6, atol=1e-7)


def test_step_draws_no_coordinated_dropout_masks_outside_training(monkeypatch) -> None:
    model = _cd_model()
    monkeypatch.setattr(lfads.model, "coordinated_dropout_masks", lambda *a: pytest.fail("masks drawn in valid"))
    batch = _cd_batch()
    recorder = _Recorder(model)
    model.forward = recorder
    model._step({0: batch}, "valid")
    torch.testing.assert_close(recorder.calls[0][0][0], batch.encod_data)


# ---------------------------------------------------------------------------- ramps, checkpoints and LR schedule
def _ramp_model(**kwargs) -> LFADS:
    return LFADS(
        encod_data_dims=[N_IN], recon_data_dims=[N_REC], encod_seq_len=T_ENC, recon_seq_len=T_REC,
        ic_enc_dim=4, ci_enc_dim=4, con_dim=0, co_dim=0, ic_dim=3, gen_dim=6, fac_dim=3, **kwargs,
    )


@pytest.mark.parametrize(
    ("epoch", "kwargs", "expected"),
    [
        (0, dict(kl_start_epoch=0, kl_increase_epoch=3), False),
        (2, dict(kl_start_epoch=0, kl_increase_epoch=3), False),
        (3, dict(kl_start_epoch=0, kl_increase_epoch=3), True),
        (4, dict(kl_start_epoch=2, kl_increase_epoch=3), False),
        (5, dict(kl_start_epoch=2, kl_increase_epoch=3), True),
        # an L2 ramp counts only when some L2 cost is on
        (3, dict(kl_increase_epoch=3, l2_increase_epoch=10), True),
        (3, dict(kl_increase_epoch=3, l2_increase_epoch=10, l2_gen_scale=1.0), False),
        (10, dict(kl_increase_epoch=3, l2_increase_epoch=10, l2_gen_scale=1.0), True),
    ],
)
def test_ramps_complete_once_every_active_penalty_is_at_full_weight(epoch, kwargs, expected, monkeypatch) -> None:
    model = _ramp_model(**kwargs)
    monkeypatch.setattr(model, "_epoch_progress", lambda: float(epoch))
    assert model.ramps_complete() is expected


def test_plateau_schedule_waits_for_the_ramps(monkeypatch) -> None:
    model = _ramp_model(kl_increase_epoch=3, lr_scheduler=True, lr_patience=0, lr_decay=0.5, lr_init=1.0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    sched.step(1.0)  # the first value is the best so far: no decay
    epoch = {"e": 0.0}
    monkeypatch.setattr(model, "_epoch_progress", lambda: epoch["e"])
    model.lr_scheduler_step(sched, 2.0)  # worse, but inside the KL ramp: ignored
    assert opt.param_groups[0]["lr"] == 1.0
    epoch["e"] = 3.0
    model.lr_scheduler_step(sched, 2.0)  # worse after the ramp: decays
    assert opt.param_groups[0]["lr"] == 0.5


def test_cosine_schedule_anneals_from_lr_init_to_lr_stop_then_holds_even_inside_the_ramps(monkeypatch) -> None:
    model = _ramp_model(kl_increase_epoch=50, lr_init=0.01, lr_stop=1e-4, lr_cosine_epochs=4)
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "epoch"
    monkeypatch.setattr(model, "_epoch_progress", lambda: 0.0)  # inside the KL ramp: the cosine still steps
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        model.lr_scheduler_step(sched, None)
    expected = [1e-4 + 0.5 * (0.01 - 1e-4) * (1 + math.cos(math.pi * e / 4)) for e in range(4)] + [1e-4] * 3
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_cosine_and_plateau_schedules_are_exclusive() -> None:
    with pytest.raises(ValueError, match="lr_cosine_epochs"):
        _ramp_model(lr_scheduler=True, lr_cosine_epochs=10)
    with pytest.raises(ValueError, match="lr_cosine_epochs"):
        _ramp_model(lr_cosine_epochs=-1)
