// Time loops of lfads.modules.recurrence, and of the cells of lfads.population.recurrence, in C++
// (CPU, float32 and float64).
//
// The Python loops are the reference; these do the same arithmetic,
// step for step, with two differences that matter for speed on a CPU:
//   - one call per sequence instead of ~20 Python-dispatched operations per step;
//   - each GRU step's elementwise work (gates, candidate, update, clip, and the whole
//     backward step) is one pass over the rows, vectorized by the compiler, instead of
//     a dozen separate tensor operations.
// Matrix products stay ATen calls (BLAS). Weight gradients, which do not depend on the
// step order, are left to the Python side (one batched product each).
//
// GRU step with precomputed input gates a = W_ih x + b_ih and g = W_hh h + b_hh
// (torch.nn.GRUCell gate order r, z, n):
//   r = sigmoid(a_r + g_r), z = sigmoid(a_z + g_z), n = tanh(a_n + r * g_n),
//   h' = clip(n + z * (h - n)).
// The cache row of a step holds [r, z, n, g_n] (4H values).

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>

#include <cmath>
#include <limits>
#include <vector>

namespace {

// Above this argument the logistic rounds to exactly 1 in T (1 - e^{-x} within half an ulp of 1:
// x >= 25 ln 2 for float, 54 ln 2 for double).
template <typename T>
constexpr T saturation() {
  return sizeof(T) == sizeof(float) ? T(17.4) : T(37.5);
}

// The argument is clamped to [-80, 80], where the logistic is 0 or 1 to within 2e-35, so exp never
// overflows: under -ffast-math the division may run as a reciprocal estimate refined by a Newton
// step, which turns 1 / inf into NaN. That estimate is not exact, so 1 / (1 + e^{-x}) can come out a
// few ulp below 1 where the logistic is 1; past saturation<T>() the result is set to 1, so a saturated
// gate passes exactly no gradient, as in torch.sigmoid.
template <typename T>
inline T sigmoid(T x) {
  x = x > T(80) ? T(80) : (x < T(-80) ? T(-80) : x);
  T s = T(1) / (T(1) + std::exp(-x));
  return x > saturation<T>() ? T(1) : s;
}

// tanh through the logistic function: the compiler vectorizes exp but not tanh.
template <typename T>
inline T tanh_(T x) {
  return T(2) * sigmoid(T(2) * x) - T(1);
}

// Rows per task when a step's rows are split over threads: only steps of at least ~32k
// elements (ATen's own grain size) are worth splitting.
inline int64_t row_grain(int64_t H) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(H, 1));
}

// Forward of one GRU row of H units: input gates ar (3H), recurrent gates gr (3H), state ph; writes the new
// state po and the cache row cr (4H). Without a clip, lo = -inf, hi = inf.
template <typename T>
inline void gru_row(const T* __restrict ar, const T* __restrict gr, const T* __restrict ph, T* __restrict po,
                    T* __restrict cr, int64_t H, T lo, T hi) {
  const T* __restrict az = ar + H;
  const T* __restrict an = ar + 2 * H;
  const T* __restrict gz = gr + H;
  const T* __restrict gn = gr + 2 * H;
  T* __restrict cz = cr + H;
  T* __restrict cn = cr + 2 * H;
  T* __restrict cg = cr + 3 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T r = sigmoid(ar[j] + gr[j]);
    T z = sigmoid(az[j] + gz[j]);
    T g_n = gn[j];
    T n = tanh_(an[j] + r * g_n);
    T hv = n + z * (ph[j] - n);
    po[j] = hv > hi ? hi : (hv < lo ? lo : hv);
    cr[j] = r;
    cz[j] = z;
    cn[j] = n;
    cg[j] = g_n;
  }
}

// Forward of one GRU step over `rows` rows. a, g: rows x 3H (row strides a_rs, 3H);
// h: rows x H; writes h_out (rows x H) and cache (rows x 4H).
template <typename T>
void gru_step_rows(const T* a, int64_t a_rs, const T* g, const T* h, T* h_out, T* cache, int64_t rows,
                   int64_t H, T lo, T hi) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      gru_row(a + b * a_rs, g + b * 3 * H, h + b * H, h_out + b * H, cache + b * 4 * H, H, lo, hi);
  });
}

