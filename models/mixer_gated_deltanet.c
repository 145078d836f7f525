/* mixer_gated_deltanet.c: Gated DeltaNet (fla's GatedDeltaNet): DeltaNet's
 * conv4 + SiLU q, k, v with L2-normalised q, k and beta = s(W_beta x)
 * (2 s(.) with eigen: signed), plus a decay per head
 * alpha = exp(-exp(A_log) softplus(W_a x + dt_bias)), the gated delta-rule
 * scan, out = W_o (norm(o) * silu(W_g x)) with a per-head RMSNorm.
 * K = V = d/H (fla widens V by expand_v = 2; we keep the zoo's common width). */
#include <math.h>
#include "mixer_qkv.h"
#include "rng.h"
#include "ssm_init.h"

/* qkv_in's six entries (W_q, W_k, W_v, conv_q, conv_k, conv_v), the beta
 * and decay maps, then qkv_out's gated three (W_g, norm_o.weight, W_o). */
enum {
    P_QKV_IN, P_WBETA = P_QKV_IN + QKV_IN_PARAMS, P_WA, P_DT_BIAS, P_ALOG, P_QKV_OUT,
    P_COUNT = P_QKV_OUT + QKV_OUT_PARAMS(1)
};

/* fla's A ~ U(0, 16], stored as A_log = log A; 1 - u keeps the draw off 0 */
static double init_a_log(const param_decl *decl, size_t i, uint64_t key)
{
    return log(decl->hi * (1 - rng_uniform(key, i)));
}

/* Linear weights normal(0, 0.02), W_o rescaled for the residual stream;
 * conv filters as deltanet's; dt_bias as Mamba's (softplus(dt_bias) = dt
 * log-uniform in [1e-3, 0.1]) and A_log as fla's. */
static int gated_deltanet_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec,
                                 int d)
{
    const int H = spec->heads;
    qkv_in_params(out + P_QKV_IN, d);
    out[P_WBETA] = (param_decl){"W_beta", H, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WA] = (param_decl){"W_a", H, d, INIT_NORMAL, INIT_STD, 1};
    out[P_DT_BIAS] = (param_decl){.name = "dt_bias", .rows = H, .cols = 1, .init = INIT_CUSTOM,
                                  .init_value = init_dt_bias, .lo = 1e-3, .hi = 0.1};
    out[P_ALOG] = (param_decl){.name = "A_log", .rows = H, .cols = 1, .init = INIT_CUSTOM,
                               .init_value = init_a_log, .hi = 16};
    qkv_out_params(out + P_QKV_OUT, spec, d, 1);
    return P_COUNT;
}

typedef struct {
    qkv_in_cache in;           // q, k, v: projections, conv, L2 norm
    real *beta_pre, *beta;     // (B,T,H)
    real *a_pre, *dt, *alpha;  // (B,T,H): W_a x + dt_bias, its softplus, the decay
    real *states;              // scan_delta_cache_len
    qkv_out_cache out;         // scan output o, its norm and gate
} gdn_cache;

typedef struct {
    qkv_out_work out;          // the gradient of o
    real *dqn, *dkn, *dv;      // (B,T,d) scan input gradients
    real *dbeta, *dbeta_pre;   // (B,T,H)
    real *dalpha, *da_pre;     // (B,T,H)
    qkv_in_work in;
    real *scratch;             // scan_delta_scratch_len
} gdn_work;

static size_t gdn_cache_layout(gdn_cache *c, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    qkv_in_cache_layout(&c->in, &cur, m);
    c->beta_pre = carve(&cur, nh);
    c->beta = carve(&cur, nh);
    c->a_pre = carve(&cur, nh);
    c->dt = carve(&cur, nh);
    c->alpha = carve(&cur, nh);
    c->states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, K));
    qkv_out_cache_layout(&c->out, &cur, m, 1);
    return cur.used;
}

