/* mixer_linear_attn.c: linear attention: q, k through a feature map, the
 * non-delta scan S_t = S_{t-1} + k_t v_t^T, o_t = S_t^T q_t (scale 1: with
 * the normaliser any scale cancels), optionally divided by
 * q_t^T sum_{s<=t} k_s, then the output projection. */
#include "mixer.h"

enum { P_WQ, P_WK, P_WV, P_WO, P_COUNT };

/* The normaliser's eps. MODELS.md's 1e-10 (fla's naive form) is below one
 * float ulp of any denominator above ~1e-3, so it only acts where the
 * denominator is (almost) exactly 0: relu features that are all zero, or
 * the identity map's q.sum(k) crossing 0. There the gradient gain is 1/eps:
 * 1e10 turns one such position into the whole clipped global gradient;
 * 1e-6 (the eps of the norms in ops.h) bounds it, and stays far below real
 * denominators (elu+1 features are ~1 at init, so den ~ K t). */
#define LINEAR_ATTN_EPS 1e-6

static int linear_attn_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    out[P_WQ] = (param_decl){"W_q", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WK] = (param_decl){"W_k", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WV] = (param_decl){"W_v", d, d, INIT_NORMAL, INIT_STD, 1};
    out[P_WO] = (param_decl){"W_o", d, d, INIT_NORMAL, init_std_residual(spec), 1};
    return P_COUNT;
}

static act_kind feature_act(const model_spec *spec)
{
    switch (spec->feature_map) {
    case FMAP_IDENTITY: return ACT_IDENTITY;
    case FMAP_RELU: return ACT_RELU;
    default: return ACT_ELU1;
    }
}

typedef struct {
    real *q_pre, *k_pre;  // (B,T,d) projections
    real *q, *k, *v;      // (B,T,H,K) features, (B,T,H,V) values
    real *states;         // scan_delta_cache_len of the numerator
    real *num;            // (B,T,H,V) scan output
    real *ones;           // (B,T,H,1) the denominator scan's values (normalize only)
    real *den;            // (B,T,H)                               (normalize only)
    real *den_states;     // scan_delta_cache_len with V = 1      (normalize only)
    real *o;              // (B,T,d) normalised output            (normalize only)
} linear_attn_cache;

typedef struct {
    real *d_o, *dnum;          // (B,T,d)
    real *dden, *dones;        // (B,T,H)
    real *dq, *dk, *dv;        // (B,T,d)
    real *d_pre;               // (B,T,d), reused for q, k
    real *scratch;             // scan_delta_scratch_len, also for V = 1
} linear_attn_work;

static size_t linear_attn_cache_layout(linear_attn_cache *c, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    carve_cursor cur = {base, 0};
    c->q_pre = carve(&cur, n);
    c->k_pre = carve(&cur, n);
    c->q = carve(&cur, n);
    c->k = carve(&cur, n);
    c->v = carve(&cur, n);
    c->states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, K));
    c->num = carve(&cur, n);
    if (m->spec->normalize) {
        c->ones = carve(&cur, nh);
        c->den = carve(&cur, nh);
        c->den_states = carve(&cur, scan_delta_cache_len(m->B, m->T, H, K, 1));
        c->o = carve(&cur, n);
    } else {
        c->ones = c->den = c->den_states = NULL;
        c->o = c->num;
    }
    return cur.used;
}

static size_t linear_attn_work_layout(linear_attn_work *w, real *base, const mixer_dims *m)
{
    const int H = m->spec->heads, K = m->d / H;
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * H;
    size_t scratch = scan_delta_scratch_len(m->B, m->T, H, K, K);
    if (m->spec->normalize) {
        const size_t den_scratch = scan_delta_scratch_len(m->B, m->T, H, K, 1);
        if (den_scratch > scratch) scratch = den_scratch;
    }
    carve_cursor cur = {base, 0};
    w->d_o = carve(&cur, n);
    w->dnum = m->spec->normalize ? carve(&cur, n) : w->d_o;
    w->dden = m->spec->normalize ? carve(&cur, nh) : NULL;
    w->dones = m->spec->normalize ? carve(&cur, nh) : NULL;
    w->dq = carve(&cur, n);
    w->dk = carve(&cur, n);
    w->dv = carve(&cur, n);
    w->d_pre = carve(&cur, n);
    w->scratch = carve(&cur, scratch);
    return cur.used;
}

