/* mixer_retnet.c: RetNet's multi-scale retention (fla's MultiScaleRetention):
 * q, k, v projections, RoPE on q and k, the non-delta scan with a fixed decay
 * gamma_h = 1 - 2^(-5-h) per head, out = W_o (norm(o) * silu(W_g x)) with
 * a per-head RMSNorm. Head sizes K = V = d/H (fla widens V to 2K; we keep
 * the zoo's common width). */
#include <math.h>
#include "mixer_qkv.h"

/* W_q, W_k, W_v, then qkv_out's gated three (W_g, norm_o.weight, W_o). */
enum { P_WQ, P_WK, P_WV, P_QKV_OUT, P_COUNT = P_QKV_OUT + QKV_OUT_PARAMS(1) };

/* RoPE base, as attention's default and fla's RotaryEmbedding */
#define RETNET_ROPE_THETA 10000.0

static int retnet_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    out[P_WQ] = (param_decl){"W_q", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WK] = (param_decl){"W_k", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WV] = (param_decl){"W_v", d, d, INIT_NORMAL, INIT_STD, 1};
    qkv_out_params(out + P_QKV_OUT, spec, d, 1);
    return P_COUNT;
}

typedef struct {
    real *q_pre, *k_pre;   // (B,T,d) projections before RoPE
    real *q, *k, *v;       // (B,T,H,K) rotated q, k; (B,T,H,V) values
    real *gamma;           // (B,T,H) the fixed decays, one row per token
    real *states;          // scan_delta_cache_len
    qkv_out_cache out;     // scan output o, its norm and gate
} retnet_cache;

typedef struct {
    qkv_out_work out;                    // the gradient of o
    real *dq, *dk, *dv;                  // (B,T,d) scan input gradients
    real *d_pre;                         // (B,T,d), reused for q, k
    real *scratch;                       // scan_delta_scratch_len
} retnet_work;

static size_t retnet_cache_layout(retnet_cache *c, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    c->q_pre = carve(&cur, n);
    c->k_pre = carve(&cur, n);
    c->q = carve(&cur, n);
    c->k = carve(&cur, n);
    c->v = carve(&cur, n);
    c->gamma = carve(&cur, nh);
    c->states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, K));
    qkv_out_cache_layout(&c->out, &cur, m, 1);
    return cur.used;
}

static size_t retnet_work_layout(retnet_work *w, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d;
    carve_cursor cur = {base, 0};
    qkv_out_work_layout(&w->out, &cur, m, 1);
    w->dq = carve(&cur, n);
    w->dk = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->d_pre = carve(&cur, n);
    w->scratch = carve(&cur, scan_delta_scratch_len(m->B, m->T, H, K, K));
    return cur.used;
}

static size_t retnet_cache_len(const mixer_dims *m)
{
    retnet_cache c;
    return retnet_cache_layout(&c, NULL, m);
}

static size_t retnet_work_len(const mixer_dims *m)
{
    retnet_work w;
    return retnet_work_layout(&w, NULL, m);
}

static void retnet_forward(real *out, real *cache, real *work, const real *inp,
                           const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); per head K = V = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    retnet_cache c;
    retnet_cache_layout(&c, cache, m);
    matmul_forward(c.q_pre, inp, w[P_WQ], NULL, N, d, d);
    matmul_forward(c.k_pre, inp, w[P_WK], NULL, N, d, d);
    matmul_forward(c.v, inp, w[P_WV], NULL, N, d, d);
    rope_forward(c.q, c.q_pre, B, T, H, K, (real)RETNET_ROPE_THETA);
    rope_forward(c.k, c.k_pre, B, T, H, K, (real)RETNET_ROPE_THETA);
    double gamma[H]; // (H) host constants
    for (int h = 0; h < H; h++) gamma[h] = 1 - ldexp(1.0, -5 - h);
    fill_rows(c.gamma, gamma, N, H);
    scan_delta_forward(c.out.o, c.states, c.q, c.k, c.v, NULL, c.gamma, B, T, H, K, K,
                       (real)(1 / sqrt((double)K)));
    qkv_out_forward(out, &c.out, inp, w + P_QKV_OUT, m, 1);
}

static void retnet_backward(real *dinp, real *const *dw, real *work, const real *dout,
                            const real *cache, const real *inp, const real *const *w,
                            const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d;
    retnet_cache c;
    retnet_work k;
    retnet_cache_layout(&c, (real *)cache, m);
    retnet_work_layout(&k, work, m);

    qkv_out_backward(dinp, dw + P_QKV_OUT, &k.out, dout, &c.out, inp, w + P_QKV_OUT, m, 1);

    zero_reals(k.dq, n);
    zero_reals(k.dk, n);
    zero_reals(k.dv, n);
    scan_delta_backward(k.dq, k.dk, k.dv, NULL, NULL, k.scratch, k.out.d_o, c.states, c.q, c.k,
                        c.v, NULL, c.gamma, B, T, H, K, K, (real)(1 / sqrt((double)K)));

    matmul_backward(dinp, dw[P_WV], NULL, k.dv, inp, w[P_WV], N, d, d);
    const real *d_rot[2] = {k.dq, k.dk};
    for (int i = 0; i < 2; i++) {
        zero_reals(k.d_pre, n);
        rope_backward(k.d_pre, d_rot[i], B, T, H, K, (real)RETNET_ROPE_THETA);
        matmul_backward(dinp, dw[P_WQ + i], NULL, k.d_pre, inp, w[P_WQ + i], N, d, d);
    }
}

const mixer_impl mixer_retnet = {
    .params = retnet_params,
    .cache_len = retnet_cache_len,
    .work_len = retnet_work_len,
    .forward = retnet_forward,
    .backward = retnet_backward,
    .cuda_fits = mixer_cuda_fits_heads,
};