// Backward of one GRU row. pd: gradient reaching the new state pn; ph: the previous state; cr: the cache
// row. Writes the gradients of the input gates (ar), of the recurrent gates (gr) and the direct part
// z * dp of the previous state's gradient (pp). The clip passes gradient where |h'| < clip (always,
// without a clip).
template <typename T>
inline void gru_row_backward(const T* __restrict pd, const T* __restrict pn, const T* __restrict ph,
                             const T* __restrict cr, T* __restrict ar, T* __restrict gr, T* __restrict pp, int64_t H,
                             bool has_clip, T clip) {
  const T* __restrict cz = cr + H;
  const T* __restrict cn = cr + 2 * H;
  const T* __restrict cg = cr + 3 * H;
  T* __restrict az = ar + H;
  T* __restrict an = ar + 2 * H;
  T* __restrict gz = gr + H;
  T* __restrict gn = gr + 2 * H;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T dp = pd[j];
    if (has_clip) dp = std::abs(pn[j]) < clip ? dp : T(0);
    T r = cr[j], z = cz[j], n = cn[j];
    T dpz = dp * z;
    T dan = (dp - dpz) * (T(1) - n * n);
    T daz = dp * (ph[j] - n) * (z - z * z);
    T dar = dan * cg[j] * (r - r * r);
    ar[j] = dar;
    az[j] = daz;
    an[j] = dan;
    gr[j] = dar;
    gz[j] = daz;
    gn[j] = dan * r;
    pp[j] = dpz;
  }
}

// Backward of one GRU step over `rows` contiguous rows (gru_row_backward).
template <typename T>
void gru_step_backward_rows(const T* dh_new, const T* h_new, const T* h, const T* cache, T* da, T* dg, T* dh_part,
                            int64_t rows, int64_t H, bool has_clip, T clip) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      gru_row_backward(dh_new + b * H, h_new + b * H, h + b * H, cache + b * 4 * H, da + b * 3 * H,
                       dg + b * 3 * H, dh_part + b * H, H, has_clip, clip);
  });
}

void check_cpu_contiguous(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// ------------------------------------------------------------------------------------------ GRUSequence
// gates (T, G, B, 3H), h0 (G, B, H), w_hh (G, 3H, H), b_hh (G, 3H).
// Returns states (T + 1, G, B, H) and the caches (T, G, B, 4H).
std::vector<at::Tensor> gru_sequence_forward(const at::Tensor& gates, const at::Tensor& h0, const at::Tensor& w_hh,
                                             const at::Tensor& b_hh, double clip) {
  check_cpu_contiguous(gates, "gates");
  const int64_t T = gates.size(0), G = gates.size(1), B = gates.size(2), H = h0.size(2);
  auto states = at::empty({T + 1, G, B, H}, gates.options());
  auto cache = at::empty({T, G, B, 4 * H}, gates.options());
  states[0].copy_(h0);
  auto w_hh_t = w_hh.transpose(1, 2);
  auto bias = b_hh.unsqueeze(1);
  auto g = at::empty({G, B, 3 * H}, gates.options());
  const bool has_clip = std::isfinite(clip);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_sequence_forward", [&] {
    const scalar_t hi = has_clip ? static_cast<scalar_t>(clip) : std::numeric_limits<scalar_t>::max();
    for (int64_t t = 0; t < T; ++t) {
      at::baddbmm_out(g, bias, states[t], w_hh_t);
      gru_step_rows<scalar_t>(gates[t].data_ptr<scalar_t>(), 3 * H, g.data_ptr<scalar_t>(),
                              states[t].data_ptr<scalar_t>(), states[t + 1].data_ptr<scalar_t>(),
                              cache[t].data_ptr<scalar_t>(), G * B, H, -hi, hi);
    }
  });
  return {states, cache};
}

