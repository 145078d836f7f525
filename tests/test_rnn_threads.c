/* test_rnn_threads.c: the float lstm, elman, gru and slstm give the same
 * bits with 1 and 3 threads, over lengths that span several of the
 * backward's dR chunks and batches that leave a short slice. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/ops.h"
#include "support.h"

typedef enum { K_LSTM, K_ELMAN, K_GRU, K_SLSTM } kind;

/* Gates of gx and R, and of the gates cache, per kind (units of d). */
static const int gx_gates[] = {4, 1, 3, 4}, cache_gates[] = {4, 0, 4, 5};
static const char *const names[] = {"lstm", "elman", "gru", "slstm"};

typedef struct {
    real *h, *c, *n, *gates, *dgx, *dR;
} outputs;

static real *reals(size_t n)
{
    real *x = calloc(n ? n : 1, sizeof *x);
    cr_assert(x != NULL);
    return x;
}

static size_t scratch_of(kind k, int B, int T, int d, int H)
{
    switch (k) {
    case K_LSTM: return lstm_scratch_len(B, d);
    case K_ELMAN: return elman_scratch_len(B, T, d, H);
    case K_GRU: return gru_scratch_len(B, T, d, H);
    default: return slstm_scratch_len(B, T, d, H);
    }
}

/* Forward then backward with dh = dh_in; every output freshly allocated. */
static outputs run(kind k, const real *gx, const real *R, const real *dh, int B, int T, int d,
                   int H, int threads)
{
    ops_set_threads(threads);
    const size_t n = (size_t)B * T * d, G = (size_t)gx_gates[k];
    outputs o = {reals(n), reals(n), reals(n), reals(n * cache_gates[k]), reals(n * G),
                 reals(G * d * (d / H))};
    real *scratch = reals(scratch_of(k, B, T, d, H));
    switch (k) {
    case K_LSTM:
        lstm_forward(o.h, o.c, o.gates, gx, R, B, T, d);
        lstm_backward(o.dgx, o.dR, scratch, dh, o.h, o.c, o.gates, R, B, T, d);
        break;
    case K_ELMAN:
        elman_forward(o.h, scratch, gx, R, B, T, d, H);
        elman_backward(o.dgx, o.dR, scratch, dh, o.h, R, B, T, d, H);
        break;
    case K_GRU:
        gru_forward(o.h, o.gates, scratch, gx, R, B, T, d, H);
        gru_backward(o.dgx, o.dR, scratch, dh, o.h, o.gates, R, B, T, d, H);
        break;
    case K_SLSTM:
        slstm_forward(o.h, o.c, o.n, o.gates, scratch, gx, R, B, T, d, H);
        slstm_backward(o.dgx, o.dR, scratch, dh, o.h, o.c, o.n, o.gates, R, B, T, d, H);
        break;
    }
    free(scratch);
    return o;
}

static void expect_same(const char *what, const char *name, const real *a, const real *b,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a)) {
            cr_expect(0, "%s: %s[%zu] differs: %.9g with 1 thread, %.9g with 3", name, what, i,
                      (double)a[i], (double)b[i]);
            return;
        }
}

static void free_outputs(outputs *o)
{
    free(o->h);
    free(o->c);
    free(o->n);
    free(o->gates);
    free(o->dgx);
    free(o->dR);
}

/* B = 19: slices of 8, 8 and 3; T = 37: dR chunks of 16, 16 and 5;
 * B d = 2128 >= the kernels' threshold for running the slices in parallel. */
Test(rnn_threads, one_and_three_threads_agree_to_the_bit)
{
    const int B = 19, T = 37, d = 112;
    for (int k = K_LSTM; k <= K_SLSTM; k++) {
        const int H = k == K_LSTM ? 1 : 2;
        const size_t n = (size_t)B * T * d, G = (size_t)gx_gates[k];
        real *gx = reals(n * G), *R = reals(G * d * (d / H)), *dh = reals(n);
        fill_uniform(gx, n * G, -2, 2, 100 + (uint64_t)k);
        fill_uniform(R, G * d * (d / H), -0.4, 0.4, 200 + (uint64_t)k);
        fill_uniform(dh, n, -1, 1, 300 + (uint64_t)k);
        outputs one = run((kind)k, gx, R, dh, B, T, d, H, 1);
        outputs three = run((kind)k, gx, R, dh, B, T, d, H, 3);
        expect_same("h", names[k], one.h, three.h, n);
        expect_same("gates", names[k], one.gates, three.gates, n * cache_gates[k]);
        expect_same("dgx", names[k], one.dgx, three.dgx, n * G);
        expect_same("dR", names[k], one.dR, three.dR, G * d * (d / H));
        double dR_size = 0;
        for (size_t i = 0; i < G * d * (d / H); i++) dR_size += (double)one.dR[i] * one.dR[i];
        cr_expect(dR_size > 0, "%s: dR is all zero, the comparison proves nothing", names[k]);
        free_outputs(&one);
        free_outputs(&three);
        free(gx);
        free(R);
        free(dh);
    }
    ops_set_threads(1);
}