static size_t linear_attn_cache_len(const mixer_dims *m)
{
    linear_attn_cache c;
    return linear_attn_cache_layout(&c, NULL, m);
}

static size_t linear_attn_work_len(const mixer_dims *m)
{
    linear_attn_work w;
    return linear_attn_work_layout(&w, NULL, m);
}

static void linear_attn_forward(real *out, real *cache, real *work, const real *inp,
                                const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); per head K = V = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const act_kind fmap = feature_act(m->spec);
    linear_attn_cache c;
    linear_attn_cache_layout(&c, cache, m);
    matmul_forward(c.q_pre, inp, w[P_WQ], NULL, N, d, d);
    matmul_forward(c.k_pre, inp, w[P_WK], NULL, N, d, d);
    matmul_forward(c.v, inp, w[P_WV], NULL, N, d, d);
    act_forward(c.q, c.q_pre, (size_t)N * d, fmap);
    act_forward(c.k, c.k_pre, (size_t)N * d, fmap);
    scan_delta_forward(c.num, c.states, c.q, c.k, c.v, NULL, NULL, B, T, H, K, K, 1);
    if (m->spec->normalize) {
        // den_t = q_t . sum_{s<=t} k_s: the same scan with every value 1
        fill_ones(c.ones, (size_t)N * H);
        scan_delta_forward(c.den, c.den_states, c.q, c.k, c.ones, NULL, NULL, B, T, H, K, 1, 1);
        rowdiv_forward(c.o, c.num, c.den, N * H, K, (real)LINEAR_ATTN_EPS);
    }
    matmul_forward(out, c.o, w[P_WO], NULL, N, d, d);
}

static void linear_attn_backward(real *dinp, real *const *dw, real *work, const real *dout,
                                 const real *cache, const real *inp, const real *const *w,
                                 const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d, nh = (size_t)N * H;
    const act_kind fmap = feature_act(m->spec);
    linear_attn_cache c;
    linear_attn_work k;
    linear_attn_cache_layout(&c, (real *)cache, m);
    linear_attn_work_layout(&k, work, m);

    zero_reals(k.d_o, n);
    matmul_backward(k.d_o, dw[P_WO], NULL, dout, c.o, w[P_WO], N, d, d);
    zero_reals(k.dq, n);
    zero_reals(k.dk, n);
    zero_reals(k.dv, n);
    if (m->spec->normalize) {
        zero_reals(k.dnum, n);
        zero_reals(k.dden, nh);
        rowdiv_backward(k.dnum, k.dden, k.d_o, c.num, c.den, N * H, K, (real)LINEAR_ATTN_EPS);
        zero_reals(k.dones, nh);
        scan_delta_backward(k.dq, k.dk, k.dones, NULL, NULL, k.scratch, k.dden, c.den_states,
                            c.q, c.k, c.ones, NULL, NULL, B, T, H, K, 1, 1);
    }
    scan_delta_backward(k.dq, k.dk, k.dv, NULL, NULL, k.scratch, k.dnum, c.states, c.q, c.k,
                        c.v, NULL, NULL, B, T, H, K, K, 1);

    matmul_backward(dinp, dw[P_WV], NULL, k.dv, inp, w[P_WV], N, d, d);
    const real *d_feat[2] = {k.dq, k.dk};
    const real *pre[2] = {c.q_pre, c.k_pre};
    for (int i = 0; i < 2; i++) {
        zero_reals(k.d_pre, n);
        act_backward(k.d_pre, d_feat[i], pre[i], n, fmap);
        matmul_backward(dinp, dw[P_WQ + i], NULL, k.d_pre, inp, w[P_WQ + i], N, d, d);
    }
}

const mixer_impl mixer_linear_attn = {
    .params = linear_attn_params,
    .cache_len = linear_attn_cache_len,
    .work_len = linear_attn_work_len,
    .forward = linear_attn_forward,
    .backward = linear_attn_backward,
    .cuda_fits = mixer_cuda_fits_heads,
};