// d_states (T + 1, G, B, H). Returns da (T, G, B, 3H), dg (T, G, B, 3H), dh0 (G, B, H).
std::vector<at::Tensor> gru_sequence_backward(const at::Tensor& d_states_in, const at::Tensor& states,
                                              const at::Tensor& cache, const at::Tensor& w_hh, double clip) {
  auto d_states = d_states_in.contiguous();
  const int64_t T = cache.size(0), G = cache.size(1), B = cache.size(2), H = states.size(3);
  auto da = at::empty({T, G, B, 3 * H}, states.options());
  auto dg = at::empty({T, G, B, 3 * H}, states.options());
  auto part = at::empty({G, B, H}, states.options());
  auto dh = d_states[T].clone();
  const bool has_clip = std::isfinite(clip);
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "gru_sequence_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      gru_step_backward_rows<scalar_t>(dh.data_ptr<scalar_t>(), states[t + 1].data_ptr<scalar_t>(),
                                       states[t].data_ptr<scalar_t>(), cache[t].data_ptr<scalar_t>(),
                                       da[t].data_ptr<scalar_t>(), dg[t].data_ptr<scalar_t>(),
                                       part.data_ptr<scalar_t>(), G * B, H, has_clip, static_cast<scalar_t>(clip));
      at::baddbmm_out(dh, part, dg[t], w_hh);
      dh.add_(d_states[t]);
    }
  });
  return {da, dg, dh};
}

// ------------------------------------------------------------------------------- ControllerGeneratorLoop
// See ControllerGeneratorLoop in recurrence.py for the argument list. ext_gates is (T, B, 3Gd) or (3Gd,).
// Returns gen, drop (undefined without masks), con, cop, u_all, std_all (undefined without eps),
// cache_c (T, B, 4C), cache_g (T, B, 4Gd).
std::vector<at::Tensor> controller_generator_forward(
    const at::Tensor& ci_gates, const at::Tensor& ext_gates, const at::Tensor& g0, const at::Tensor& c0,
    const at::Tensor& cf_t, const at::Tensor& wc_hh, const at::Tensor& bc_hh, const at::Tensor& wco,
    const at::Tensor& bco, const at::Tensor& wu, const at::Tensor& wg_hh, const at::Tensor& bg_hh,
    const c10::optional<at::Tensor>& eps_opt, const c10::optional<at::Tensor>& masks_opt, double clip) {
  check_cpu_contiguous(ci_gates, "ci_gates");
  check_cpu_contiguous(ext_gates, "ext_gates");
  const int64_t T = ci_gates.size(0), B = ci_gates.size(1), C = c0.size(-1), Gd = g0.size(-1), co = wu.size(1);
  auto opt = g0.options();
  auto gen = at::empty({T + 1, B, Gd}, opt);
  auto con = at::empty({T + 1, B, C}, opt);
  gen[0].copy_(g0);
  con[0].copy_(c0);
  const bool has_masks = masks_opt.has_value() && masks_opt->defined();
  const bool has_eps = eps_opt.has_value() && eps_opt->defined();
  at::Tensor masks = has_masks ? masks_opt->contiguous() : at::Tensor();
  at::Tensor eps = has_eps ? eps_opt->contiguous() : at::Tensor();
  at::Tensor drop = gen;
  if (has_masks) {
    drop = at::empty_like(gen);
    auto d0 = drop[0];
    at::mul_out(d0, gen[0], masks[0]);
  }
  auto cop = at::empty({T, B, 2 * co}, opt);
  auto u_all = at::empty({T, B, co}, opt);
  at::Tensor std_all = has_eps ? at::empty({T, B, co}, opt) : at::Tensor();
  auto cache_c = at::empty({T, B, 4 * C}, opt);
  auto cache_g = at::empty({T, B, 4 * Gd}, opt);
  auto wc_hh_t = wc_hh.t(), wco_t = wco.t(), wu_t = wu.t(), wg_hh_t = wg_hh.t();
  auto xc = at::empty({B, 3 * C}, opt), gc = at::empty({B, 3 * C}, opt);
  auto xg = at::empty({B, 3 * Gd}, opt), gg = at::empty({B, 3 * Gd}, opt);
  const bool ext_is_bias = ext_gates.dim() == 1;
  const bool has_clip = std::isfinite(clip);
  AT_DISPATCH_FLOATING_TYPES(g0.scalar_type(), "controller_generator_forward", [&] {
    const scalar_t hi = has_clip ? static_cast<scalar_t>(clip) : std::numeric_limits<scalar_t>::max();
    for (int64_t t = 0; t < T; ++t) {
      at::addmm_out(xc, ci_gates[t], drop[t], cf_t);
      at::addmm_out(gc, bc_hh, con[t], wc_hh_t);
      gru_step_rows<scalar_t>(xc.data_ptr<scalar_t>(), 3 * C, gc.data_ptr<scalar_t>(), con[t].data_ptr<scalar_t>(),
                              con[t + 1].data_ptr<scalar_t>(), cache_c[t].data_ptr<scalar_t>(), B, C, -hi, hi);
      auto cop_t = cop[t];
      at::addmm_out(cop_t, bco, con[t + 1], wco_t);
      const scalar_t* pc = cop_t.data_ptr<scalar_t>();
      scalar_t* pu = u_all[t].data_ptr<scalar_t>();
      if (has_eps) {
        const scalar_t* pe = eps[t].data_ptr<scalar_t>();
        scalar_t* ps = std_all[t].data_ptr<scalar_t>();
        for (int64_t b = 0; b < B; ++b)
          for (int64_t k = 0; k < co; ++k) {
            scalar_t s = std::exp(pc[b * 2 * co + co + k] * scalar_t(0.5));
            ps[b * co + k] = s;
            pu[b * co + k] = pc[b * 2 * co + k] + s * pe[b * co + k];
          }
      } else {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t k = 0; k < co; ++k) pu[b * co + k] = pc[b * 2 * co + k];
      }
      at::addmm_out(xg, ext_is_bias ? ext_gates : ext_gates[t], u_all[t], wu_t);
      at::addmm_out(gg, bg_hh, gen[t], wg_hh_t);
      gru_step_rows<scalar_t>(xg.data_ptr<scalar_t>(), 3 * Gd, gg.data_ptr<scalar_t>(), gen[t].data_ptr<scalar_t>(),
                              gen[t + 1].data_ptr<scalar_t>(), cache_g[t].data_ptr<scalar_t>(), B, Gd, -hi, hi);
      if (has_masks) {
        auto d = drop[t + 1];
        at::mul_out(d, gen[t + 1], masks[t + 1]);
      }
    }
  });
  return {gen, has_masks ? drop : at::Tensor(), con, cop, u_all, std_all, cache_c, cache_g};
}

