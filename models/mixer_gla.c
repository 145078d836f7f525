/* mixer_gla.c: gated linear attention (fla's GatedLinearAttention): q, k, v
 * projections, a decay per key dimension alpha_t = exp(logsigmoid(W2 W1 x + b) / 16)
 * through a rank-16 bottleneck (2 alpha - 1 with eigen: signed), the
 * per-key-dimension non-delta scan, out = W_o (norm(o) * silu(W_g x)) with a
 * per-head RMSNorm. K = V = d/H (fla halves K by default; we keep the zoo's
 * common width). */
#include <math.h>
#include "../kernels/cuda_limits.h"
#include "mixer.h"

enum { P_WQ, P_WK, P_WV, P_WA1, P_WA2, P_BA, P_WG, P_NORM_O, P_WO, P_COUNT };

#define GLA_GATE_RANK 16
/* logsigmoid / 16: fla's gate_logit_normalizer */
#define GLA_GATE_POWER (1.0 / 16)

/* The decay's bias starts at 0: alpha = 0.5^(1/16) = 0.958 at init. */
static int gla_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    const int V = d / spec->heads;
    out[P_WQ] = (param_decl){"W_q", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WK] = (param_decl){"W_k", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WV] = (param_decl){"W_v", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WA1] = (param_decl){"W_alpha1", GLA_GATE_RANK, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WA2] = (param_decl){"W_alpha2", d, GLA_GATE_RANK, INIT_NORMAL, INIT_STD, 1};
    out[P_BA] = (param_decl){"b_alpha", d, 1, INIT_NORMAL, 0, 0};
    out[P_WG] = (param_decl){"W_g", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_NORM_O] = (param_decl){"norm_o.weight", V, 1, INIT_ONES, 0, 0};
    out[P_WO] = (param_decl){"W_o", d, d, INIT_NORMAL, init_std_residual(spec), 1};
    return P_COUNT;
}

typedef struct {
    real *q, *k, *v;       // (B,T,H,K) | (B,T,H,V) projections
    real *z1;              // (B,T,16) W1 x
    real *z;               // (B,T,d) W2 W1 x + b
    real *alpha;           // (B,T,H,K) decays
    real *states;          // scan_delta_cache_len
    real *o;               // (B,T,H,V) scan output
    real *rstd_o;          // (B,T,H)
    real *o_normed;        // (B,T,d)
    real *g;               // (B,T,d) W_g x
    real *gated;           // (B,T,d) norm(o) * silu(g)
} gla_cache;

typedef struct {
    real *d_gated, *d_normed, *d_o, *dg; // (B,T,d)
    real *dq, *dk, *dv, *dalpha, *dz;    // (B,T,d)
    real *dz1;                           // (B,T,16)
    real *scratch;                       // scan_delta_scratch_len
} gla_work;

static size_t gla_cache_layout(gla_cache *c, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t N = (size_t)m->B * m->T, n = N * m->d;
    carve_cursor cur = {base, 0};
    c->q = carve(&cur, n);
    c->k = carve(&cur, n);
    c->v = carve(&cur, n);
    c->z1 = carve(&cur, N * GLA_GATE_RANK);
    c->z = carve(&cur, n);
    c->alpha = carve(&cur, n);
    c->states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, K));
    c->o = carve(&cur, n);
    c->rstd_o = carve(&cur, N * H);
    c->o_normed = carve(&cur, n);
    c->g = carve(&cur, n);
    c->gated = carve(&cur, n);
    return cur.used;
}

static size_t gla_work_layout(gla_work *w, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t N = (size_t)m->B * m->T, n = N * m->d;
    carve_cursor cur = {base, 0};
    w->d_gated = carve(&cur, n);
    w->d_normed = carve(&cur, n);
    w->d_o = carve(&cur, n);
    w->dg = carve(&cur, n);
    w->dq = carve(&cur, n);
    w->dk = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->dalpha = carve(&cur, n);
    w->dz = carve(&cur, n);
    w->dz1 = carve(&cur, N * GLA_GATE_RANK);
    w->scratch = carve(&cur, scan_delta_scratch_len(m->B, m->T, H, K, K));
    return cur.used;
}

static size_t gla_cache_len(const mixer_dims *m)
{
    gla_cache c;
    return gla_cache_layout(&c, NULL, m);
}

static size_t gla_work_len(const mixer_dims *m)
{
    gla_work w;
    return gla_work_layout(&w, NULL, m);
}

