"""Shapes and determinism of the ``LFADS`` forward pass, its argument checks, and the PCR read-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfads.model import LFADS, SessionOutput
from lfads.modules.decoder import Decoder
from lfads.modules.likelihoods import make_likelihood
from lfads.modules.readin_readout import ReadIn, ReadOut
from lfads.runtime import set_recurrence_backend

torch.set_num_threads(1)

SMALL = dict(ic_enc_dim=4, ci_enc_dim=4, con_dim=4, co_dim=2, ic_dim=3, gen_dim=6, fac_dim=3, dropout_rate=0.2)

CASES = {
    "single_session": dict(enc=[5], rec=[5], t_enc=6, t_rec=6),
    "held_out_and_forward_bins": dict(enc=[5], rec=[8], t_enc=6, t_rec=9, ci_lag=0),
    "multi_session_readin": dict(enc=[5, 7], rec=[6, 9], t_enc=6, t_rec=8, readin_dim=4, ext=2, ci_lag=2),
    "ic_only_bins": dict(enc=[5], rec=[7], t_enc=6, t_rec=7, ic_enc_seq_len=2, ci_lag=2),
    "autonomous_co_dim_0": dict(enc=[5, 5], rec=[5, 6], t_enc=6, t_rec=7, co_dim=0, ext=1),
    "autonomous_con_dim_0": dict(enc=[5], rec=[5], t_enc=6, t_rec=6, con_dim=0, co_dim=0),
    "gaussian": dict(enc=[4], rec=[6], t_enc=5, t_rec=6, reconstruction="gaussian"),
    "zero_inflated_gamma": dict(enc=[4, 3], rec=[4, 5], t_enc=5, t_rec=5, readin_dim=2,
                                reconstruction="zero_inflated_gamma"),
    "unfused_recurrence": dict(enc=[5], rec=[7], t_enc=6, t_rec=8, ext=2, backend="reference"),
}


@pytest.fixture(autouse=True)
def case_backend(request):
    """Run each test under the recurrence backend its case names (a run-time choice; default LFADS_RECURRENCE/auto)."""
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name") if callspec else None
    with set_recurrence_backend(CASES.get(name, {}).get("backend")):
        yield


def _build(case: dict) -> LFADS:
    c = dict(case)
    c.pop("backend", None)  # not a model argument: applied by the case_backend fixture
    kwargs = dict(SMALL)
    kwargs.update(
        encod_data_dims=c.pop("enc"), recon_data_dims=c.pop("rec"), encod_seq_len=c.pop("t_enc"),
        recon_seq_len=c.pop("t_rec"), ext_input_dim=c.pop("ext", 0),
    )
    kwargs.update(c)
    torch.manual_seed(0)
    return LFADS(**kwargs)


def _inputs(model: LFADS, batch_sizes: list[int], seed: int = 1) -> tuple[dict, dict]:
    hp = model.hparams
    g = torch.Generator().manual_seed(seed)
    encod = {
        s: torch.poisson(torch.full((b, hp.encod_seq_len, hp.encod_data_dims[s]), 1.5), generator=g)
        for s, b in enumerate(batch_sizes)
    }
    ext = {s: torch.randn(b, hp.recon_seq_len, hp.ext_input_dim, generator=g) for s, b in enumerate(batch_sizes)}
    return encod, ext


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_outputs_have_documented_shapes(name: str) -> None:
    model = _build(CASES[name])
    hp = model.hparams
    use_con = hp.co_dim > 0 and hp.con_dim > 0
    co = hp.co_dim if use_con else 0
    n_params = make_likelihood(hp.reconstruction).n_params
    batch_sizes = [3, 2][: len(hp.encod_data_dims)]
    encod, ext = _inputs(model, batch_sizes)
    model.train()
    out = model(encod, ext, sample=True)
    assert sorted(out) == list(range(len(batch_sizes)))
    for s, b in enumerate(batch_sizes):
        o = out[s]
        assert isinstance(o, SessionOutput)
        t, n = hp.recon_seq_len, hp.recon_data_dims[s]
        expected = {
            "rates": (b, t, n),
            "params": (b, t, n_params, n),
            "factors": (b, t, hp.fac_dim),
            "gen_states": (b, t, hp.gen_dim),
            "inferred_inputs": (b, t, co),
            "co_means": (b, t, co),
            "co_stds": (b, t, co),
            "ic_mean": (b, hp.ic_dim),
            "ic_std": (b, hp.ic_dim),
            "ic_sample": (b, hp.ic_dim),
            "gen_init": (b, hp.gen_dim),
            "gen_inputs": (b, t, co + hp.ext_input_dim),
        }
        assert set(expected) == set(o._fields)
        for field, shape in expected.items():
            value = getattr(o, field)
            assert tuple(value.shape) == shape, f"{name}: {field} {tuple(value.shape)} != {shape}"
            assert torch.isfinite(value).all(), field
        torch.testing.assert_close(o.rates, model.likelihood.mean(o.params))
        assert (o.ic_std > 0).all() and (o.co_stds > 0).all()
        # Generator states respect the cell clip.
        assert o.gen_states.abs().max() <= hp.cell_clip


@pytest.mark.parametrize("name", ["multi_session_readin", "autonomous_co_dim_0", "unfused_recurrence"])
def test_forward_without_sampling_in_eval_mode_is_deterministic(name: str) -> None:
    model = _build(CASES[name]).eval()
    encod, ext = _inputs(model, [3, 2][: len(model.hparams.encod_data_dims)])
    first = model(encod, ext, sample=False)
    torch.manual_seed(123)  # a different RNG state must not matter
    second = model(encod, ext, sample=False)
    for s in first:
        for a, b in zip(first[s], second[s]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(first[s].ic_sample, first[s].ic_mean, rtol=0, atol=0)
        torch.testing.assert_close(first[s].inferred_inputs, first[s].co_means, rtol=0, atol=0)
    sampled = model(encod, ext, sample=True)
    assert not torch.equal(sampled[0].ic_sample, first[0].ic_mean)


def test_forward_accepts_a_subset_of_sessions() -> None:
    model = _build(CASES["multi_session_readin"]).eval()
    encod, ext = _inputs(model, [3, 2])
    both = model(encod, ext, sample=False)
    only_second = model({1: encod[1]}, {1: ext[1]}, sample=False)
    assert list(only_second) == [1]
    torch.testing.assert_close(only_second[1].rates, both[1].rates, rtol=1e-5, atol=1e-6)


def test_fused_and_unfused_models_give_the_same_outputs() -> None:
    case = dict(CASES["multi_session_readin"])
    fused = _build(case).eval()
    plain = _build(case).eval()
    plain.load_state_dict(fused.state_dict())
    encod, ext = _inputs(fused, [3, 2])
    a = fused(encod, ext, sample=False)
    with set_recurrence_backend("reference"):
        b = plain(encod, ext, sample=False)
    for s in a:
        for x, y in zip(a[s], b[s]):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_external_inputs_drive_the_generator() -> None:
    model = _build(CASES["multi_session_readin"]).eval()
    encod, ext = _inputs(model, [3, 2])
    base = model(encod, ext, sample=False)
    shifted = model(encod, {s: e + 1.0 for s, e in ext.items()}, sample=False)
    assert not torch.allclose(base[0].gen_states, shifted[0].gen_states)
    torch.testing.assert_close(base[0].ic_mean, shifted[0].ic_mean)  # the encoders do not see them


def test_decoder_factor_weight_rows_have_unit_norm() -> None:
    torch.manual_seed(2)
    dec = Decoder(3, 6, 4, 2, 8, 0, 5, 5.0, 0.0)
    torch.testing.assert_close(dec.factor_weight().norm(dim=1), torch.ones(5))


def test_readout_params_layout() -> None:
    """Output column ``k * N + n`` of the linear layer is parameter ``k`` of neuron ``n``."""
    ro = ReadOut(fac_dim=2, recon_data_dims=[3], n_params=2)
    with torch.no_grad():
        ro.layers[0].weight.zero_()
        ro.layers[0].bias.copy_(torch.arange(6.0))
    params = ro(0, torch.zeros(1, 1, 2))
    torch.testing.assert_close(params[0, 0], torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]))


BAD_ARGS = [
    (dict(encod_data_dims=[5], recon_data_dims=[4]), "recon_data_dims"),
    (dict(encod_data_dims=[5, 6], recon_data_dims=[6]), "same sessions"),
    (dict(encod_seq_len=6, recon_seq_len=5), "recon_seq_len"),
    (dict(ic_enc_seq_len=6), "ic_enc_seq_len"),
    (dict(ic_enc_seq_len=-1), "ic_enc_seq_len"),
    (dict(encod_data_dims=[5, 6], recon_data_dims=[5, 6]), "readin_dim"),
    (dict(reconstruction="bernoulli"), "poisson"),
]


@pytest.mark.parametrize("bad,message", BAD_ARGS)
def test_bad_dimensions_are_rejected_with_a_message_naming_the_setting(bad: dict, message: str) -> None:
    kwargs = dict(SMALL, encod_data_dims=[5], recon_data_dims=[5], encod_seq_len=6, recon_seq_len=6)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=message):
        LFADS(**kwargs)


def _smooth_latents(n_time: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 1, n_time)[:, None]
    freqs, phases = rng.uniform(1, 4, 3), rng.uniform(0, 2 * np.pi, 3)
    return np.sin(2 * np.pi * freqs * t + phases)


def test_pcr_init_maps_sessions_of_shared_latents_onto_shared_axes() -> None:
    """Two sessions record different random mixtures of the same 3 latents; after PCR their read-ins agree."""
    rng = np.random.default_rng(3)
    n_time, dims, readin_dim = 60, [12, 20], 3
    latents = _smooth_latents(n_time, rng)
    averaged = [latents @ rng.normal(size=(3, n)) + rng.normal(size=n) + 0.01 * rng.normal(size=(n_time, n))
                for n in dims]
    readin = ReadIn(dims, readin_dim)
    # Before PCR the random read-ins do not agree.
    with torch.no_grad():
        before = [readin(s, torch.as_tensor(a, dtype=torch.float32)).numpy() for s, a in enumerate(averaged)]
    readin.init_pcr(averaged)
    with torch.no_grad():
        after = [readin(s, torch.as_tensor(a, dtype=torch.float32)).numpy() for s, a in enumerate(averaged)]
    corr_after = [np.corrcoef(after[0][:, k], after[1][:, k])[0, 1] for k in range(readin_dim)]
    corr_before = [abs(np.corrcoef(before[0][:, k], before[1][:, k])[0, 1]) for k in range(readin_dim)]
    assert min(corr_after) > 0.99, corr_after
    assert min(corr_before) < 0.9
    for out in after:
        np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-4)  # centred by the bias
        # The shared axes span the latent space: latents are a linear function of the read-in output.
        design = np.column_stack([out, np.ones(n_time)])
        coef, *_ = np.linalg.lstsq(design, latents, rcond=None)
        resid = latents - design @ coef
        assert (resid.var(0) / latents.var(0)).max() < 1e-3


def test_pcr_init_leaves_identity_read_in_alone() -> None:
    readin = ReadIn([4, 4], None)
    readin.init_pcr([np.ones((5, 4)), np.ones((5, 4))])
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(readin(1, x), x)
    assert readin.out_dim == 4