// Gradients of the five outputs (each may be undefined). Returns da_c (T, B, 3C), dgh_c, da_g (T, B, 3Gd),
// dgh_g, dps (T, B, 2co), dg0 (B, Gd), dc0 (B, C).
std::vector<at::Tensor> controller_generator_backward(
    const c10::optional<at::Tensor>& d_gen_o, const c10::optional<at::Tensor>& d_drop_o,
    const c10::optional<at::Tensor>& d_con_o, const c10::optional<at::Tensor>& d_cop_o,
    const c10::optional<at::Tensor>& d_u_o, const at::Tensor& gen, const at::Tensor& con,
    const at::Tensor& cache_c, const at::Tensor& cache_g, const at::Tensor& cf_t, const at::Tensor& wc_hh,
    const at::Tensor& wco, const at::Tensor& wu, const at::Tensor& wg_hh, const c10::optional<at::Tensor>& eps_o,
    const c10::optional<at::Tensor>& std_o, const c10::optional<at::Tensor>& masks_o, double clip) {
  auto get = [](const c10::optional<at::Tensor>& o) {
    return (o.has_value() && o->defined()) ? o->contiguous() : at::Tensor();
  };
  at::Tensor d_gen = get(d_gen_o), d_drop = get(d_drop_o), d_con = get(d_con_o), d_cop = get(d_cop_o),
             d_u = get(d_u_o), eps = get(eps_o), std_all = get(std_o), masks = get(masks_o);
  const int64_t T = cache_g.size(0), B = gen.size(1), C = con.size(-1), Gd = gen.size(-1), co = wu.size(1);
  auto opt = gen.options();
  auto da_c = at::empty({T, B, 3 * C}, opt), dgh_c = at::empty({T, B, 3 * C}, opt);
  auto da_g = at::empty({T, B, 3 * Gd}, opt), dgh_g = at::empty({T, B, 3 * Gd}, opt);
  auto dps = at::empty({T, B, 2 * co}, opt);
  auto part_g = at::empty({B, Gd}, opt), part_c = at::empty({B, C}, opt);
  auto dg_prev = at::empty({B, Gd}, opt), du_t = at::empty({co, B}, opt), dd = at::empty({B, Gd}, opt);
  auto cf = cf_t.t();
  auto wu_t = wu.t().contiguous();
  const bool has_clip = std::isfinite(clip);

  // Gradient reaching gen[t] directly and through drop[t] = gen[t] * masks[t]; `through_drop` may be undefined.
  auto grad_gen = [&](int64_t t, const at::Tensor& through_drop) {
    at::Tensor total = through_drop;
    if (d_drop.defined()) total = total.defined() ? total + d_drop[t] : d_drop[t].clone();
    if (total.defined() && masks.defined()) total = total * masks[t];
    if (d_gen.defined()) total = total.defined() ? total + d_gen[t] : d_gen[t].clone();
    return total.defined() ? total : at::zeros({B, Gd}, opt);
  };

  at::Tensor dg = grad_gen(T, at::Tensor()).contiguous();
  at::Tensor dc = d_con.defined() ? d_con[T].clone() : at::zeros({B, C}, opt);
  AT_DISPATCH_FLOATING_TYPES(gen.scalar_type(), "controller_generator_backward", [&] {
    const scalar_t c = static_cast<scalar_t>(clip);
    for (int64_t t = T - 1; t >= 0; --t) {
      gru_step_backward_rows<scalar_t>(dg.data_ptr<scalar_t>(), gen[t + 1].data_ptr<scalar_t>(),
                                       gen[t].data_ptr<scalar_t>(), cache_g[t].data_ptr<scalar_t>(),
                                       da_g[t].data_ptr<scalar_t>(), dgh_g[t].data_ptr<scalar_t>(),
                                       part_g.data_ptr<scalar_t>(), B, Gd, has_clip, c);
      at::addmm_out(dg_prev, part_g, dgh_g[t], wg_hh);
      // du^T = wu^T da_g^T, (co, B): BLAS is several times faster with the narrow operand first.
      at::mm_out(du_t, wu_t, da_g[t].t());
      scalar_t* pd = dps[t].data_ptr<scalar_t>();
      const scalar_t* pdu = du_t.data_ptr<scalar_t>();
      const scalar_t* pdux = d_u.defined() ? d_u[t].data_ptr<scalar_t>() : nullptr;
      const scalar_t* pe = eps.defined() ? eps[t].data_ptr<scalar_t>() : nullptr;
      const scalar_t* ps = eps.defined() ? std_all[t].data_ptr<scalar_t>() : nullptr;
      const scalar_t* pdc = d_cop.defined() ? d_cop[t].data_ptr<scalar_t>() : nullptr;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < co; ++k) {
          scalar_t m = pdu[k * B + b] + (pdux ? pdux[b * co + k] : scalar_t(0));
          scalar_t lv = pe ? m * pe[b * co + k] * ps[b * co + k] * scalar_t(0.5) : scalar_t(0);
          if (pdc) {
            m += pdc[b * 2 * co + k];
            lv += pdc[b * 2 * co + co + k];
          }
          pd[b * 2 * co + k] = m;
          pd[b * 2 * co + co + k] = lv;
        }
      dc.addmm_(dps[t], wco);
      gru_step_backward_rows<scalar_t>(dc.data_ptr<scalar_t>(), con[t + 1].data_ptr<scalar_t>(),
                                       con[t].data_ptr<scalar_t>(), cache_c[t].data_ptr<scalar_t>(),
                                       da_c[t].data_ptr<scalar_t>(), dgh_c[t].data_ptr<scalar_t>(),
                                       part_c.data_ptr<scalar_t>(), B, C, has_clip, c);
      at::addmm_out(dc, part_c, dgh_c[t], wc_hh);
      if (d_con.defined()) dc.add_(d_con[t]);
      at::mm_out(dd, da_c[t], cf);
      dg = grad_gen(t, dd).add_(dg_prev).contiguous();
    }
  });
  return {da_c, dgh_c, da_g, dgh_g, dps, dg, dc};
}

