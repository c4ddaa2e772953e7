"""Hand-differentiated recurrent loops of :mod:`lfads.modules.recurrence` against plain autograd.

The references below are written from the equations (``torch.nn.GRUCell`` gate order, state clip),
independently of the fused kernels: forward values and gradients must agree to float64 precision,
each hand-written backward is checked against central finite differences with a fresh graph per
backward, and ``torch.autograd.gradcheck`` runs on both Functions.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import Tensor, nn
from torch.autograd import gradcheck

from lfads.modules import native
from lfads.modules.decoder import Decoder, gru_step
from lfads.modules.encoder import BidirectionalGRUEncoder, Encoder, run_bidirectional
from lfads.modules.gru import ClippedGRUCell
from lfads.modules.recurrence import ControllerGeneratorLoop, GRUSequence, gru_sequence
from lfads.runtime import set_recurrence_backend

torch.set_num_threads(1)

F64 = torch.float64
INF = float("inf")


pytestmark = pytest.mark.usefixtures("loop_backend")  # every test runs on the Python and the compiled loops


def test_compiled_loops_run_for_cpu_float_tensors_and_python_loops_otherwise(loop_backend, monkeypatch) -> None:
    calls = []
    if loop_backend == "compiled":
        lib = native.load()
        original = lib.gru_sequence_forward
        monkeypatch.setattr(lib, "gru_sequence_forward", lambda *a: calls.append(a[0].dtype) or original(*a))
    for dtype in (torch.float32, torch.float64):
        gates, h0 = torch.randn(3, 1, 2, 12, dtype=dtype), torch.zeros(1, 2, 4, dtype=dtype)
        gru_sequence(gates, h0, torch.randn(1, 12, 4, dtype=dtype), torch.zeros(1, 12, dtype=dtype))
    assert calls == ([torch.float32, torch.float64] if loop_backend == "compiled" else [])
    assert native.usable(torch.zeros(1, dtype=torch.float16)) is None


def test_each_copy_of_the_source_gets_its_own_extension_cache(tmp_path) -> None:
    """ninja rebuilds when the source path in its build file changes, so two checkouts must not share a cache folder."""
    import importlib.util
    import shutil

    def name_for(folder):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(native.__file__, folder / "native.py")
        spec = importlib.util.spec_from_file_location(f"native_copy_{folder.name}", folder / "native.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module._NAME

    first, second = name_for(tmp_path / "a"), name_for(tmp_path / "b")
    assert first != second and first == name_for(tmp_path / "a")
    assert native._NAME not in (first, second)


# ---------------------------------------------------------------------------- references
def ref_gru_step(a: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor, clip: float) -> tuple[Tensor, Tensor]:
    """Plain-autograd GRU step from input gates ``a`` ``(..., B, 3H)``; returns (clipped, pre-clip) states.

    ``w_hh`` is ``(3H, H)`` or grouped ``(G, 3H, H)`` with ``b_hh`` ``(3H,)`` or ``(G, 3H)``.
    """
    hid = h.shape[-1]
    if w_hh.dim() == 3:
        gh = torch.matmul(h, w_hh.transpose(1, 2)) + b_hh.unsqueeze(1)
    else:
        gh = h @ w_hh.t() + b_hh
    r = torch.sigmoid(a[..., :hid] + gh[..., :hid])
    z = torch.sigmoid(a[..., hid : 2 * hid] + gh[..., hid : 2 * hid])
    n = torch.tanh(a[..., 2 * hid :] + r * gh[..., 2 * hid :])
    pre = (1.0 - z) * n + z * h
    return (pre.clamp(-clip, clip) if clip != INF else pre), pre


def ref_gru_sequence(gates: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor, clip: float) -> tuple[Tensor, Tensor]:
    """States ``(T + 1, G, B, H)`` and pre-clip values ``(T, G, B, H)``."""
    states, pres = [h0], []
    for t in range(gates.shape[0]):
        h, pre = ref_gru_step(gates[t], states[-1], w_hh, b_hh, clip)
        states.append(h)
        pres.append(pre)
    return torch.stack(states), torch.stack(pres)


def ref_controller_generator(
    ci_gates, ext_gates, g0, c0, cf_t, wc_hh, bc_hh, wco, bco, wu, wg_hh, bg_hh, eps, masks, clip, return_pre=False
):
    """The LFADS decoder loop in plain autograd, same inputs and outputs as ``ControllerGeneratorLoop``."""
    co = wu.shape[1]
    gen, con, cop, us, pres = [g0], [c0], [], [], []
    drop = [g0 * masks[0] if masks is not None else g0]
    for t in range(ci_gates.shape[0]):
        c, pre_c = ref_gru_step(ci_gates[t] + drop[-1] @ cf_t, con[-1], wc_hh, bc_hh, clip)
        p = c @ wco.t() + bco
        u = p[:, :co] + (torch.exp(0.5 * p[:, co:]) * eps[t] if eps is not None else 0.0)
        g, pre_g = ref_gru_step(ext_gates[t] + u @ wu.t(), gen[-1], wg_hh, bg_hh, clip)
        con.append(c)
        gen.append(g)
        drop.append(g * masks[t + 1] if masks is not None else g)
        cop.append(p)
        us.append(u)
        pres += [pre_c, pre_g]
    out = (torch.stack(gen), torch.stack(drop), torch.stack(con), torch.stack(cop), torch.stack(us))
    return (out, pres) if return_pre else out


# ---------------------------------------------------------------------------- inputs
def _gru_sequence_inputs(seed: int, scale: float, n_steps=3, groups=2, batch=2, hidden=3) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> Tensor:
        return (torch.randn(*shape, generator=g, dtype=F64) * scale).requires_grad_(True)

    h0 = (torch.rand(groups, batch, hidden, generator=g, dtype=F64) * 0.6 - 0.3).requires_grad_(True)
    return [r(n_steps, groups, batch, 3 * hidden), h0, r(groups, 3 * hidden, hidden), r(groups, 3 * hidden)]


def _loop_inputs(seed: int, scale: float, use_eps: bool, use_masks: bool, n_steps=3, batch=2, con=3, gen=4, co=2):
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, s: float = scale) -> Tensor:
        return (torch.randn(*shape, generator=g, dtype=F64) * s).requires_grad_(True)

    diff = [
        r(n_steps, batch, 3 * con),  # ci_gates
        r(n_steps, batch, 3 * gen),  # ext_gates
        r(batch, gen, s=0.3),  # g0
        r(batch, con, s=0.3),  # c0
        r(gen, 3 * con),  # cf_t
        r(3 * con, con),  # wc_hh
        r(3 * con),  # bc_hh
        r(2 * co, con),  # wco
        r(2 * co, s=0.3),  # bco
        r(3 * gen, co),  # wu
        r(3 * gen, gen),  # wg_hh
        r(3 * gen),  # bg_hh
    ]
    eps = torch.randn(n_steps, batch, co, generator=g, dtype=F64) if use_eps else None
    masks = None
    if use_masks:
        keep = torch.rand(n_steps + 1, batch, gen, generator=g, dtype=F64) >= 0.3
        masks = keep.to(F64) / 0.7
        assert (masks == 0).any() and (masks > 0).any()
    return diff, eps, masks


def _assert_clip_mixed(pres: list[Tensor] | Tensor, clip: float) -> None:
    """Some elements clipped, some not, none so close to the clip that finite differences straddle it."""
    pre = torch.cat([p.detach().reshape(-1) for p in pres]) if isinstance(pres, list) else pres.detach().reshape(-1)
    assert (pre.abs() > clip).any() and (pre.abs() < clip).any()
    assert (pre.abs() - clip).abs().min() > 1e-4




def _finite_difference_jacobians(fn, inputs: list[Tensor], eps: float = 1e-6) -> list[Tensor]:
    """Central-difference Jacobians ``(n_outputs, input.numel())`` of the flattened outputs of ``fn``."""
    args = [a.detach() for a in inputs]
    jacobians = []
    with torch.no_grad():
        for i, x in enumerate(args):
            cols = []
            flat = x.reshape(-1)
            for k in range(flat.numel()):
                step = torch.zeros_like(flat)
                step[k] = eps
                plus = _flatten(fn(*args[:i], (flat + step).view_as(x), *args[i + 1 :]))
                minus = _flatten(fn(*args[:i], (flat - step).view_as(x), *args[i + 1 :]))
                cols.append((plus - minus) / (2 * eps))
            jacobians.append(torch.stack(cols, 1))
    return jacobians


def _flatten(outputs) -> Tensor:
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return torch.cat([o.reshape(-1) for o in outputs])


def assert_backward_matches_finite_differences(
    fn, inputs: list[Tensor], n_probes: int = 3, jacobians: list[Tensor] | None = None
) -> None:
    """``v^T J`` from one backward per fresh forward, for random ``v``, equals finite differences.

    The same check as ``torch.autograd.gradcheck`` but with a new graph for every backward.
    ``jacobians`` may pass precomputed finite-difference Jacobians of ``fn``.
    """
    if jacobians is None:
        jacobians = _finite_difference_jacobians(fn, inputs)
    g = torch.Generator().manual_seed(99)
    for _ in range(n_probes):
        args = [a.detach().clone().requires_grad_(True) for a in inputs]
        out = fn(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        v = torch.randn(sum(o.numel() for o in out), generator=g, dtype=F64)
        grad_out = [c.view_as(o) for c, o in zip(v.split([o.numel() for o in out]), out)]
        grads = torch.autograd.grad(out, args, grad_outputs=grad_out, allow_unused=True)
        for x, grad, jac in zip(args, grads, jacobians):
            got = torch.zeros_like(x) if grad is None else grad
            torch.testing.assert_close(got.reshape(-1), v @ jac, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- cells
@pytest.mark.parametrize("clip", [INF, 10.0])
def test_clipped_gru_cell_equals_nn_gru_cell_when_clip_inactive(clip: float) -> None:
    torch.manual_seed(0)
    cell = ClippedGRUCell(3, 4, clip).double()
    ref = nn.GRUCell(3, 4).double()
    ref.load_state_dict(cell.state_dict())
    x, h = torch.randn(5, 3, dtype=F64), torch.rand(5, 4, dtype=F64) * 2 - 1
    torch.testing.assert_close(cell(x, h), ref(x, h), rtol=0, atol=1e-15)


def test_clipped_gru_cell_clips_the_nn_gru_cell_state() -> None:
    torch.manual_seed(1)
    clip = 0.3
    cell = ClippedGRUCell(3, 6, clip).double()
    ref = nn.GRUCell(3, 6).double()
    ref.load_state_dict(cell.state_dict())
    x, h = torch.randn(8, 3, dtype=F64) * 3, torch.rand(8, 6, dtype=F64) * 0.5 - 0.25
    unclipped = ref(x, h)
    assert (unclipped.abs() > clip).any() and (unclipped.abs() < clip).any()
    out = cell(x, h)
    torch.testing.assert_close(out, unclipped.clamp(-clip, clip), rtol=0, atol=1e-15)
    assert out.abs().max() <= clip


@pytest.mark.parametrize("clip", [INF, 0.3])
def test_decoder_gru_step_equals_clipped_gru_cell(clip: float) -> None:
    torch.manual_seed(2)
    cell = ClippedGRUCell(3, 5, clip).double()
    x, h = torch.randn(6, 3, dtype=F64) * 2, torch.rand(6, 5, dtype=F64) * 0.5 - 0.25
    gi = nn.functional.linear(x, cell.weight_ih, cell.bias_ih)
    torch.testing.assert_close(gru_step(gi, h, cell.weight_hh.t(), cell.bias_hh, clip), cell(x, h), rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------- GRUSequence
@pytest.mark.parametrize("clip", [INF, 0.4])
def test_gru_sequence_forward_and_gradients_match_autograd_loop(clip: float) -> None:
    inputs = _gru_sequence_inputs(seed=3, scale=2.0)
    ref_states, pres = ref_gru_sequence(*inputs, clip)
    if clip != INF:
        _assert_clip_mixed(pres, clip)
    states = GRUSequence.apply(*inputs, clip)
    assert states.shape == (4, 2, 2, 3)
    torch.testing.assert_close(states, ref_states, rtol=0, atol=1e-13)
    torch.testing.assert_close(gru_sequence(*inputs, clip), ref_states[1:], rtol=0, atol=1e-13)
    weight = torch.randn(states.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    got = torch.autograd.grad((states * weight).sum(), inputs)
    expected = torch.autograd.grad((ref_states * weight).sum(), inputs)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("clip", [INF, 10.0, 0.4])
def test_gru_sequence_backward_matches_finite_differences(clip: float) -> None:
    inputs = _gru_sequence_inputs(seed=3, scale=2.0)
    if clip == 0.4:
        _assert_clip_mixed(ref_gru_sequence(*inputs, clip)[1], clip)
    assert_backward_matches_finite_differences(lambda *a: GRUSequence.apply(*a, clip), inputs)


def test_gru_sequence_backward_with_final_state_only_matches_finite_differences() -> None:
    inputs = _gru_sequence_inputs(seed=5, scale=2.0, n_steps=4, groups=1)
    assert_backward_matches_finite_differences(lambda *a: GRUSequence.apply(*a, 0.4)[-1], inputs)


@pytest.mark.parametrize("clip", [INF, 0.4])
def test_gru_sequence_gradcheck(clip: float) -> None:
    inputs = _gru_sequence_inputs(seed=3, scale=2.0)
    assert gradcheck(lambda *a: GRUSequence.apply(*a, clip), inputs, eps=1e-6, atol=1e-6, fast_mode=True)


def test_gru_sequence_backward_twice_with_retained_graph() -> None:
    inputs = _gru_sequence_inputs(seed=3, scale=1.0)
    states = GRUSequence.apply(*inputs, INF)
    first = torch.autograd.grad(states.sum(), inputs, retain_graph=True)
    second = torch.autograd.grad(states.sum(), inputs)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_run_bidirectional_equals_nn_gru() -> None:
    torch.manual_seed(6)
    encs = [BidirectionalGRUEncoder(3, 4).double() for _ in range(2)]
    for e in encs:
        with torch.no_grad():
            e.h0.normal_(0, 0.3)
    x = torch.randn(2, 5, 3, dtype=F64)
    for (out, last), enc in zip(run_bidirectional(encs, x), encs):
        ref_out, ref_last = enc(x)
        torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-13)
        torch.testing.assert_close(last, ref_last, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------- ControllerGeneratorLoop
LOOP_CASES = [(eps, masks, clip) for eps in (False, True) for masks in (False, True) for clip in (INF, 0.5)]


@pytest.mark.parametrize("use_eps,use_masks,clip", LOOP_CASES)
def test_controller_generator_loop_matches_autograd_loop(use_eps: bool, use_masks: bool, clip: float) -> None:
    diff, eps, masks = _loop_inputs(7, 1.5, use_eps, use_masks)
    expected, pres = ref_controller_generator(*diff, eps, masks, clip, return_pre=True)
    if clip != INF:
        _assert_clip_mixed(pres, clip)
    got = ControllerGeneratorLoop.apply(*diff, eps, masks, clip)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    g = torch.Generator().manual_seed(8)
    weights = [torch.randn(o.shape, generator=g, dtype=F64) for o in got]
    grads = torch.autograd.grad(sum((o * w).sum() for o, w in zip(got, weights)), diff)
    ref_grads = torch.autograd.grad(sum((o * w).sum() for o, w in zip(expected, weights)), diff)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@functools.cache
def _loop_jacobians(use_eps: bool, use_masks: bool, clip: float) -> list[Tensor]:
    """Finite-difference Jacobians of all five loop outputs (flattened, in order) w.r.t. the 12 inputs."""
    diff, eps, masks = _loop_inputs(7, 1.5, use_eps, use_masks)
    return _finite_difference_jacobians(lambda *a: ControllerGeneratorLoop.apply(*a, eps, masks, clip), diff)


@pytest.mark.parametrize("use_eps,use_masks,clip", LOOP_CASES)
def test_controller_generator_loop_backward_matches_finite_differences(
    use_eps: bool, use_masks: bool, clip: float
) -> None:
    diff, eps, masks = _loop_inputs(7, 1.5, use_eps, use_masks)
    jacobians = _loop_jacobians(use_eps, use_masks, clip)
    run = lambda *a: ControllerGeneratorLoop.apply(*a, eps, masks, clip)  # noqa: E731
    assert_backward_matches_finite_differences(run, diff, jacobians=jacobians)


class _LoopWithNoneGrads(ControllerGeneratorLoop):
    """The same Function, but unused outputs reach ``backward`` as ``None`` instead of zeros."""

    @staticmethod
    def forward(ctx, *args):
        ctx.set_materialize_grads(False)
        return ControllerGeneratorLoop.forward(ctx, *args)


@pytest.mark.parametrize("used", [(0,), (1,), (2,), (3,), (4,), (1, 4)])
def test_controller_generator_loop_with_unused_outputs_matches_finite_differences(used: tuple[int, ...]) -> None:
    """Outputs left out of the loss arrive in ``backward`` as None; the gradients must stay exact."""
    diff, eps, masks = _loop_inputs(7, 1.5, True, True)

    def run(*a):
        out = _LoopWithNoneGrads.apply(*a, eps, masks, 0.5)
        return tuple(out[i] for i in used)

    _assert_clip_mixed(ref_controller_generator(*diff, eps, masks, 0.5, return_pre=True)[1], 0.5)
    sizes = [o.numel() for o in ControllerGeneratorLoop.apply(*diff, eps, masks, 0.5)]
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    rows = torch.cat([torch.arange(offsets[i], offsets[i + 1]) for i in used])
    jacobians = [j[rows] for j in _loop_jacobians(True, True, 0.5)]
    assert_backward_matches_finite_differences(run, diff, n_probes=2, jacobians=jacobians)
    # Same gradients as the reference loop for a loss of the used outputs only.
    got, expected = run(*diff), ref_controller_generator(*diff, eps, masks, 0.5)
    loss = sum(o.pow(2).sum() for o in got)
    ref_loss = sum(expected[i].pow(2).sum() for i in used)
    for a, b in zip(torch.autograd.grad(loss, diff), torch.autograd.grad(ref_loss, diff)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("use_eps,use_masks,clip", [(False, False, INF), (True, True, 0.5)])
def test_controller_generator_loop_gradcheck_all_outputs(use_eps: bool, use_masks: bool, clip: float) -> None:
    diff, eps, masks = _loop_inputs(7, 1.5, use_eps, use_masks)
    run = lambda *a: ControllerGeneratorLoop.apply(*a, eps, masks, clip)  # noqa: E731
    assert gradcheck(run, diff, eps=1e-6, atol=1e-6, fast_mode=True)


def test_controller_generator_loop_gradcheck_with_unused_outputs() -> None:
    diff, eps, masks = _loop_inputs(7, 1.5, True, True)
    run = lambda *a: _LoopWithNoneGrads.apply(*a, eps, masks, 0.5)[1]  # noqa: E731 - factors path only
    assert gradcheck(run, diff, eps=1e-6, atol=1e-6, fast_mode=True)


def test_controller_generator_loop_with_bias_only_external_gates_equals_broadcast_gates() -> None:
    """Without external inputs the loop takes the generator's input bias ``(3Gd,)`` instead of ``(T, B, 3Gd)``."""
    diff, eps, masks = _loop_inputs(11, 1.5, True, True)
    bias = torch.randn(diff[1].shape[-1], dtype=F64, requires_grad=True)
    broadcast = [*diff[:1], bias.expand_as(diff[1]), *diff[2:]]
    with_bias = [*diff[:1], bias, *diff[2:]]
    got = ControllerGeneratorLoop.apply(*with_bias, eps, masks, 0.5)
    expected = ControllerGeneratorLoop.apply(*broadcast, eps, masks, 0.5)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    loss, ref_loss = (sum(o.pow(2).sum() for o in out) for out in (got, expected))
    leaves = [bias, *diff[2:]]
    for a, b in zip(torch.autograd.grad(loss, leaves), torch.autograd.grad(ref_loss, leaves)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    run = lambda *a: ControllerGeneratorLoop.apply(*a, eps, masks, 0.5)  # noqa: E731
    assert gradcheck(run, with_bias, eps=1e-6, atol=1e-6, fast_mode=True)


def test_controller_generator_loop_without_masks_returns_generator_states_twice() -> None:
    diff, eps, _ = _loop_inputs(10, 1.0, True, False)
    gen, dropped, *_ = ControllerGeneratorLoop.apply(*diff, eps, None, INF)
    torch.testing.assert_close(dropped, gen, rtol=0, atol=0)
    assert dropped.data_ptr() != gen.data_ptr()


# ---------------------------------------------------------------------------- Decoder / Encoder, fused vs autograd
def _pair(cls, kwargs: dict, seed: int) -> tuple[nn.Module, nn.Module]:
    """Two copies of a module; the second always runs the plain autograd loops (recurrence backend "reference")."""
    torch.manual_seed(seed)
    fused = cls(**kwargs).double()
    plain = cls(**kwargs).double()
    plain.load_state_dict(fused.state_dict())
    plain.forward = _on_reference_backend(plain.forward)
    return fused, plain


def _on_reference_backend(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with set_recurrence_backend("reference"):
            return forward(*args, **kwargs)

    return run


def _weighted_loss(outputs, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return sum((o * torch.randn(o.shape, generator=g, dtype=F64)).sum() for o in outputs if o is not None)


def _compare_grads(fused: nn.Module, plain: nn.Module, extra: list[tuple[Tensor, Tensor]]) -> None:
    pf, pp = dict(fused.named_parameters()), dict(plain.named_parameters())
    checked = 0
    for name, p in pf.items():
        if p.grad is None and pp[name].grad is None:
            continue
        assert p.grad is not None and pp[name].grad is not None, name
        torch.testing.assert_close(p.grad, pp[name].grad, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")
        checked += 1
    assert checked >= len(pf) // 2
    for a, b in extra:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


DECODER_CASES = {
    "controller_train_sampled": dict(con_dim=4, co_dim=2, ext=2, clip=5.0, train=True, sample=True, scale=1.0),
    "controller_eval_means": dict(con_dim=4, co_dim=2, ext=0, clip=5.0, train=False, sample=False, scale=1.0),
    "controller_train_no_ext": dict(con_dim=4, co_dim=2, ext=0, clip=5.0, train=True, sample=True, scale=1.0),
    "controller_clip_active": dict(con_dim=4, co_dim=2, ext=2, clip=0.3, train=True, sample=True, scale=3.0),
    "autonomous_train": dict(con_dim=0, co_dim=0, ext=2, clip=5.0, train=True, sample=True, scale=1.0),
    "autonomous_clip_active": dict(con_dim=0, co_dim=0, ext=0, clip=0.3, train=True, sample=True, scale=3.0),
}


@pytest.mark.parametrize("case", sorted(DECODER_CASES))
def test_fused_decoder_matches_autograd_decoder(case: str) -> None:
    c = DECODER_CASES[case]
    batch, n_steps, ci_dim = 3, 5, 6
    kwargs = dict(
        ic_dim=3, gen_dim=5, con_dim=c["con_dim"], co_dim=c["co_dim"], ci_dim=ci_dim, ext_input_dim=c["ext"],
        fac_dim=3, cell_clip=c["clip"], dropout_rate=0.3,
    )
    fused, plain = _pair(Decoder, kwargs, seed=11)
    if c["scale"] != 1.0:
        with torch.no_grad():
            for p in list(fused.parameters()):
                p.mul_(c["scale"])
        plain.load_state_dict(fused.state_dict())
    fused.train(c["train"])
    plain.train(c["train"])
    g = torch.Generator().manual_seed(12)
    ic_in = torch.randn(batch, 3, generator=g, dtype=F64)
    ci_in = torch.randn(batch, n_steps, ci_dim, generator=g, dtype=F64) if c["con_dim"] else None
    ext_in = torch.randn(batch, n_steps, c["ext"], generator=g, dtype=F64)
    results = []
    for model in (fused, plain):
        ic = ic_in.clone().requires_grad_(True)
        ci = ci_in.clone().requires_grad_(True) if ci_in is not None else None
        ext = ext_in.clone().requires_grad_(True)
        torch.manual_seed(13)
        out = model(ic, ci, ext, sample=c["sample"])
        _weighted_loss(out, seed=14).backward()
        results.append((out, ic, ci, ext))
    (out_f, ic_f, ci_f, ext_f), (out_p, ic_p, ci_p, ext_p) = results
    co = c["co_dim"]
    for name, a, b in zip(out_f._fields, out_f, out_p):
        expected_dim = {"gen_states": 5, "gen_init": 5, "factors": 3, "con_states": c["con_dim"]}.get(name, co)
        expected_shape = (batch, expected_dim) if name == "gen_init" else (batch, n_steps, expected_dim)
        assert a.shape == expected_shape, name
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=lambda m: f"{name}: {m}")
    if c["clip"] < 1:
        assert (out_f.gen_states.abs() >= c["clip"] - 1e-12).any() and (out_f.gen_states.abs() < c["clip"]).any()
    if c["sample"] and co:
        assert not torch.allclose(out_f.inferred_inputs, out_f.co_means)
    elif co:
        torch.testing.assert_close(out_f.inferred_inputs, out_f.co_means, rtol=0, atol=0)
    extra = [(ic_f.grad, ic_p.grad)]
    if c["ext"]:
        extra.append((ext_f.grad, ext_p.grad))
    if ci_f is not None:
        extra.append((ci_f.grad, ci_p.grad))
    _compare_grads(fused, plain, extra)


ENCODER_CASES = {
    "joint_encoders": dict(ci_enc_dim=4, lead=0, lag=1, extra_bins=0, use_ci=True),
    "lag0_forward_bins": dict(ci_enc_dim=4, lead=0, lag=0, extra_bins=2, use_ci=True),
    "ic_only_bins_lag2": dict(ci_enc_dim=4, lead=2, lag=2, extra_bins=1, use_ci=True),
    "different_sizes": dict(ci_enc_dim=3, lead=0, lag=2, extra_bins=0, use_ci=True),
    "no_controller": dict(ci_enc_dim=4, lead=0, lag=1, extra_bins=0, use_ci=False),
}


@pytest.mark.parametrize("case", sorted(ENCODER_CASES))
def test_fused_encoder_matches_autograd_encoder(case: str) -> None:
    c = ENCODER_CASES[case]
    batch, t_enc, n_in = 3, 7, 4
    recon_len = t_enc + c["extra_bins"]
    kwargs = dict(
        input_dim=n_in, ic_enc_dim=4, ci_enc_dim=c["ci_enc_dim"], ic_dim=3, use_ci=c["use_ci"],
        ic_enc_seq_len=c["lead"], ci_lag=c["lag"], recon_seq_len=recon_len, dropout_rate=0.25, ic_post_var_min=1e-4,
    )
    fused, plain = _pair(Encoder, kwargs, seed=21)
    with torch.no_grad():
        for m in (fused, plain):
            for enc in (m.ic_enc, m.ci_enc):
                if enc is not None:
                    enc.h0.copy_(torch.linspace(-0.3, 0.3, enc.h0.numel(), dtype=F64).view_as(enc.h0))
    x_in = torch.randn(batch, t_enc, n_in, generator=torch.Generator().manual_seed(22), dtype=F64)
    results = []
    for model in (fused, plain):
        model.train()
        x = x_in.clone().requires_grad_(True)
        torch.manual_seed(23)
        out = model(x)
        _weighted_loss(out, seed=24).backward()
        results.append((out, x))
    (out_f, x_f), (out_p, x_p) = results
    for a, b in zip(out_f, out_p):
        if a is None:
            assert b is None
            continue
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    ic_mean, ic_std, ci = out_f
    assert ic_mean.shape == ic_std.shape == (batch, 3)
    if c["use_ci"]:
        assert ci.shape == (batch, recon_len, 2 * c["ci_enc_dim"])
        # No CI information over the IC-only leading bins and the forward-prediction bins.
        assert (ci[:, : c["lead"]] == 0).all() and (ci[:, t_enc:] == 0).all()
    else:
        assert ci is None
    _compare_grads(fused, plain, [(x_f.grad, x_p.grad)])


def test_encoder_ci_lag_shifts_directions_in_opposite_ways() -> None:
    """ci_t = [fwd_{t-l}; bwd_{t+l}], zero outside the sequence."""
    torch.manual_seed(31)
    lag, t_enc, hid = 2, 6, 3
    kw = dict(input_dim=2, ic_enc_dim=3, ci_enc_dim=hid, ic_dim=2, use_ci=True, ic_enc_seq_len=0,
              recon_seq_len=t_enc, dropout_rate=0.0, ic_post_var_min=1e-4)
    enc0 = Encoder(**kw, ci_lag=0).double().eval()
    enc2 = Encoder(**kw, ci_lag=lag).double().eval()
    enc2.load_state_dict(enc0.state_dict())
    x = torch.randn(2, t_enc, 2, dtype=F64)
    with set_recurrence_backend("reference"):
        ci0, ci2 = enc0(x)[2], enc2(x)[2]
    torch.testing.assert_close(ci2[:, lag:, :hid], ci0[:, :-lag, :hid])
    torch.testing.assert_close(ci2[:, :-lag, hid:], ci0[:, lag:, hid:])
    assert (ci2[:, :lag, :hid] == 0).all() and (ci2[:, -lag:, hid:] == 0).all()


def test_encoder_ic_posterior_std_includes_variance_floor() -> None:
    torch.manual_seed(32)
    enc = Encoder(2, 3, 3, 2, False, 0, 0, 4, 0.0, ic_post_var_min=0.5).double().eval()
    with torch.no_grad():
        enc.ic_linear.weight.zero_()
        enc.ic_linear.bias.copy_(torch.tensor([0.0, 0.0, math.log(0.25), math.log(1.0)], dtype=F64))
    _, std, _ = enc(torch.randn(3, 4, 2, dtype=F64))
    torch.testing.assert_close(std, torch.tensor([[0.75**0.5, 1.5**0.5]], dtype=F64).expand(3, 2))
