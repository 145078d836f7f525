/* mixer_mlstm.c: xLSTM's mLSTM (matrix memory with exponential gating) in
 * the zoo's mixer frame: xc = conv4 + SiLU of the input; q = W_q xc,
 * k = W_k xc, v = W_v x (as xLSTM); per head i~ = W_i x + b_i,
 * f~ = W_f x + b_f; the stabilised cell of MODELS.md
 *   C_t = f' C_{t-1} + i' k v^T, n_t = f' n_{t-1} + i' k (k scaled by K^-1/2),
 *   h_t = C_t^T q / (max(|n_t^T q|, exp(-m_t)) + 1e-6),
 * out = W_o (norm(h) * silu(W_g x)) with a per-head RMSNorm (xLSTM's group
 * norm and silu(z) output gate). Unlike the xLSTM block there is no 2x
 * up-projection and no learnable skip: the projections keep width d as the
 * other mixers do, and the gates read x rather than [q, k, v].
 * The cell is two scan_delta calls sharing q, k and the decay f': the
 * numerator with values i' v and the normaliser with values i' (V = 1). */
#include <math.h>
#include "mixer.h"

enum { P_CONV, P_WQ, P_WK, P_WV, P_WI, P_BI, P_WF, P_BF, P_WG, P_NORM_O, P_WO, P_COUNT };

/* xLSTM's readout eps */
#define MLSTM_EPS 1e-6

/* xLSTM's forget-gate bias: linspace(lo, hi) over the heads */
static double init_linspace(const param_decl *decl, size_t i, uint64_t key)
{
    (void)key;
    const size_t n = (size_t)decl->rows * decl->cols;
    return n > 1 ? decl->lo + (decl->hi - decl->lo) * (double)i / (double)(n - 1) : decl->lo;
}

/* As xLSTM's mLSTM cell: gate weights 0, input-gate bias normal(0, 0.1),
 * forget-gate bias linspace(3, 6) (long memory at init: s(3..6) = 0.95..0.998). */
static int mlstm_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    const int H = spec->heads, V = d / H;
    out[P_CONV] = (param_decl){"conv", d, 4, INIT_UNIFORM, 0.5, 0};
    out[P_WQ] = (param_decl){"W_q", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WK] = (param_decl){"W_k", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WV] = (param_decl){"W_v", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WI] = (param_decl){"W_i", H, d, INIT_NORMAL, 0, 1};
    out[P_BI] = (param_decl){"b_i", H, 1, INIT_NORMAL, 0.1, 0};
    out[P_WF] = (param_decl){"W_f", H, d, INIT_NORMAL, 0, 1};
    out[P_BF] = (param_decl){.name = "b_f", .rows = H, .cols = 1, .init = INIT_CUSTOM,
                             .init_value = init_linspace, .lo = 3, .hi = 6};
    out[P_WG] = (param_decl){"W_g", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_NORM_O] = (param_decl){"norm_o.weight", V, 1, INIT_ONES, 0, 0};
    out[P_WO] = (param_decl){"W_o", d, d, INIT_NORMAL, init_std_residual(spec), 1};
    return P_COUNT;
}

typedef struct {
    real *conv_pre, *xc;       // (B,T,d) conv pre-activation and conv4 + SiLU
    real *q, *k, *v;           // (B,T,H,K) | (B,T,H,V)
    real *i_pre, *f_pre;       // (B,T,H) gate pre-activations
    real *igate, *fgate, *m;   // (B,T,H) i', f', the stabiliser m
    real *vi;                  // (B,T,H,V) i' v
    real *states;              // scan_delta_cache_len of the numerator
    real *num;                 // (B,T,H,V) C_t^T q scaled
    real *nq_states;           // scan_delta_cache_len with V = 1
    real *nq;                  // (B,T,H) n_t^T q scaled
    real *den;                 // (B,T,H) max(|nq|, exp(-m))
    real *h;                   // (B,T,H,V) num / (den + eps)
    real *rstd_o;              // (B,T,H)
    real *o_normed;            // (B,T,d)
    real *g;                   // (B,T,d) W_g x
    real *gated;               // (B,T,d) norm(h) * silu(g)
} mlstm_cache;