// ------------------------------------------------------------------------------ Population cells
// The cells of lfads.population.cells, N networks stacked on a leading axis, network first: every
// per-step array is (N, T, B, W), so the input drive comes straight from one batched product per
// trial and the weight gradients are batched products over (T B) rows, without a change of layout
// (lfads.population.recurrence is the Python reference). Each step computes g = W_h h + b_h for all
// networks in one batched product, then one pass over the N B rows:
//   vanilla / ReLU: h' = tanh(d + g) or max(d + g, 0).
//   GRU (gates r, z, n, as gru_row): the cache holds [r, z, n, g_n].
//   UGRNN (gates u, c): u = sigmoid(.), c = tanh(.), h' = c + u (h - c); the cache holds [u, c].
//   LSTM (gates i, f, g, o; state [h; c]): c' = f c + i g, h' = o tanh(c'); the cache holds [i, f, g, o].
// Their backward steps, with dh the gradient reaching h' (and dc reaching c'):
//   vanilla: da = dh (1 - h'^2) (ReLU: dh [h' > 0]), dh_prev = da W_h.
//   GRU: gru_row_backward; dh_prev = z dh + dg W_h.
//   UGRNN: da_u = dh (h - c) u (1 - u), da_c = dh (1 - u)(1 - c^2), dh_prev = dh u + da W_h.
//   LSTM:  dc += dh o (1 - tanh(c')^2), da_i = dc g i (1 - i), da_f = dc c f (1 - f),
//          da_g = dc i (1 - g^2), da_o = dh tanh(c') o (1 - o), dc_prev = dc f, dh_prev = da W_h.

