/* mixer_minrnn.c: the shared body of the minGRU and minLSTM mixers: input maps, gates into scan_diag, output map (see mixer_minrnn.h). */
#include "mixer_minrnn.h"

#include <math.h>

/* Parameter entries: W and b of map j at 2j and 2j + 1, then W_o. */
static int param_wo(const minrnn_kind *kind) { return 2 * kind->maps; }

int minrnn_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d,
                  const minrnn_kind *kind)
{
    const double bound = 1 / sqrt((double)d);
    for (int j = 0; j < kind->maps; j++) {
        out[2 * j] = (param_decl){.name = kind->weight_names[j], .rows = d, .cols = d,
                                  .init = INIT_UNIFORM, .scale = bound, .decay = 1};
        out[2 * j + 1] = (param_decl){.name = kind->bias_names[j], .rows = d, .cols = 1,
                                      .init = INIT_UNIFORM, .scale = bound, .decay = 0};
    }
    out[param_wo(kind)] = (param_decl){.name = "W_o", .rows = d, .cols = d, .init = INIT_NORMAL,
                                       .scale = init_std_residual(spec), .decay = 1};
    return param_wo(kind) + 1;
}

typedef struct {
    real *pre[MINRNN_MAX_MAPS]; // (B,T,d) the maps' pre-activations
    real *a, *h;                // (B,T,d) decay and scan output
} minrnn_cache;

typedef struct {
    real *b;                     // (B,T,d) forward: the scan's input; backward: its gradient
    real *da, *dh;               // (B,T,d)
    real *dpre[MINRNN_MAX_MAPS]; // (B,T,d)
} minrnn_work;

static size_t cache_layout(minrnn_cache *c, real *base, const mixer_dims *m,
                           const minrnn_kind *kind)
{
    const size_t n = (size_t)m->B * m->T * m->d;
    carve_cursor cur = {base, 0};
    for (int j = 0; j < kind->maps; j++) c->pre[j] = carve(&cur, n);
    c->a = carve(&cur, n);
    c->h = carve(&cur, n);
    return cur.used;
}

static size_t work_layout(minrnn_work *w, real *base, const mixer_dims *m,
                          const minrnn_kind *kind)
{
    const size_t n = (size_t)m->B * m->T * m->d;
    carve_cursor cur = {base, 0};
    w->b = carve(&cur, n);
    w->da = carve(&cur, n);
    w->dh = carve(&cur, n);
    for (int j = 0; j < kind->maps; j++) w->dpre[j] = carve(&cur, n);
    return cur.used;
}

size_t minrnn_cache_len(const mixer_dims *m, const minrnn_kind *kind)
{
    minrnn_cache c;
    return cache_layout(&c, NULL, m, kind);
}

size_t minrnn_work_len(const mixer_dims *m, const minrnn_kind *kind)
{
    minrnn_work w;
    return work_layout(&w, NULL, m, kind);
}

void minrnn_forward(real *out, real *cache, real *work, const real *inp, const real *const *w,
                    const mixer_dims *m, const minrnn_kind *kind)
{
    // inp, out (B,T,d)
    const int N = m->B * m->T, d = m->d;
    minrnn_cache c;
    minrnn_work k;
    cache_layout(&c, cache, m, kind);
    work_layout(&k, work, m, kind);
    for (int j = 0; j < kind->maps; j++)
        matmul_forward(c.pre[j], inp, w[2 * j], w[2 * j + 1], N, d, d);
    kind->gates_forward(c.a, k.b, (const real *const *)c.pre, (size_t)N * d,
                        m->spec->eigen == EIGEN_SIGNED);
    scan_diag_forward(c.h, c.a, k.b, m->B, m->T, d);
    matmul_forward(out, c.h, w[param_wo(kind)], NULL, N, d, d);
}

void minrnn_backward(real *dinp, real *const *dw, real *work, const real *dout,
                     const real *cache, const real *inp, const real *const *w,
                     const mixer_dims *m, const minrnn_kind *kind)
{
    const int N = m->B * m->T, d = m->d;
    const size_t n = (size_t)N * d;
    const int wo = param_wo(kind);
    minrnn_cache c;
    minrnn_work k;
    cache_layout(&c, (real *)cache, m, kind);
    work_layout(&k, work, m, kind);
    zero_reals(k.dh, n);
    matmul_backward(k.dh, dw[wo], NULL, dout, c.h, w[wo], N, d, d);
    zero_reals(k.da, n);
    zero_reals(k.b, n);
    scan_diag_backward(k.da, k.b, k.dh, c.h, c.a, m->B, m->T, d);
    for (int j = 0; j < kind->maps; j++) zero_reals(k.dpre[j], n);
    kind->gates_backward(k.dpre, k.da, k.b, (const real *const *)c.pre, n,
                         m->spec->eigen == EIGEN_SIGNED);
    for (int j = 0; j < kind->maps; j++)
        matmul_backward(dinp, dw[2 * j], dw[2 * j + 1], k.dpre[j], inp, w[2 * j], N, d, d);
}