typedef struct {
    real *d_gated, *d_normed, *d_h, *dg; // (B,T,d)
    real *dnum, *dvi, *dv, *dq, *dk;     // (B,T,d)
    real *dden, *dnq, *dm;               // (B,T,H)
    real *digate, *dfgate;               // (B,T,H)
    real *di_pre, *df_pre;               // (B,T,H)
    real *dxc;                           // (B,T,d)
    real *scratch;                       // scan_delta_scratch_len, also for V = 1
} mlstm_work;

static size_t mlstm_cache_layout(mlstm_cache *c, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    c->conv_pre = carve(&cur, n);
    c->xc = carve(&cur, n);
    c->q = carve(&cur, n);
    c->k = carve(&cur, n);
    c->v = carve(&cur, n);
    c->i_pre = carve(&cur, nh);
    c->f_pre = carve(&cur, nh);
    c->igate = carve(&cur, nh);
    c->fgate = carve(&cur, nh);
    c->m = carve(&cur, nh);
    c->vi = carve(&cur, n);
    c->states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, K));
    c->num = carve(&cur, n);
    c->nq_states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, 1));
    c->nq = carve(&cur, nh);
    c->den = carve(&cur, nh);
    c->h = carve(&cur, n);
    c->rstd_o = carve(&cur, nh);
    c->o_normed = carve(&cur, n);
    c->g = carve(&cur, n);
    c->gated = carve(&cur, n);
    return cur.used;
}

static size_t mlstm_work_layout(mlstm_work *w, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    size_t scratch = scan_delta_scratch_len(m->B, m->T, H, K, K);
    const size_t nq_scratch = scan_delta_scratch_len(m->B, m->T, H, K, 1);
    if (nq_scratch > scratch) scratch = nq_scratch;
    carve_cursor cur = {base, 0};
    w->d_gated = carve(&cur, n);
    w->d_normed = carve(&cur, n);
    w->d_h = carve(&cur, n);
    w->dg = carve(&cur, n);
    w->dnum = carve(&cur, n);
    w->dvi = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->dq = carve(&cur, n);
    w->dk = carve(&cur, n);
    w->dden = carve(&cur, nh);
    w->dnq = carve(&cur, nh);
    w->dm = carve(&cur, nh);
    w->digate = carve(&cur, nh);
    w->dfgate = carve(&cur, nh);
    w->di_pre = carve(&cur, nh);
    w->df_pre = carve(&cur, nh);
    w->dxc = carve(&cur, n);
    w->scratch = carve(&cur, scratch);
    return cur.used;
}

static size_t mlstm_cache_len(const mixer_dims *m)
{
    mlstm_cache c;
    return mlstm_cache_layout(&c, NULL, m);
}

static size_t mlstm_work_len(const mixer_dims *m)
{
    mlstm_work w;
    return mlstm_work_layout(&w, NULL, m);
}

static void mlstm_forward(real *out, real *cache, real *work, const real *inp,
                          const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); per head K = V = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const real scale = (real)(1 / sqrt((double)K));
    mlstm_cache c;
    mlstm_cache_layout(&c, cache, m);
    conv4_silu_forward(c.xc, c.conv_pre, inp, w[P_CONV], B, T, d);
    matmul_forward(c.q, c.xc, w[P_WQ], NULL, N, d, d);
    matmul_forward(c.k, c.xc, w[P_WK], NULL, N, d, d);
    matmul_forward(c.v, inp, w[P_WV], NULL, N, d, d);
    matmul_forward(c.i_pre, inp, w[P_WI], w[P_BI], N, d, H);
    matmul_forward(c.f_pre, inp, w[P_WF], w[P_BF], N, d, H);
    mlstm_gates_forward(c.fgate, c.igate, c.m, c.f_pre, c.i_pre, B, T, H);
    head_scale_forward(c.vi, c.v, c.igate, N, H, K);
    scan_delta_forward(c.num, c.states, c.q, c.k, c.vi, NULL, c.fgate, B, T, H, K, K, scale);
    scan_delta_forward(c.nq, c.nq_states, c.q, c.k, c.igate, NULL, c.fgate, B, T, H, K, 1,
                       scale);
    mlstm_den_forward(c.den, c.nq, c.m, (size_t)N * H);
    rowdiv_forward(c.h, c.num, c.den, N * H, K, (real)MLSTM_EPS);
    rmsnorm_forward(c.o_normed, c.rstd_o, c.h, w[P_NORM_O], N * H, K);
    matmul_forward(c.g, inp, w[P_WG], NULL, N, d, d);
    silu_gate_forward(c.gated, c.o_normed, c.g, (size_t)N * d);
    matmul_forward(out, c.gated, w[P_WO], NULL, N, d, d);
}