enum PopulationCell : int64_t { kUGRNN = 0, kLSTM = 1, kGRU = 2, kTanh = 3, kReLU = 4 };

// Row r = (network r / B, trial r % B) of one step of an (N, T, B, W) array (net = T B W) or of an (N, B, W)
// array (net = B W).
template <typename T>
struct Rows {
  T* base;
  int64_t net, width, B;
  T* operator()(int64_t r) const { return base + (r / B) * net + (r % B) * width; }
};

template <typename T>
Rows<T> step_rows(const at::Tensor& x, int64_t t) {  // x (N, T, B, W), step t
  const int64_t steps = x.size(1), B = x.size(2), W = x.size(3);
  return {x.data_ptr<T>() + t * B * W, steps * B * W, W, B};
}

template <typename T>
Rows<T> block_rows(const at::Tensor& x) {  // x (N, B, W)
  const int64_t B = x.size(1), W = x.size(2);
  return {x.data_ptr<T>(), B * W, W, B};
}

// The drive row d = W_i u + b of one network: I multiply-adds per gate, vectorized over the gates. w_t
// (I, G H) is the network's transposed input weight, bias (G H). Not inlined: inlined into the step, the
// compiler no longer vectorizes the multiply-adds.
template <typename T>
__attribute__((noinline)) void drive_row(const T* __restrict u, const T* __restrict w_t, const T* __restrict bias, T* __restrict d,
                      int64_t I, int64_t GH) {
#pragma omp simd
  for (int64_t j = 0; j < GH; ++j) d[j] = bias[j];
  for (int64_t i = 0; i < I; ++i) {
    const T ui = u[i];
    const T* __restrict w = w_t + i * GH;
#pragma omp simd
    for (int64_t j = 0; j < GH; ++j) d[j] += ui * w[j];
  }
}

template <typename T>
void population_step(int64_t cell, Rows<T> u, const T* w_t, const T* bias, Rows<T> g, Rows<T> prev, Rows<T> out,
                     Rows<T> cache, int64_t rows, int64_t I, int64_t H) {
  const int64_t GH = g.width;  // the recurrent term's rows have the drive's G H columns
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  std::vector<T> d_row(GH);
  for (int64_t r = begin; r < end; ++r) {
    const int64_t k = r / g.B;
    drive_row(u(r), w_t + k * I * GH, bias + k * GH, d_row.data(), I, GH);
    const T* __restrict pd = d_row.data();
    const T* __restrict pg = g(r);
    const T* __restrict ph = prev(r);
    T* __restrict po = out(r);
    if (cell == kGRU) {
      gru_row(pd, pg, ph, po, cache(r), H, -std::numeric_limits<T>::infinity(), std::numeric_limits<T>::infinity());
    } else if (cell == kTanh) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) po[j] = tanh_(pd[j] + pg[j]);
    } else if (cell == kReLU) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        T a = pd[j] + pg[j];
        po[j] = a > T(0) ? a : T(0);
      }
    } else if (cell == kUGRNN) {
      T* __restrict cu = cache(r);
      T* __restrict cc = cu + H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        T u = sigmoid(pd[j] + pg[j]);
        T c = tanh_(pd[H + j] + pg[H + j]);
        cu[j] = u;
        cc[j] = c;
        po[j] = c + u * (ph[j] - c);
      }
    } else {  // kLSTM
      T* __restrict ci = cache(r);
      const T* __restrict pc = ph + H;
      T* __restrict oc = po + H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        T i = sigmoid(pd[j] + pg[j]), f = sigmoid(pd[H + j] + pg[H + j]);
        T g_ = tanh_(pd[2 * H + j] + pg[2 * H + j]), o = sigmoid(pd[3 * H + j] + pg[3 * H + j]);
        T c = f * pc[j] + i * g_;
        ci[j] = i;
        ci[H + j] = f;
        ci[2 * H + j] = g_;
        ci[3 * H + j] = o;
        oc[j] = c;
        po[j] = o * tanh_(c);
      }
    }
  }
  });
}