static void gla_forward(real *out, real *cache, real *work, const real *inp,
                        const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); per head K = V = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    gla_cache c;
    gla_cache_layout(&c, cache, m);
    matmul_forward(c.q, inp, w[P_WQ], NULL, N, d, d);
    matmul_forward(c.k, inp, w[P_WK], NULL, N, d, d);
    matmul_forward(c.v, inp, w[P_WV], NULL, N, d, d);
    matmul_forward(c.z1, inp, w[P_WA1], NULL, N, d, GLA_GATE_RANK);
    matmul_forward(c.z, c.z1, w[P_WA2], w[P_BA], N, GLA_GATE_RANK, d);
    sigmoid_pow_forward(c.alpha, c.z, (size_t)N * d, (real)GLA_GATE_POWER,
                        m->spec->eigen == EIGEN_SIGNED);
    scan_delta_vec_forward(c.o, c.states, c.q, c.k, c.v, c.alpha, B, T, H, K, K,
                           (real)(1 / sqrt((double)K)));
    rmsnorm_forward(c.o_normed, c.rstd_o, c.o, w[P_NORM_O], N * H, K);
    matmul_forward(c.g, inp, w[P_WG], NULL, N, d, d);
    silu_gate_forward(c.gated, c.o_normed, c.g, (size_t)N * d);
    matmul_forward(out, c.gated, w[P_WO], NULL, N, d, d);
}

static void gla_backward(real *dinp, real *const *dw, real *work, const real *dout,
                         const real *cache, const real *inp, const real *const *w,
                         const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d;
    gla_cache c;
    gla_work k;
    gla_cache_layout(&c, (real *)cache, m);
    gla_work_layout(&k, work, m);

    zero_reals(k.d_gated, n);
    matmul_backward(k.d_gated, dw[P_WO], NULL, dout, c.gated, w[P_WO], N, d, d);
    zero_reals(k.d_normed, n);
    zero_reals(k.dg, n);
    silu_gate_backward(k.d_normed, k.dg, k.d_gated, c.o_normed, c.g, n);
    matmul_backward(dinp, dw[P_WG], NULL, k.dg, inp, w[P_WG], N, d, d);
    zero_reals(k.d_o, n);
    rmsnorm_backward(k.d_o, dw[P_NORM_O], k.d_normed, c.o, w[P_NORM_O], c.rstd_o, N * H, K);

    zero_reals(k.dq, n);
    zero_reals(k.dk, n);
    zero_reals(k.dv, n);
    zero_reals(k.dalpha, n);
    scan_delta_vec_backward(k.dq, k.dk, k.dv, k.dalpha, k.scratch, k.d_o, c.states, c.q, c.k,
                            c.v, c.alpha, B, T, H, K, K, (real)(1 / sqrt((double)K)));

    zero_reals(k.dz, n);
    sigmoid_pow_backward(k.dz, k.dalpha, c.z, n, (real)GLA_GATE_POWER,
                         m->spec->eigen == EIGEN_SIGNED);
    zero_reals(k.dz1, (size_t)N * GLA_GATE_RANK);
    matmul_backward(k.dz1, dw[P_WA2], dw[P_BA], k.dz, c.z1, w[P_WA2], N, GLA_GATE_RANK, d);
    matmul_backward(dinp, dw[P_WA1], NULL, k.dz1, inp, w[P_WA1], N, d, GLA_GATE_RANK);
    matmul_backward(dinp, dw[P_WQ], NULL, k.dq, inp, w[P_WQ], N, d, d);
    matmul_backward(dinp, dw[P_WK], NULL, k.dk, inp, w[P_WK], N, d, d);
    matmul_backward(dinp, dw[P_WV], NULL, k.dv, inp, w[P_WV], N, d, d);
}

static int gla_cuda_fits(const model_spec *spec, int d, int max_len, char *err, size_t errlen)
{
    (void)max_len;
    return mixer_cuda_limit(err, errlen, "the head size d_model/heads", d / spec->heads,
                            CUDA_SCAN_VEC_MAX_KV, "use more heads (model.heads)");
}

const mixer_impl mixer_gla = {
    .params = gla_params,
    .cache_len = gla_cache_len,
    .work_len = gla_work_len,
    .forward = gla_forward,
    .backward = gla_backward,
    .cuda_fits = gla_cuda_fits,
};