static size_t gdn_work_layout(gdn_work *w, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    qkv_out_work_layout(&w->out, &cur, m, 1);
    w->dqn = carve(&cur, n);
    w->dkn = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->dbeta = carve(&cur, nh);
    w->dbeta_pre = carve(&cur, nh);
    w->dalpha = carve(&cur, nh);
    w->da_pre = carve(&cur, nh);
    qkv_in_work_layout(&w->in, &cur, m);
    w->scratch = carve(&cur, scan_delta_scratch_len(m->B, m->T, H, K, K));
    return cur.used;
}

static size_t gdn_cache_len(const mixer_dims *m)
{
    gdn_cache c;
    return gdn_cache_layout(&c, NULL, m);
}

static size_t gdn_work_len(const mixer_dims *m)
{
    gdn_work w;
    return gdn_work_layout(&w, NULL, m);
}

static act_kind beta_act(const model_spec *spec)
{
    return spec->eigen == EIGEN_SIGNED ? ACT_SIGMOID2 : ACT_SIGMOID;
}

static void gdn_forward(real *out, real *cache, real *work, const real *inp,
                        const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); per head K = V = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    gdn_cache c;
    gdn_cache_layout(&c, cache, m);
    qkv_in_forward(&c.in, inp, w + P_QKV_IN, m);
    matmul_forward(c.beta_pre, inp, w[P_WBETA], NULL, N, d, H);
    act_forward(c.beta, c.beta_pre, (size_t)N * H, beta_act(m->spec));
    matmul_forward(c.a_pre, inp, w[P_WA], w[P_DT_BIAS], N, d, H);
    ssd_decay_forward(c.dt, c.alpha, c.a_pre, w[P_ALOG], 0, N, H);
    scan_delta_forward(c.out.o, c.states, c.in.qn, c.in.kn, c.in.conv_out[2], c.beta, c.alpha,
                       B, T, H, K, K, (real)(1 / sqrt((double)K)));
    qkv_out_forward(out, &c.out, inp, w + P_QKV_OUT, m, 1);
}

static void gdn_backward(real *dinp, real *const *dw, real *work, const real *dout,
                         const real *cache, const real *inp, const real *const *w,
                         const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d, nh = (size_t)N * H;
    gdn_cache c;
    gdn_work k;
    gdn_cache_layout(&c, (real *)cache, m);
    gdn_work_layout(&k, work, m);

    qkv_out_backward(dinp, dw + P_QKV_OUT, &k.out, dout, &c.out, inp, w + P_QKV_OUT, m, 1);
    zero_reals(k.dqn, n);
    zero_reals(k.dkn, n);
    zero_reals(k.dv, n);
    zero_reals(k.dbeta, nh);
    zero_reals(k.dalpha, nh);
    scan_delta_backward(k.dqn, k.dkn, k.dv, k.dbeta, k.dalpha, k.scratch, k.out.d_o, c.states,
                        c.in.qn, c.in.kn, c.in.conv_out[2], c.beta, c.alpha, B, T, H, K, K,
                        (real)(1 / sqrt((double)K)));

    zero_reals(k.da_pre, nh);
    ssd_decay_backward(k.da_pre, dw[P_ALOG], NULL, k.dalpha, c.a_pre, w[P_ALOG], 0, N, H);
    matmul_backward(dinp, dw[P_WA], dw[P_DT_BIAS], k.da_pre, inp, w[P_WA], N, d, H);
    zero_reals(k.dbeta_pre, nh);
    act_backward(k.dbeta_pre, k.dbeta, c.beta_pre, nh, beta_act(m->spec));
    matmul_backward(dinp, dw[P_WBETA], NULL, k.dbeta_pre, inp, w[P_WBETA], N, d, H);
    qkv_in_backward(dinp, dw + P_QKV_IN, &k.in, k.dqn, k.dkn, k.dv, &c.in, inp, w + P_QKV_IN, m);
}

const mixer_impl mixer_gated_deltanet = {
    .params = gated_deltanet_params,
    .cache_len = gdn_cache_len,
    .work_len = gdn_work_len,
    .forward = gdn_forward,
    .backward = gdn_backward,
    .cuda_fits = mixer_cuda_fits_heads,
};