// One backward step. grad: gradient reaching the new state from outside the recurrence; carry (rows x H, and
// carry_c for the LSTM): the gradient reaching it through step t + 1, turned into the direct part of the
// previous state's gradient (the recurrent product is added by the caller). Writes da (the drive's gradient)
// and, for the GRU, dg (the recurrent gates' gradient).
template <typename T>
void population_step_backward(int64_t cell, Rows<T> grad, Rows<T> carry, Rows<T> carry_c, Rows<T> out,
                              Rows<T> prev, Rows<T> cache, Rows<T> da, Rows<T> dg, int64_t rows, int64_t H) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  std::vector<T> dh_gru(cell == kGRU ? H : 0);
  for (int64_t r = begin; r < end; ++r) {
    const T* __restrict pg = grad(r);
    T* __restrict pk = carry(r);
    const T* __restrict po = out(r);
    T* __restrict pa = da(r);
    if (cell == kGRU) {
      T* __restrict dh = dh_gru.data();
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) dh[j] = pg[j] + pk[j];
      gru_row_backward(dh, po, prev(r), cache(r), pa, dg(r), pk, H, false, T(0));
    } else if (cell == kTanh) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) pa[j] = (pg[j] + pk[j]) * (T(1) - po[j] * po[j]);
    } else if (cell == kReLU) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) pa[j] = po[j] > T(0) ? pg[j] + pk[j] : T(0);
    } else if (cell == kUGRNN) {
      const T* __restrict ph = prev(r);
      const T* __restrict cu = cache(r);
      const T* __restrict cc = cu + H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        T dh = pg[j] + pk[j];
        T u = cu[j], c = cc[j];
        pa[j] = dh * (ph[j] - c) * (u - u * u);
        pa[H + j] = (dh - dh * u) * (T(1) - c * c);
        pk[j] = dh * u;
      }
    } else {  // kLSTM
      const T* __restrict gcell = pg + H;
      T* __restrict kc = carry_c(r);
      const T* __restrict cn = po + H;
      const T* __restrict cp = prev(r) + H;
      const T* __restrict si = cache(r);
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        T dh = pg[j] + pk[j];
        T i = si[j], f = si[H + j], g = si[2 * H + j], o = si[3 * H + j];
        T tau = tanh_(cn[j]);
        T dc = gcell[j] + kc[j] + dh * o * (T(1) - tau * tau);
        pa[j] = dc * g * (i - i * i);
        pa[H + j] = dc * cp[j] * (f - f * f);
        pa[2 * H + j] = dc * i * (T(1) - g * g);
        pa[3 * H + j] = dh * tau * (o - o * o);
        kc[j] = dc * f;
      }
    }
  }
  });
}

int64_t cache_width(int64_t cell, int64_t H) {
  return cell == kUGRNN ? 2 * H : (cell == kLSTM || cell == kGRU ? 4 * H : 0);
}

