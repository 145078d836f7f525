/* mixer_attention.c: causal multi-head softmax attention: q, k, v projections,
 * RoPE on q and k when pos: rope, attention with scale D^-1/2, output
 * projection; no biases. */
#include "../kernels/cuda_limits.h"
#include "mixer.h"

enum { P_WQ, P_WK, P_WV, P_WO, P_COUNT };

static int attention_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    out[P_WQ] = (param_decl){"W_q", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WK] = (param_decl){"W_k", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WV] = (param_decl){"W_v", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WO] = (param_decl){"W_o", d, d, INIT_NORMAL, init_std_residual(spec), 1};
    return P_COUNT;
}

typedef struct {
    real *q, *k, *v;  // (B,T,H,D), q and k rotated in place under RoPE
    real *att;        // attention_cache_len(B,T,H,D): the backend's own layout
    real *o;          // (B,T,H,D)
} attention_cache;

typedef struct {
    real *d_o;             // (B,T,d)
    real *dq, *dk, *dv;    // (B,T,H,D)
    real *d_pre;           // (B,T,d): un-rotated q or k gradient under RoPE
    real *scratch;         // attention_scratch_len
} attention_work;

static int use_rope(const model_spec *spec)
{
    return spec->pos == POS_ROPE;
}

static size_t attention_cache_layout(attention_cache *c, real *base, const mixer_dims *m)
{
    const size_t n = (size_t)m->B * m->T * m->d;
    carve_cursor cur = {base, 0};
    c->q = carve(&cur, n);
    c->k = carve(&cur, n);
    c->v = carve(&cur, n);
    c->att = carve(&cur, attention_cache_len(m->B, m->T, m->spec->heads, m->d / m->spec->heads));
    c->o = carve(&cur, n);
    return cur.used;
}

static size_t attention_work_layout(attention_work *w, real *base, const mixer_dims *m)
{
    const size_t n = (size_t)m->B * m->T * m->d;
    carve_cursor cur = {base, 0};
    w->d_o = carve(&cur, n);
    w->dq = carve(&cur, n);
    w->dk = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->d_pre = use_rope(m->spec) ? carve(&cur, n) : NULL;
    w->scratch = carve(&cur, attention_scratch_len(m->B, m->T, m->spec->heads));
    return cur.used;
}

static size_t attention_mixer_cache_len(const mixer_dims *m)
{
    attention_cache c;
    return attention_cache_layout(&c, NULL, m);
}

static size_t attention_mixer_work_len(const mixer_dims *m)
{
    attention_work w;
    return attention_work_layout(&w, NULL, m);
}

static void attention_mixer_forward(real *out, real *cache, real *work, const real *inp,
                                    const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); D = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, D = d / H;
    const int N = B * T;
    attention_cache c;
    attention_cache_layout(&c, cache, m);
    matmul_forward(c.q, inp, w[P_WQ], NULL, N, d, d);
    matmul_forward(c.k, inp, w[P_WK], NULL, N, d, d);
    matmul_forward(c.v, inp, w[P_WV], NULL, N, d, d);
    if (use_rope(m->spec)) {
        const real theta = (real)m->spec->rope_theta;
        rope_forward(c.q, c.q, B, T, H, D, theta);
        rope_forward(c.k, c.k, B, T, H, D, theta);
    }
    attention_forward(c.o, c.att, c.q, c.k, c.v, B, T, H, D);
    matmul_forward(out, c.o, w[P_WO], NULL, N, d, d);
}

static void attention_mixer_backward(real *dinp, real *const *dw, real *work,
                                     const real *dout, const real *cache, const real *inp,
                                     const real *const *w, const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, D = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d;
    attention_cache c;
    attention_work k;
    attention_cache_layout(&c, (real *)cache, m);
    attention_work_layout(&k, work, m);

    zero_reals(k.d_o, n);
    matmul_backward(k.d_o, dw[P_WO], NULL, dout, c.o, w[P_WO], N, d, d);
    zero_reals(k.dq, n);
    zero_reals(k.dk, n);
    zero_reals(k.dv, n);
    attention_backward(k.dq, k.dk, k.dv, k.scratch, k.d_o, c.att, c.q, c.k, c.v, B, T, H, D);

    matmul_backward(dinp, dw[P_WV], NULL, k.dv, inp, w[P_WV], N, d, d);
    real *d_rot[2] = {k.dq, k.dk};
    for (int i = 0; i < 2; i++) {
        const real *d_proj = d_rot[i];
        if (use_rope(m->spec)) {
            zero_reals(k.d_pre, n);
            rope_backward(k.d_pre, d_rot[i], B, T, H, D, (real)m->spec->rope_theta);
            d_proj = k.d_pre;
        }
        matmul_backward(dinp, dw[P_WQ + i], NULL, d_proj, inp, w[P_WQ + i], N, d, d);
    }
}

static int attention_cuda_fits(const model_spec *spec, int d, int max_len, char *err,
                               size_t errlen)
{
    return mixer_cuda_limit(err, errlen, "the head size d_model/heads", d / spec->heads,
                            CUDA_ATTENTION_MAX_D, "use more heads (model.heads)") ||
           mixer_cuda_limit(err, errlen, "the longest sequence", max_len, CUDA_ATTENTION_MAX_T,
                            "use shorter train or eval lengths");
}

const mixer_impl mixer_attention = {
    .params = attention_params,
    .cache_len = attention_mixer_cache_len,
    .work_len = attention_mixer_work_len,
    .forward = attention_mixer_forward,
    .backward = attention_mixer_backward,
    .cuda_fits = attention_cuda_fits,
};