static void mlstm_backward(real *dinp, real *const *dw, real *work, const real *dout,
                           const real *cache, const real *inp, const real *const *w,
                           const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d, nh = (size_t)N * H;
    const real scale = (real)(1 / sqrt((double)K));
    mlstm_cache c;
    mlstm_work k;
    mlstm_cache_layout(&c, (real *)cache, m);
    mlstm_work_layout(&k, work, m);

    zero_reals(k.d_gated, n);
    matmul_backward(k.d_gated, dw[P_WO], NULL, dout, c.gated, w[P_WO], N, d, d);
    zero_reals(k.d_normed, n);
    zero_reals(k.dg, n);
    silu_gate_backward(k.d_normed, k.dg, k.d_gated, c.o_normed, c.g, n);
    matmul_backward(dinp, dw[P_WG], NULL, k.dg, inp, w[P_WG], N, d, d);
    zero_reals(k.d_h, n);
    rmsnorm_backward(k.d_h, dw[P_NORM_O], k.d_normed, c.h, w[P_NORM_O], c.rstd_o, N * H, K);

    zero_reals(k.dnum, n);
    zero_reals(k.dden, nh);
    rowdiv_backward(k.dnum, k.dden, k.d_h, c.num, c.den, N * H, K, (real)MLSTM_EPS);
    zero_reals(k.dnq, nh);
    zero_reals(k.dm, nh);
    mlstm_den_backward(k.dnq, k.dm, k.dden, c.nq, c.m, nh);

    zero_reals(k.dq, n);
    zero_reals(k.dk, n);
    zero_reals(k.digate, nh);
    zero_reals(k.dfgate, nh);
    scan_delta_backward(k.dq, k.dk, k.digate, NULL, k.dfgate, k.scratch, k.dnq, c.nq_states,
                        c.q, c.k, c.igate, NULL, c.fgate, B, T, H, K, 1, scale);
    zero_reals(k.dvi, n);
    scan_delta_backward(k.dq, k.dk, k.dvi, NULL, k.dfgate, k.scratch, k.dnum, c.states, c.q,
                        c.k, c.vi, NULL, c.fgate, B, T, H, K, K, scale);
    zero_reals(k.dv, n);
    head_scale_backward(k.dv, k.digate, k.dvi, c.v, c.igate, N, H, K);

    zero_reals(k.di_pre, nh);
    zero_reals(k.df_pre, nh);
    mlstm_gates_backward(k.df_pre, k.di_pre, k.dfgate, k.digate, k.dm, c.fgate, c.igate, c.m,
                         c.f_pre, c.i_pre, B, T, H);
    matmul_backward(dinp, dw[P_WI], dw[P_BI], k.di_pre, inp, w[P_WI], N, d, H);
    matmul_backward(dinp, dw[P_WF], dw[P_BF], k.df_pre, inp, w[P_WF], N, d, H);
    matmul_backward(dinp, dw[P_WV], NULL, k.dv, inp, w[P_WV], N, d, d);

    zero_reals(k.dxc, n);
    matmul_backward(k.dxc, dw[P_WQ], NULL, k.dq, c.xc, w[P_WQ], N, d, d);
    matmul_backward(k.dxc, dw[P_WK], NULL, k.dk, c.xc, w[P_WK], N, d, d);
    conv4_silu_backward(dinp, dw[P_CONV], k.dxc, inp, c.conv_pre, w[P_CONV], B, T, d);
}

const mixer_impl mixer_mlstm = {
    .params = mlstm_params,
    .cache_len = mlstm_cache_len,
    .work_len = mlstm_work_len,
    .forward = mlstm_forward,
    .backward = mlstm_backward,
    .cuda_fits = mixer_cuda_fits_heads,
};