// u (1 or N, T, B, I) inputs; w_ih (N, G H, I), b_ih (N, G H); h0 (N, B, S); w_hh (N, G H, H); b_hh (N, G H).
// Returns the states (N, T, B, S) and the cache (N, T, B, C) the backward reads (C = 0 for vanilla cells);
// without keep_cache, the cache of one step only (N, 1, B, C), overwritten each step.
// The drive W_i u_t + b_i is formed row by row inside the step (it is never stored); b_h joins it except in
// the GRU, whose candidate gate needs W_h h + b_h on its own.
std::vector<at::Tensor> population_forward(int64_t cell, const at::Tensor& u, const at::Tensor& w_ih,
                                           const at::Tensor& b_ih, const at::Tensor& h0, const at::Tensor& w_hh,
                                           const at::Tensor& b_hh, bool keep_cache) {
  check_cpu_contiguous(u, "u");
  TORCH_CHECK(cell >= kUGRNN && cell <= kReLU, "population_forward: unknown cell ", cell);
  const int64_t N = w_hh.size(0), T = u.size(1), B = u.size(2), I = u.size(3), GH = w_hh.size(1), H = w_hh.size(2);
  TORCH_CHECK(u.size(0) == 1 || u.size(0) == N, "population_forward: inputs for ", u.size(0), " networks, not 1 or ", N);
  const int64_t S = cell == kLSTM ? 2 * H : H;
  auto h0c = h0.contiguous();
  auto states = at::empty({N, T, B, S}, u.options());
  auto cache = at::empty({N, keep_cache ? T : 1, B, cache_width(cell, H)}, u.options());
  auto w_t = w_hh.transpose(1, 2);
  auto wi_t = w_ih.transpose(1, 2).contiguous();
  auto bias_in = (cell == kGRU ? b_ih : b_ih + b_hh).contiguous();
  auto bias_rec = b_hh.unsqueeze(1);
  auto g = at::empty({N, B, GH}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "population_forward", [&] {
    Rows<scalar_t> ur = step_rows<scalar_t>(u, 0);
    if (u.size(0) == 1) ur.net = 0;  // one set of inputs for all networks
    for (int64_t t = 0; t < T; ++t) {
      const at::Tensor prev = (t == 0 ? h0c : states.select(1, t - 1)).narrow(2, 0, H);
      if (cell == kGRU) {
        at::baddbmm_out(g, bias_rec, prev, w_t);
      } else {
        at::bmm_out(g, prev, w_t);
      }
      const Rows<scalar_t> p = t == 0 ? block_rows<scalar_t>(h0c) : step_rows<scalar_t>(states, t - 1);
      population_step<scalar_t>(cell, ur, wi_t.data_ptr<scalar_t>(), bias_in.data_ptr<scalar_t>(),
                                 block_rows<scalar_t>(g), p, step_rows<scalar_t>(states, t),
                                 step_rows<scalar_t>(cache, keep_cache ? t : 0), N * B, I, H);
      ur.base += B * I;
    }
  });
  return {states, cache};
}

// grad (N, T, B, S) reaching the states; the states, h0 and cache (kept) of the forward pass. Returns the
// gradients at the drive W_i u + b_i (N, T, B, G H), at the recurrent term W_h h + b_h (the same tensor but
// for the GRU) and at h0 (N, B, S).
std::vector<at::Tensor> population_backward(int64_t cell, const at::Tensor& grad_in, const at::Tensor& states,
                                            const at::Tensor& h0, const at::Tensor& cache, const at::Tensor& w_hh) {
  TORCH_CHECK(cell >= kUGRNN && cell <= kReLU, "population_backward: unknown cell ", cell);
  auto grad = grad_in.contiguous();
  auto h0c = h0.contiguous();
  const int64_t N = states.size(0), T = states.size(1), B = states.size(2), H = w_hh.size(2);
  const int64_t GH = w_hh.size(1);
  auto da = at::empty({N, T, B, GH}, states.options());
  auto dg = cell == kGRU ? at::empty({N, T, B, GH}, states.options()) : da;
  auto carry = at::zeros({N, B, H}, states.options());
  auto carry_c = at::zeros({N, B, H}, states.options());
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "population_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      const Rows<scalar_t> p = t == 0 ? block_rows<scalar_t>(h0c) : step_rows<scalar_t>(states, t - 1);
      population_step_backward<scalar_t>(cell, step_rows<scalar_t>(grad, t), block_rows<scalar_t>(carry),
                                         block_rows<scalar_t>(carry_c), step_rows<scalar_t>(states, t), p,
                                         step_rows<scalar_t>(cache, t), step_rows<scalar_t>(da, t),
                                         step_rows<scalar_t>(dg, t), N * B, H);
      // the direct part (GRU, UGRNN) plus the recurrent product; the vanilla cells and the LSTM have no direct part
      if (cell == kGRU || cell == kUGRNN) {
        carry.baddbmm_(dg.select(1, t), w_hh);
      } else {
        at::bmm_out(carry, dg.select(1, t), w_hh);
      }
    }
  });
  auto grad_h0 = cell == kLSTM ? at::cat({carry, carry_c}, 2) : carry;
  return {da, dg, grad_h0};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_sequence_forward", &gru_sequence_forward);
  m.def("gru_sequence_backward", &gru_sequence_backward);
  m.def("controller_generator_forward", &controller_generator_forward);
  m.def("controller_generator_backward", &controller_generator_backward);
  m.def("population_forward", &population_forward);
  m.def("population_backward", &population_backward);
}
