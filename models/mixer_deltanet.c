/* mixer_deltanet.c: DeltaNet (fla's layer): q, k, v projections through conv4 +
 * SiLU, q and k L2-normalised per head, beta = s(x W_beta^T) (2 s(.) when
 * eigen: signed), the delta-rule scan, per-head RMSNorm, output projection. */
#include <math.h>
#include "mixer_qkv.h"

/* qkv_in's six entries (W_q, W_k, W_v, conv_q, conv_k, conv_v), then
 * W_beta, then qkv_out's ungated two (norm_o.weight, W_o). */
enum {
    P_QKV_IN, P_WBETA = P_QKV_IN + QKV_IN_PARAMS, P_QKV_OUT,
    P_COUNT = P_QKV_OUT + QKV_OUT_PARAMS(0)
};

/* Linear weights normal(0, 0.02), W_o rescaled for the residual stream,
 * conv filters as fla's ShortConvolution (mixer_qkv.h). */
static int deltanet_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    qkv_in_params(out + P_QKV_IN, d);
    out[P_WBETA] = (param_decl){"W_beta", spec->heads, d, INIT_NORMAL, INIT_STD, 1};
    qkv_out_params(out + P_QKV_OUT, spec, d, 0);
    return P_COUNT;
}

typedef struct {
    qkv_in_cache in;           // q, k, v: projections, conv, L2 norm
    real *beta_pre, *beta;     // (B,T,H)
    real *states;              // scan_delta_cache_len
    qkv_out_cache out;         // scan output o, its norm
} deltanet_cache;

typedef struct {
    qkv_out_work out;          // the gradient of o
    real *dqn, *dkn, *dv;      // (B,T,d) scan input gradients
    real *dbeta, *dbeta_pre;   // (B,T,H)
    qkv_in_work in;
    real *scratch;             // scan_delta_scratch_len
} deltanet_work;

static size_t deltanet_cache_layout(deltanet_cache *c, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    qkv_in_cache_layout(&c->in, &cur, m);
    c->beta_pre = carve(&cur, nh);
    c->beta = carve(&cur, nh);
    c->states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, K));
    qkv_out_cache_layout(&c->out, &cur, m, 0);
    return cur.used;
}

static size_t deltanet_work_layout(deltanet_work *w, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    qkv_out_work_layout(&w->out, &cur, m, 0);
    w->dqn = carve(&cur, n);
    w->dkn = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->dbeta = carve(&cur, nh);
    w->dbeta_pre = carve(&cur, nh);
    qkv_in_work_layout(&w->in, &cur, m);
    w->scratch = carve(&cur, scan_delta_scratch_len(m->B, m->T, H, K, K));
    return cur.used;
}

static size_t deltanet_cache_len(const mixer_dims *m)
{
    deltanet_cache c;
    return deltanet_cache_layout(&c, NULL, m);
}

static size_t deltanet_work_len(const mixer_dims *m)
{
    deltanet_work w;
    return deltanet_work_layout(&w, NULL, m);
}

static act_kind beta_act(const model_spec *spec)
{
    return spec->eigen == EIGEN_SIGNED ? ACT_SIGMOID2 : ACT_SIGMOID;
}

static void deltanet_forward(real *out, real *cache, real *work, const real *inp,
                             const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); per head K = V = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    deltanet_cache c;
    deltanet_cache_layout(&c, cache, m);
    qkv_in_forward(&c.in, inp, w + P_QKV_IN, m);
    matmul_forward(c.beta_pre, inp, w[P_WBETA], NULL, N, d, H);
    act_forward(c.beta, c.beta_pre, (size_t)N * H, beta_act(m->spec));
    scan_delta_forward(c.out.o, c.states, c.in.qn, c.in.kn, c.in.conv_out[2], c.beta, NULL, B,
                       T, H, K, K, (real)(1 / sqrt((double)K)));
    qkv_out_forward(out, &c.out, inp, w + P_QKV_OUT, m, 0);
}

static void deltanet_backward(real *dinp, real *const *dw, real *work, const real *dout,
                              const real *cache, const real *inp, const real *const *w,
                              const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d, nh = (size_t)N * H;
    deltanet_cache c;
    deltanet_work k;
    deltanet_cache_layout(&c, (real *)cache, m);
    deltanet_work_layout(&k, work, m);

    qkv_out_backward(dinp, dw + P_QKV_OUT, &k.out, dout, &c.out, inp, w + P_QKV_OUT, m, 0);
    zero_reals(k.dqn, n);
    zero_reals(k.dkn, n);
    zero_reals(k.dv, n);
    zero_reals(k.dbeta, nh);
    scan_delta_backward(k.dqn, k.dkn, k.dv, k.dbeta, NULL, k.scratch, k.out.d_o, c.states,
                        c.in.qn, c.in.kn, c.in.conv_out[2], c.beta, NULL, B, T, H, K, K,
                        (real)(1 / sqrt((double)K)));

    zero_reals(k.dbeta_pre, nh);
    act_backward(k.dbeta_pre, k.dbeta, c.beta_pre, nh, beta_act(m->spec));
    matmul_backward(dinp, dw[P_WBETA], NULL, k.dbeta_pre, inp, w[P_WBETA], N, d, H);
    qkv_in_backward(dinp, dw + P_QKV_IN, &k.in, k.dqn, k.dkn, k.dv, &c.in, inp, w + P_QKV_IN, m);
}

const mixer_impl mixer_deltanet = {
    .params = deltanet_params,
    .cache_len = deltanet_cache_len,
    .work_len = deltanet_work_len,
    .forward = deltanet_forward,
    .backward = deltanet_backward,
    .cuda_fits = mixer_cuda_fits_heads,
};
