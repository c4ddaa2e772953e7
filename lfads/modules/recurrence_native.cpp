// Time loops of lfads.modules.recurrence, and of the UGRNN and LSTM cells of
// lfads.population.recurrence, in C++ (CPU, float32 and float64).
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

// Forward of one GRU step over `rows` rows. a, g: rows x 3H (row strides a_rs, 3H);
// h: rows x H; writes h_out (rows x H) and cache (rows x 4H). Without a clip, lo = -inf, hi = inf.
template <typename T>
void gru_step_rows(const T* a, int64_t a_rs, const T* g, const T* h, T* h_out, T* cache, int64_t rows,
                   int64_t H, T lo, T hi) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict ar = a + b * a_rs;
    const T* __restrict az = ar + H;
    const T* __restrict an = ar + 2 * H;
    const T* __restrict gr = g + b * 3 * H;
    const T* __restrict gz = gr + H;
    const T* __restrict gn = gr + 2 * H;
    const T* __restrict ph = h + b * H;
    T* __restrict po = h_out + b * H;
    T* __restrict cr = cache + b * 4 * H;
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
  });
}

// Backward of one GRU step. dh_new: gradient reaching h'; writes the gradients of the
// input gates (da), of the recurrent gates (dg) and the direct part z * dp of dh.
// The clip passes gradient where |h'| < clip (always, without a clip).
template <typename T>
void gru_step_backward_rows(const T* dh_new, const T* h_new, const T* h, const T* cache, T* da, T* dg, T* dh_part,
                            int64_t rows, int64_t H, bool has_clip, T clip) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict pd = dh_new + b * H;
    const T* __restrict pn = h_new + b * H;
    const T* __restrict ph = h + b * H;
    const T* __restrict cr = cache + b * 4 * H;
    const T* __restrict cz = cr + H;
    const T* __restrict cn = cr + 2 * H;
    const T* __restrict cg = cr + 3 * H;
    T* __restrict ar = da + b * 3 * H;
    T* __restrict az = ar + H;
    T* __restrict an = ar + 2 * H;
    T* __restrict gr = dg + b * 3 * H;
    T* __restrict gz = gr + H;
    T* __restrict gn = gr + 2 * H;
    T* __restrict pp = dh_part + b * H;
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
// The UGRNN and LSTM cells of lfads.population.cells, N networks stacked on a leading axis
// (lfads.population.recurrence is the Python reference). pre (T, N, B, G H) holds the drive plus
// b_h; each step adds W_h h and the gates are activated in place there, so after the forward pass
// pre holds the activated gates the backward reads.
//   UGRNN (gates g, c): g = sigmoid(.), c = tanh(.), h' = c + g (h - c).
//   LSTM (gates i, f, g, o; state [h; c]): c' = f c + i g, h' = o tanh(c').
// Their backward steps, with dh the gradient reaching h' (and dc reaching c'):
//   UGRNN: da_g = dh (h - c) g (1 - g), da_c = dh (1 - g)(1 - c^2), dh_prev = dh g + da W_h.
//   LSTM:  dc += dh o (1 - tanh(c')^2), da_i = dc g i (1 - i), da_f = dc c f (1 - f),
//          da_g = dc i (1 - g^2), da_o = dh tanh(c') o (1 - o), dc_prev = dc f, dh_prev = da W_h.

enum PopulationCell : int64_t { kUGRNN = 0, kLSTM = 1 };

template <typename T>
void ugrnn_step_rows(T* a, const T* h, T* h_out, int64_t rows, int64_t H) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    T* __restrict ag = a + b * 2 * H;
    T* __restrict ac = ag + H;
    const T* __restrict ph = h + b * H;
    T* __restrict po = h_out + b * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T g = sigmoid(ag[j]);
      T c = tanh_(ac[j]);
      ag[j] = g;
      ac[j] = c;
      po[j] = c + g * (ph[j] - c);
    }
  }
  });
}

// state and out: rows of [h; c] (2H).
template <typename T>
void lstm_step_rows(T* a, const T* state, T* out, int64_t rows, int64_t H) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    T* __restrict ai = a + b * 4 * H;
    T* __restrict af = ai + H;
    T* __restrict ag = ai + 2 * H;
    T* __restrict ao = ai + 3 * H;
    const T* __restrict pc = state + b * 2 * H + H;
    T* __restrict oh = out + b * 2 * H;
    T* __restrict oc = oh + H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T i = sigmoid(ai[j]), f = sigmoid(af[j]), g = tanh_(ag[j]), o = sigmoid(ao[j]);
      T c = f * pc[j] + i * g;
      ai[j] = i;
      af[j] = f;
      ag[j] = g;
      ao[j] = o;
      oc[j] = c;
      oh[j] = o * tanh_(c);
    }
  }
  });
}

// dh = grad + carry (rows x H); writes da (rows x 2H) and the direct part dh g into carry.
template <typename T>
void ugrnn_step_backward_rows(const T* grad, T* carry, const T* h, const T* gates, T* da, int64_t rows,
                              int64_t H) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict pg = grad + b * H;
    T* __restrict pk = carry + b * H;
    const T* __restrict ph = h + b * H;
    const T* __restrict gg = gates + b * 2 * H;
    const T* __restrict gc = gg + H;
    T* __restrict dg = da + b * 2 * H;
    T* __restrict dc = dg + H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T dh = pg[j] + pk[j];
      T g = gg[j], c = gc[j];
      dg[j] = dh * (ph[j] - c) * (g - g * g);
      dc[j] = (dh - dh * g) * (T(1) - c * c);
      pk[j] = dh * g;
    }
  }
  });
}

// grad, state_new and state_prev: rows of [h; c] (2H); carry_h, carry_c (rows x H). Writes da (rows x 4H)
// and dc f into carry_c.
template <typename T>
void lstm_step_backward_rows(const T* grad, const T* carry_h, T* carry_c, const T* state_new, const T* state_prev,
                             const T* gates, T* da, int64_t rows, int64_t H) {
  at::parallel_for(0, rows, row_grain(H), [&](int64_t begin, int64_t end) {
  for (int64_t b = begin; b < end; ++b) {
    const T* __restrict gh = grad + b * 2 * H;
    const T* __restrict gcell = gh + H;
    const T* __restrict kh = carry_h + b * H;
    T* __restrict kc = carry_c + b * H;
    const T* __restrict cn = state_new + b * 2 * H + H;
    const T* __restrict cp = state_prev + b * 2 * H + H;
    const T* __restrict si = gates + b * 4 * H;
    const T* __restrict sf = si + H;
    const T* __restrict sg = si + 2 * H;
    const T* __restrict so = si + 3 * H;
    T* __restrict di = da + b * 4 * H;
    T* __restrict df = di + H;
    T* __restrict dg = di + 2 * H;
    T* __restrict dout = di + 3 * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T dh = gh[j] + kh[j];
      T i = si[j], f = sf[j], g = sg[j], o = so[j];
      T tau = tanh_(cn[j]);
      T dc = gcell[j] + kc[j] + dh * o * (T(1) - tau * tau);
      di[j] = dc * g * (i - i * i);
      df[j] = dc * cp[j] * (f - f * f);
      dg[j] = dc * i * (T(1) - g * g);
      dout[j] = dh * tau * (o - o * o);
      kc[j] = dc * f;
    }
  }
  });
}

// pre (T, N, B, G H), activated in place; h0 (N, B, S); w_hh (N, G H, H). Returns states (T, N, B, S).
at::Tensor population_forward(int64_t cell, at::Tensor pre, const at::Tensor& h0, const at::Tensor& w_hh) {
  check_cpu_contiguous(pre, "pre");
  TORCH_CHECK(cell == kUGRNN || cell == kLSTM, "population_forward: unknown cell ", cell);
  const int64_t T = pre.size(0), N = pre.size(1), B = pre.size(2), H = w_hh.size(2);
  const int64_t S = cell == kLSTM ? 2 * H : H;
  auto h0c = h0.contiguous();
  auto states = at::empty({T, N, B, S}, pre.options());
  auto w_t = w_hh.transpose(1, 2);
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "population_forward", [&] {
    for (int64_t t = 0; t < T; ++t) {
      const at::Tensor prev = t == 0 ? h0c : states[t - 1];
      auto a = pre[t];
      a.baddbmm_(prev.narrow(2, 0, H), w_t);
      if (cell == kUGRNN) {
        ugrnn_step_rows<scalar_t>(a.data_ptr<scalar_t>(), prev.data_ptr<scalar_t>(), states[t].data_ptr<scalar_t>(),
                                  N * B, H);
      } else {
        lstm_step_rows<scalar_t>(a.data_ptr<scalar_t>(), prev.data_ptr<scalar_t>(), states[t].data_ptr<scalar_t>(),
                                 N * B, H);
      }
    }
  });
  return states;
}

// grad (T, N, B, S) reaching the states; states, h0 and the activated gates of the forward pass.
// Returns the gradients at the pre-activations (T, N, B, G H) and at h0 (N, B, S).
std::vector<at::Tensor> population_backward(int64_t cell, const at::Tensor& grad_in, const at::Tensor& states,
                                            const at::Tensor& h0, const at::Tensor& gates, const at::Tensor& w_hh) {
  TORCH_CHECK(cell == kUGRNN || cell == kLSTM, "population_backward: unknown cell ", cell);
  auto grad = grad_in.contiguous();
  auto h0c = h0.contiguous();
  const int64_t T = states.size(0), N = states.size(1), B = states.size(2), H = w_hh.size(2);
  const int64_t GH = w_hh.size(1);
  auto da = at::empty({T, N, B, GH}, states.options());
  auto carry_h = at::zeros({N, B, H}, states.options());
  auto carry_c = at::zeros({N, B, H}, states.options());
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "population_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      const at::Tensor prev = t == 0 ? h0c : states[t - 1];
      if (cell == kUGRNN) {
        // carry holds the gradient from step t + 1; it becomes dh g, then dh g + da W_h.
        ugrnn_step_backward_rows<scalar_t>(grad[t].data_ptr<scalar_t>(), carry_h.data_ptr<scalar_t>(),
                                           prev.data_ptr<scalar_t>(), gates[t].data_ptr<scalar_t>(),
                                           da[t].data_ptr<scalar_t>(), N * B, H);
        carry_h.baddbmm_(da[t], w_hh);
      } else {
        lstm_step_backward_rows<scalar_t>(grad[t].data_ptr<scalar_t>(), carry_h.data_ptr<scalar_t>(),
                                          carry_c.data_ptr<scalar_t>(), states[t].data_ptr<scalar_t>(),
                                          prev.data_ptr<scalar_t>(), gates[t].data_ptr<scalar_t>(),
                                          da[t].data_ptr<scalar_t>(), N * B, H);
        at::bmm_out(carry_h, da[t], w_hh);
      }
    }
  });
  auto grad_h0 = cell == kLSTM ? at::cat({carry_h, carry_c}, 2) : carry_h;
  return {da, grad_h0};
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
