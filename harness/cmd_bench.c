/* cmd_bench.c: `statebench bench`: training and inference throughput of the
 * mixers at the shapes of shared/BASELINES.md, and with --kernels the
 * scans, the LSTM cell and attention alone at the public anchors' shapes
 * (bench/compare_gpu.py), into the bench table. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda_limits.h"
#include "../kernels/device.h"
#include "../kernels/ops.h"
#include "../models/model.h"
#include "../tasks/task.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "options.h"
#include "progress.h"

static const char bench_usage[] =
    "usage: statebench bench [options]\n"
    "       statebench bench --kernels [options]\n"
    "  Times training steps (forward + loss + backward + AdamW) and inference\n"
    "  (forward) of 2-layer models on running parity, as in shared/BASELINES.md.\n"
    "  Prints a Markdown table with PyTorch's figures of shared/BASELINES.md beside\n"
    "  ours where it has them. MFU = 6 x params x train tokens/s / the gemm ceiling,\n"
    "  measured in the same run just before each shape (best of a few 1024^3\n"
    "  products of the gemm the models use, with the same threads); MFU divides by\n"
    "  the highest ceiling measured so far in the run. On cuda a step only queues work:\n"
    "  the host waits for the GPU once, at the end of each timed step.\n"
    "  With --kernels it times the ops alone instead, forward and forward +\n"
    "  backward, at the shapes of the public kernels' own benchmarks (B 8, T 1024,\n"
    "  H 8, D 64): scan_delta as deltanet and gated_deltanet run it, scan_delta_vec\n"
    "  (gla), selective_scan (mamba, Di = H D), the LSTM recurrence (d = H D) and\n"
    "  causal attention; bench/compare_gpu.py times the anchors on the same shapes.\n"
    "options:\n"
    "  --mixers LIST     comma-separated mixers, or 'all' for every mixer this build\n"
    "                    implements (default lstm,deltanet,mamba,attention; on cuda\n"
    "                    lstm,deltanet,linear_attn,attention)\n"
    "  --n LIST          sequence lengths (default 64,256; with --kernels 1024)\n"
    "  --d LIST          model widths (default 64,128)\n"
    "  --layers LIST     layers (default 2)\n"
    "  --batch B         batch size (default 32; with --kernels 8)\n"
    "  --steps K         timed steps or op calls per shape after 3 untimed ones\n"
    "                    (default 10; median reported)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --peak GFLOPS     use this gemm ceiling for MFU instead of measuring it\n"
    "  --device D        cpu (default) or cuda: GPU 0, the mixers with CUDA versions\n"
    "  --db PATH         also record rows into this database (default results/bench.db; '' = none);\n"
    "                    config.kind says which rows are training steps (\"step\": directions\n"
    "                    train, infer) and which ops alone (\"kernel\": fwd, fwd+bwd)\n"
    "  --kernels         time the ops alone (the options below), not whole steps\n"
    "  --ops LIST        with --kernels: comma-separated, or 'all' (default):\n"
    "                    deltanet, gated_deltanet, gla, mamba, lstm, attention\n"
    "  --heads H         with --kernels: heads (default 8)\n"
    "  --head-dim D      with --kernels: key and value size per head (default 64)\n"
    "  --d-state N       with --kernels: mamba's states per channel (default 16)\n"
    "  -h, --help        this text\n";

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per call of forward (+ backward + AdamW when train),
 * the step `statebench run` trains with (model_train_step: queued, and on
 * the GPU replayed as one CUDA graph after the first step), so nothing
 * inside a step waits for the device; the one wait is the ops_sync that
 * ends the timing. */
static double time_steps(model *m, const int *x, const int *y, int B, int T, int steps, int train)
{
    double *t = malloc((size_t)steps * sizeof *t);
    if (!t) return 0;
    for (int i = -3; i < steps; i++) {
        ops_sync();
        double t0 = now_seconds();
        if (train)
            model_train_step(m, x, y, B, T, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, i + 4);
        else
            model_forward_queued(m, x, y, B, T);
        ops_sync();
        if (i >= 0) t[i] = now_seconds() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, compare_double);
    double med = t[steps / 2];
    free(t);
    return med;
}

/* PyTorch 1.13.1 on the CPU, same models and configs (shared/BASELINES.md:
 * AMD EPYC, 2 cores, OpenBLAS 1 thread + torch 2 threads, 2026-11-22). */
static const struct {
    const char *mixer;
    int d, n;
    double train, infer; /* tokens/s */
} pytorch_cpu[] = {
    {"lstm", 64, 64, 30126, 120922},        {"lstm", 64, 256, 27109, 102009},
    {"lstm", 128, 64, 13314, 39829},        {"lstm", 128, 256, 11436, 40868},
    {"deltanet", 64, 64, 17974, 66782},     {"deltanet", 64, 256, 14472, 54580},
    {"deltanet", 128, 64, 9320, 33921},     {"deltanet", 128, 256, 9686, 33248},
    {"mamba", 64, 64, 12996, 47774},        {"mamba", 64, 256, 7682, 46495},
    {"mamba", 128, 64, 6455, 18534},        {"mamba", 128, 256, 2785, 22306},
    {"attention", 64, 64, 42639, 123824},   {"attention", 64, 256, 25141, 66844},
    {"attention", 128, 64, 14865, 43843},   {"attention", 128, 256, 12221, 34284},
};

/* Index into pytorch_cpu at batch 32, or -1. */
static int pytorch_row(const char *mixer, long d, long n, long batch)
{
    if (batch != 32) return -1;
    for (int i = 0; i < (int)(sizeof pytorch_cpu / sizeof *pytorch_cpu); i++)
        if (!strcmp(pytorch_cpu[i].mixer, mixer) && pytorch_cpu[i].d == d && pytorch_cpu[i].n == n)
            return i;
    return -1;
}

/* GFLOP/s of matmul_forward (the gemm every model runs on) at 1024^3: the
 * best of a few products, so MFU is measured against what this machine's
 * gemm does now, under its present load. 0 when out of memory. */
static double gemm_ceiling(void)
{
    const int n = 1024;
    const size_t bytes = (size_t)n * n * sizeof(real);
    real *a = ops_alloc(bytes), *b = ops_alloc(bytes), *out = ops_alloc(bytes);
    double best = 0;
    if (a && b && out) {
        for (int rep = 0; rep < 6; rep++) {
            ops_sync();
            double t0 = now_seconds();
            matmul_forward(out, a, b, NULL, n, n, n);
            ops_sync();
            double gflops = 2.0 * n * n * n / (now_seconds() - t0) / 1e9;
            if (rep > 0 && gflops > best) best = gflops; /* rep 0 warms up */
        }
    }
    ops_free(a);
    ops_free(b);
    ops_free(out);
    return best;
}

/* The 1-minute load average, or -1: timings on a shared machine need it. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    return load;
}

/* ---- --kernels: the ops alone, at the public anchors' shapes ----------- */

/* The ops `--kernels` times, each in the form one mixer runs it and under
 * the name of that mixer (the public anchors are per mixer too):
 * bench/compare_gpu.py times flash-linear-attention's chunk_delta_rule,
 * chunk_gated_delta_rule and chunk_gla, mamba's selective_scan_fn,
 * FlashRNN's and cuDNN's LSTM and PyTorch's SDPA on the same shapes. */
enum { KOP_DELTANET, KOP_GATED_DELTANET, KOP_GLA, KOP_MAMBA, KOP_LSTM, KOP_ATTENTION, KOP__COUNT };
static const struct {
    const char *name, *kernel;
} kernel_ops[KOP__COUNT] = {
    [KOP_DELTANET] = {"deltanet", "scan_delta (beta)"},
    [KOP_GATED_DELTANET] = {"gated_deltanet", "scan_delta (beta, alpha)"},
    [KOP_GLA] = {"gla", "scan_delta_vec"},
    [KOP_MAMBA] = {"mamba", "selective_scan"},
    [KOP_LSTM] = {"lstm", "lstm (recurrence)"},
    [KOP_ATTENTION] = {"attention", "attention (causal)"},
};

/* One op's tensors in backend memory: inputs (random, uploaded once),
 * outputs and caches, gradients (zeroed before each timed backward). */
enum { KB_MAX = 24 };
typedef struct {
    int op, B, T, H, D, N; /* lstm: d = H D; mamba: Di = H D, N states */
    real *in[KB_MAX], *grad[KB_MAX], *work[KB_MAX];
    size_t grad_len[KB_MAX];
    int n_in, n_grad, n_work, out_of_memory;
    uint64_t rng;
} kernel_case;

static double kc_uniform(kernel_case *c, double lo, double hi)
{
    c->rng = c->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (double)(c->rng >> 11) * 0x1.0p-53;
}

/* A random input of n reals uniform in [lo, hi); with unit_rows > 0 each
 * row of unit_rows entries is scaled to unit length (deltanet's L2-normed
 * q and k). NULL (out_of_memory set) when memory runs out. */
static real *kc_input(kernel_case *c, size_t n, double lo, double hi, int unit_rows)
{
    real *host = malloc(n * sizeof *host), *dev = ops_alloc(n * sizeof *dev);
    if (!host || !dev || c->n_in == KB_MAX) {
        free(host);
        ops_free(dev);
        c->out_of_memory = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) host[i] = (real)kc_uniform(c, lo, hi);
    for (size_t r = 0; unit_rows > 0 && r < n / (size_t)unit_rows; r++) {
        double sq = 0;
        for (int j = 0; j < unit_rows; j++) sq += (double)host[r * unit_rows + j] * host[r * unit_rows + j];
        for (int j = 0; j < unit_rows; j++) host[r * unit_rows + j] = (real)(host[r * unit_rows + j] / sqrt(sq + 1e-6));
    }
    ops_upload(dev, host, n * sizeof *host);
    free(host);
    return c->in[c->n_in++] = dev;
}

/* Zeroed backend memory of n reals: an output, cache or scratch (work),
 * or a gradient the backward adds into (grad: zeroed before each use). */
static real *kc_alloc(kernel_case *c, size_t n, int is_grad)
{
    int *count = is_grad ? &c->n_grad : &c->n_work;
    real *p = *count < KB_MAX ? ops_alloc((n ? n : 1) * sizeof *p) : NULL;
    if (!p) {
        c->out_of_memory = 1;
        return NULL;
    }
    if (is_grad) c->grad_len[c->n_grad] = n;
    return (is_grad ? c->grad : c->work)[(*count)++] = p;
}

static void kc_free(kernel_case *c)
{
    for (int i = 0; i < c->n_in; i++) ops_free(c->in[i]);
    for (int i = 0; i < c->n_grad; i++) ops_free(c->grad[i]);
    for (int i = 0; i < c->n_work; i++) ops_free(c->work[i]);
    c->n_in = c->n_grad = c->n_work = 0;
}

/* Allocates and fills the op's tensors: inputs in the ranges the mixers
 * feed them (unit keys, beta in (0, 1), decays near 1, mamba's initial
 * A_log and dt), so every form runs on well-scaled numbers. 0, or -1 out
 * of memory. */
static int kc_setup(kernel_case *c)
{
    const size_t B = (size_t)c->B, T = (size_t)c->T, H = (size_t)c->H, D = (size_t)c->D;
    const size_t tokens = B * T, d = H * D, N = (size_t)c->N;
    switch (c->op) {
    case KOP_DELTANET:
    case KOP_GATED_DELTANET:
        kc_input(c, tokens * d, -1, 1, c->D);             /* in 0: q */
        kc_input(c, tokens * d, -1, 1, c->D);             /* in 1: k */
        kc_input(c, tokens * d, -1, 1, 0);                /* in 2: v */
        kc_input(c, tokens * H, 0.05, 0.95, 0);           /* in 3: beta */
        kc_input(c, tokens * H, 0.9, 1.0, 0);             /* in 4: alpha (gated only) */
        kc_input(c, tokens * d, -1, 1, 0);                /* in 5: dout */
        kc_alloc(c, tokens * d, 0);                       /* work 0: o */
        kc_alloc(c, scan_delta_cache_len(c->B, c->T, c->H, c->D, c->D), 0);
        kc_alloc(c, scan_delta_scratch_len(c->B, c->T, c->H, c->D, c->D), 0);
        for (int i = 0; i < 3; i++) kc_alloc(c, tokens * d, 1); /* dq, dk, dv */
        kc_alloc(c, tokens * H, 1);                       /* dbeta */
        kc_alloc(c, tokens * H, 1);                       /* dalpha */
        break;
    case KOP_GLA:
        kc_input(c, tokens * d, -1, 1, 0);                /* q */
        kc_input(c, tokens * d, -1, 1, 0);                /* k */
        kc_input(c, tokens * d, -1, 1, 0);                /* v */
        kc_input(c, tokens * d, 0.9, 1.0, 0);             /* alpha per key dimension */
        kc_input(c, tokens * d, -1, 1, 0);                /* dout */
        kc_alloc(c, tokens * d, 0);
        kc_alloc(c, scan_delta_cache_len(c->B, c->T, c->H, c->D, c->D), 0);
        kc_alloc(c, scan_delta_scratch_len(c->B, c->T, c->H, c->D, c->D), 0);
        for (int i = 0; i < 4; i++) kc_alloc(c, tokens * d, 1); /* dq, dk, dv, dalpha */
        break;
    case KOP_MAMBA: {
        kc_input(c, tokens * d, -1, 1, 0);                /* u */
        kc_input(c, tokens * d, -6.9, -2.3, 0);           /* dt_pre: softplus^-1 of [1e-3, 0.1] */
        kc_input(c, tokens * N, -1, 1, 0);                /* Bm */
        kc_input(c, tokens * N, -1, 1, 0);                /* Cm */
        real *A_log = kc_input(c, d * N, 0, 0, 0);        /* log(1..N), mamba's initial A */
        kc_input(c, d, 1, 1, 0);                          /* D = 1 */
        kc_input(c, tokens * d, -1, 1, 0);                /* z */
        kc_input(c, tokens * d, -1, 1, 0);                /* dy */
        if (A_log) {
            real *host = malloc(d * N * sizeof *host);
            if (!host) return -1;
            for (size_t i = 0; i < d * N; i++) host[i] = (real)log((double)(i % N + 1));
            ops_upload(A_log, host, d * N * sizeof *host);
            free(host);
        }
        kc_alloc(c, tokens * d, 0);                       /* y */
        kc_alloc(c, selective_scan_cache_len(c->B, c->T, (int)d, c->N), 0);
        kc_alloc(c, selective_scan_scratch_len(c->B, c->T, (int)d, c->N), 0);
        kc_alloc(c, tokens * d, 1);                       /* du */
        kc_alloc(c, tokens * d, 1);                       /* ddt_pre */
        kc_alloc(c, d * N, 1);                            /* dA_log */
        kc_alloc(c, tokens * N, 1);                       /* dBm */
        kc_alloc(c, tokens * N, 1);                       /* dCm */
        kc_alloc(c, d, 1);                                /* dD */
        kc_alloc(c, tokens * d, 1);                       /* dz */
        break;
    }
    case KOP_LSTM:
        kc_input(c, tokens * 4 * d, -1, 1, 0);            /* gx */
        kc_input(c, 4 * d * d, -1 / sqrt((double)d), 1 / sqrt((double)d), 0); /* R */
        kc_input(c, tokens * d, -1, 1, 0);                /* dh */
        kc_alloc(c, tokens * d, 0);                       /* h */
        kc_alloc(c, tokens * d, 0);                       /* c */
        kc_alloc(c, tokens * 4 * d, 0);                   /* gates */
        kc_alloc(c, lstm_scratch_len(c->B, (int)d), 0);
        kc_alloc(c, tokens * 4 * d, 1);                   /* dgx */
        kc_alloc(c, 4 * d * d, 1);                        /* dR */
        break;
    case KOP_ATTENTION:
        for (int i = 0; i < 4; i++) kc_input(c, tokens * d, -1, 1, 0); /* q, k, v, dout */
        kc_alloc(c, tokens * d, 0);                       /* out */
        kc_alloc(c, attention_cache_len(c->B, c->T, c->H, c->D), 0); /* att: the backend's cache */
        kc_alloc(c, attention_scratch_len(c->B, c->T, c->H), 0);
        for (int i = 0; i < 3; i++) kc_alloc(c, tokens * d, 1); /* dq, dk, dv */
        break;
    }
    return c->out_of_memory ? -1 : 0;
}

static void kc_forward(kernel_case *c)
{
    real **in = c->in, **w = c->work;
    const real scale = (real)(1 / sqrt((double)c->D));
    const int d = c->H * c->D;
    switch (c->op) {
    case KOP_DELTANET:
    case KOP_GATED_DELTANET:
        scan_delta_forward(w[0], w[1], in[0], in[1], in[2], in[3], c->op == KOP_GATED_DELTANET ? in[4] : NULL,
                           c->B, c->T, c->H, c->D, c->D, scale);
        break;
    case KOP_GLA:
        scan_delta_vec_forward(w[0], w[1], in[0], in[1], in[2], in[3], c->B, c->T, c->H, c->D, c->D, scale);
        break;
    case KOP_MAMBA:
        selective_scan_forward(w[0], w[1], in[0], in[1], in[4], in[2], in[3], in[5], in[6], 0, c->B, c->T, d,
                               c->N);
        break;
    case KOP_LSTM: lstm_forward(w[0], w[1], w[2], in[0], in[1], c->B, c->T, d); break;
    case KOP_ATTENTION: attention_forward(w[0], w[1], in[0], in[1], in[2], c->B, c->T, c->H, c->D); break;
    }
}

static void kc_backward(kernel_case *c)
{
    real **in = c->in, **w = c->work, **g = c->grad;
    const real scale = (real)(1 / sqrt((double)c->D));
    const int d = c->H * c->D, gated = c->op == KOP_GATED_DELTANET;
    switch (c->op) {
    case KOP_DELTANET:
    case KOP_GATED_DELTANET:
        scan_delta_backward(g[0], g[1], g[2], g[3], gated ? g[4] : NULL, w[2], in[5], w[1], in[0], in[1], in[2],
                            in[3], gated ? in[4] : NULL, c->B, c->T, c->H, c->D, c->D, scale);
        break;
    case KOP_GLA:
        scan_delta_vec_backward(g[0], g[1], g[2], g[3], w[2], in[4], w[1], in[0], in[1], in[2], in[3], c->B,
                                c->T, c->H, c->D, c->D, scale);
        break;
    case KOP_MAMBA:
        selective_scan_backward(g[0], g[1], g[2], g[3], g[4], g[5], g[6], w[2], in[7], w[1], in[0], in[1],
                                in[2], in[3], in[5], in[6], 0, c->B, c->T, d, c->N);
        break;
    case KOP_LSTM: lstm_backward(g[0], g[1], w[3], in[2], w[0], w[1], w[2], in[1], c->B, c->T, d); break;
    case KOP_ATTENTION:
        attention_backward(g[0], g[1], g[2], w[2], in[3], w[1], in[0], in[1], in[2], c->B, c->T, c->H, c->D);
        break;
    }
}

/* Median milliseconds of the forward (and backward) over steps timed
 * calls after 3 untimed ones; gradients are zeroed outside the timing. */
static double kc_time(kernel_case *c, int backward, int steps)
{
    double *t = malloc((size_t)steps * sizeof *t);
    if (!t) return 0;
    for (int i = -3; i < steps; i++) {
        if (backward)
            for (int j = 0; j < c->n_grad; j++) scale_inplace(c->grad[j], c->grad_len[j], 0);
        ops_sync();
        double t0 = now_seconds();
        kc_forward(c);
        if (backward) kc_backward(c);
        ops_sync();
        if (i >= 0) t[i] = now_seconds() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, compare_double);
    double med = t[steps / 2];
    free(t);
    return 1e3 * med;
}

/* "B 8, T 1024, H 8, D 64" or the op's own dimensions. */
static void kc_shape(const kernel_case *c, char *out, size_t len)
{
    if (c->op == KOP_MAMBA)
        snprintf(out, len, "B %d, T %d, Di %d, N %d", c->B, c->T, c->H * c->D, c->N);
    else if (c->op == KOP_LSTM)
        snprintf(out, len, "B %d, T %d, d %d", c->B, c->T, c->H * c->D);
    else
        snprintf(out, len, "B %d, T %d, H %d, D %d", c->B, c->T, c->H, c->D);
}

/* The forms an op is timed in (ops_set_scan_form): both for scan_delta
 * (deltanet, gated_deltanet) on either backend and for scan_delta_vec (gla)
 * on CUDA, which has a chunked form there only; the other ops have one. */
static int kc_forms(int op, int on_gpu, ops_scan_form forms[2])
{
    if (op == KOP_DELTANET || op == KOP_GATED_DELTANET || (op == KOP_GLA && on_gpu)) {
        forms[0] = OPS_SCAN_RECURRENT;
        forms[1] = OPS_SCAN_CHUNKED;
        return 2;
    }
    forms[0] = op == KOP_GLA ? OPS_SCAN_RECURRENT : OPS_SCAN_AUTO;
    return 1;
}

static const char *kc_form_name(ops_scan_form f)
{
    return f == OPS_SCAN_RECURRENT ? "recurrent" : f == OPS_SCAN_CHUNKED ? "chunked" : "-";
}

/* Times each op at each T, the scans in each of their forms; prints the
 * table and records a fwd and a fwd+bwd row per op, form and shape (config
 * kind "kernel", form "recurrent", "chunked" or "-"). */
static int bench_kernels(const int *ops, int n_ops, const long *ts, int t_count, long batch, long heads,
                         long head_dim, long d_state, int steps, const char *device, int on_gpu, sb_db *db,
                         const char *db_path)
{
    printf("%d threads; %s; median of %d after 3 warm-ups; load average %.2f\n\n", ops_get_threads(),
           ops_blas_info(), steps, load_average());
    printf("| op | kernel | form | shape | device | fwd ms | fwd+bwd ms |\n");
    printf("|---|---|---|---|---|---:|---:|\n");
    fflush(stdout);
    int rc = EXIT_OK;
    ops_scan_form forms[2];
    for (int oi = 0; oi < n_ops; oi++)
        for (int ti = 0; ti < t_count; ti++)
        for (int fi = 0; fi < kc_forms(ops[oi], on_gpu, forms); fi++) {
            kernel_case c = {.op = ops[oi], .B = (int)batch, .T = (int)ts[ti], .H = (int)heads,
                             .D = (int)head_dim, .N = (int)d_state, .rng = 20261207u + (uint64_t)oi};
            const char *form = kc_form_name(forms[fi]);
            char shape[96];
            kc_shape(&c, shape, sizeof shape);
            if (kc_setup(&c)) {
                fprintf(stderr, "statebench bench: %s at %s: out of memory on %s\n", kernel_ops[c.op].name, shape,
                        device);
                kc_free(&c);
                rc = EXIT_RUNTIME;
                continue;
            }
            ops_set_scan_form(forms[fi]);
            double fwd = kc_time(&c, 0, steps), fwd_bwd = kc_time(&c, 1, steps);
            ops_set_scan_form(OPS_SCAN_AUTO);
            kc_free(&c);
            printf("| %s | %s | %s | %s | %s | %.3f | %.3f |\n", kernel_ops[c.op].name, kernel_ops[c.op].kernel,
                   form, shape, device, fwd, fwd_bwd);
            fflush(stdout);
            if (!db) continue;
            char config[384];
            snprintf(config, sizeof config,
                     "{\"kind\":\"kernel\",\"op\":\"%s\",\"kernel\":\"%s\",\"form\":\"%s\",\"B\":%d,\"T\":%d,"
                     "\"H\":%d,\"D\":%d,\"d_state\":%d,\"threads\":%d,\"load\":%.2f}",
                     kernel_ops[c.op].name, kernel_ops[c.op].kernel, form, c.B, c.T, c.H, c.D,
                     c.op == KOP_MAMBA ? c.N : 0, ops_get_threads(), load_average());
            char mixer[64];
            snprintf(mixer, sizeof mixer, "kernel:%s", kernel_ops[c.op].name);
            const double tokens = (double)c.B * c.T;
            db_bench_row f = {.mixer = mixer, .config = config, .device = device, .direction = "fwd", .n = c.T,
                              .batch = c.B, .tokens_per_s = tokens / (fwd * 1e-3), .ms = fwd};
            db_bench_row fb = f;
            fb.direction = "fwd+bwd";
            fb.tokens_per_s = tokens / (fwd_bwd * 1e-3);
            fb.ms = fwd_bwd;
            if (db_add_bench(db, &f) || db_add_bench(db, &fb)) {
                fprintf(stderr, "statebench bench: cannot record into %s: %s\n", db_path, db_errmsg(db));
                rc = EXIT_RUNTIME;
            }
        }
    return rc;
}

/* The model of one bench shape: a layers-deep mixer of width d, 4 heads,
 * spec_defaults otherwise, at batch x n tokens. */
static model_config bench_config(int mixer, long layers, long d, long n, long batch)
{
    run_spec s;
    spec_defaults(&s, 0);
    s.model.mixer[0] = mixer;
    s.model.n_mixer = 1;
    s.model.layers = (int)layers;
    s.model.d_model = (int)d;
    s.model.heads = 4;
    return (model_config){.spec = s.model, .vocab_in = 2, .vocab_out = 2, .max_batch = (int)batch,
                          .max_len = (int)n};
}

/* On cuda, every shape asked for must be one the kernels cover
 * (kernels/cuda_limits.h): 0, or -1 after saying which is not. */
static int bench_cuda_fits(int kernels, const int *ops, int n_ops, long head_dim, const int *mixers,
                           int n_mixers, const long *layers, int l_count, const long *ds, int d_count,
                           const long *ns, int n_count, long batch)
{
    for (int oi = 0; kernels && oi < n_ops; oi++) {
        const int op = ops[oi];
        const long max = op == KOP_GLA ? CUDA_SCAN_VEC_MAX_KV
                         : op == KOP_ATTENTION ? CUDA_ATTENTION_MAX_D
                         : op == KOP_DELTANET || op == KOP_GATED_DELTANET ? CUDA_SCAN_DELTA_MAX_KV
                                                                            : head_dim;
        if (head_dim > max) {
            fprintf(stderr, "statebench bench: --head-dim %ld: the CUDA %s covers head sizes up to %ld; "
                    "allowed on cuda: --head-dim <= %ld, or --ops without %s\n",
                    head_dim, kernel_ops[op].kernel, max, max, kernel_ops[op].name);
            return -1;
        }
    }
    for (int mi = 0; !kernels && mi < n_mixers; mi++)
        for (int li = 0; li < l_count; li++)
            for (int di = 0; di < d_count; di++)
                for (int ni = 0; ni < n_count; ni++) {
                    const model_config cfg = bench_config(mixers[mi], layers[li], ds[di], ns[ni], batch);
                    char err[512];
                    if (model_cuda_fits(&cfg, err, sizeof err) == 0) continue;
                    fprintf(stderr, "statebench bench: --device cuda, d %ld, n %ld (4 heads): %s\n", ds[di],
                            ns[ni], err);
                    return -1;
                }
    return 0;
}

/* Parses --ops into ops (at most KOP__COUNT); the count, or -1 after
 * printing what is allowed. */
static int parse_ops(const char *arg, int *ops)
{
    int n = 0;
    if (!strcmp(arg, "all")) {
        for (int i = 0; i < KOP__COUNT; i++) ops[n++] = i;
        return n;
    }
    char *list = strdup(arg), *save = NULL;
    if (!list) return -1;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int id = -1, twice = 0;
        for (int i = 0; i < KOP__COUNT; i++)
            if (!strcmp(tok, kernel_ops[i].name)) id = i;
        for (int i = 0; i < n; i++) twice |= ops[i] == id;
        if (id < 0 || twice) {
            fprintf(stderr, "statebench bench: --ops: '%s' is not %s; allowed:", tok,
                    id < 0 ? "a known op" : "wanted twice");
            for (int i = 0; i < KOP__COUNT; i++) fprintf(stderr, " %s", kernel_ops[i].name);
            fputs(" all\n", stderr);
            free(list);
            return -1;
        }
        ops[n++] = id;
    }
    free(list);
    if (n == 0) fputs("statebench bench: --ops: the list is empty; allowed: op names or all\n", stderr);
    return n ? n : -1;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mixers", required_argument, 0, 'm'}, {"n", required_argument, 0, 'n'},
        {"d", required_argument, 0, 'd'},      {"batch", required_argument, 0, 'b'},
        {"steps", required_argument, 0, 's'},  {"threads", required_argument, 0, 't'},
        {"peak", required_argument, 0, 'p'},   {"device", required_argument, 0, 'D'},
        {"db", required_argument, 0, 'o'},     {"help", no_argument, 0, 'h'},
        {"layers", required_argument, 0, 'L'}, {"kernels", no_argument, 0, 'K'},
        {"ops", required_argument, 0, 'O'},    {"heads", required_argument, 0, 'H'},
        {"head-dim", required_argument, 0, 'E'}, {"d-state", required_argument, 0, 'S'},
        {0, 0, 0, 0}};
    static const char cpu_mixers[] = "lstm,deltanet,mamba,attention";
    const char *mixers_arg = cpu_mixers, *db_path = "results/bench.db", *ops_arg = "all";
    int on_gpu = 0, kernels = 0;
    long ns[16] = {64, 256}, ds[16] = {64, 128}, layers[16] = {2}, batch = 32, steps = 10, threads = 0;
    long heads = 8, head_dim = 64, d_state = 16;
    int n_count = 2, d_count = 2, l_count = 1, c, n_given = 0, batch_given = 0;
    /* the first option given that applies only to steps, and only to --kernels */
    const char *step_only = NULL, *kernel_only = NULL;
    double peak = 0; /* 0: measure */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': mixers_arg = optarg; if (!step_only) step_only = "--mixers"; break;
        case 'n': if ((n_count = cli_parse_long_list("bench", "--n", optarg, 1, 1 << 20, ns, 16)) < 0) return EXIT_USAGE; n_given = 1; break;
        case 'd': if ((d_count = cli_parse_long_list("bench", "--d", optarg, 4, 8192, ds, 16)) < 0) return EXIT_USAGE; if (!step_only) step_only = "--d"; break;
        case 'L': if ((l_count = cli_parse_long_list("bench", "--layers", optarg, 1, 64, layers, 16)) < 0) return EXIT_USAGE; if (!step_only) step_only = "--layers"; break;
        case 'b': if (cli_parse_long("bench", "--batch", optarg, 1, 65536, &batch)) return EXIT_USAGE; batch_given = 1; break;
        case 's': if (cli_parse_long("bench", "--steps", optarg, 1, 100000, &steps)) return EXIT_USAGE; break;
        case 't': if (cli_parse_long("bench", "--threads", optarg, 1, 1024, &threads)) return EXIT_USAGE; break;
        case 'p': if (cli_parse_double("bench", "--peak", optarg, 1e-3, 1e9, &peak)) return EXIT_USAGE; if (!step_only) step_only = "--peak"; break;
        case 'D':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) {
                fprintf(stderr, "statebench bench: --device: '%s' is not known; allowed: cpu, cuda\n", optarg);
                return EXIT_USAGE;
            }
            on_gpu = !strcmp(optarg, "cuda");
            break;
        case 'o': db_path = optarg; break;
        case 'K': kernels = 1; break;
        case 'O': ops_arg = optarg; if (!kernel_only) kernel_only = "--ops"; break;
        case 'H': if (cli_parse_long("bench", "--heads", optarg, 1, 1024, &heads)) return EXIT_USAGE; if (!kernel_only) kernel_only = "--heads"; break;
        case 'E': if (cli_parse_long("bench", "--head-dim", optarg, 1, 1024, &head_dim)) return EXIT_USAGE; if (!kernel_only) kernel_only = "--head-dim"; break;
        case 'S': if (cli_parse_long("bench", "--d-state", optarg, 1, 256, &d_state)) return EXIT_USAGE; if (!kernel_only) kernel_only = "--d-state"; break;
        case 'h': fputs(bench_usage, stdout); return EXIT_OK;
        default: fputs(bench_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "statebench bench: unexpected argument '%s'\n%s", argv[optind], bench_usage);
        return EXIT_USAGE;
    }
    if (kernels && step_only) {
        fprintf(stderr, "statebench bench: %s applies to training steps, not to --kernels; allowed with --kernels: "
                        "--ops, --n, --batch, --heads, --head-dim, --d-state, --steps, --threads, --device, --db\n",
                step_only);
        return EXIT_USAGE;
    }
    if (!kernels && kernel_only) {
        fprintf(stderr, "statebench bench: %s applies only with --kernels\n", kernel_only);
        return EXIT_USAGE;
    }
    int ops[KOP__COUNT], n_ops = 0;
    if (kernels) {
        if ((n_ops = parse_ops(ops_arg, ops)) < 0) return EXIT_USAGE;
        if (!n_given) ns[0] = 1024, n_count = 1;
        if (!batch_given) batch = 8;
        if (heads * head_dim > 65536) {
            fprintf(stderr, "statebench bench: --heads %ld x --head-dim %ld is too large; allowed: H D <= 65536\n",
                    heads, head_dim);
            return EXIT_USAGE;
        }
    }
    char device[256] = "cpu";
    if (on_gpu && mixers_arg == cpu_mixers) mixers_arg = "lstm,deltanet,linear_attn,attention";
    if (on_gpu) {
        if (ops_set_backend(OPS_CUDA) != 0) {
            char reason[256] = "";
            cuda_device_count(reason, sizeof reason);
            fprintf(stderr, "statebench bench: --device cuda: no CUDA device (%s)\n", reason);
            return EXIT_USAGE;
        }
        cuda_device_describe(0, device, sizeof device);
    }
    int mixers[MIXER__COUNT], n_mixers = 0;
    if (!kernels && !strcmp(mixers_arg, "all")) {
        mixers_arg = "";
        for (int i = 0; i < MIXER__COUNT; i++)
            if (on_gpu ? mixer_on_cuda(i) : mixer_available(i)) mixers[n_mixers++] = i;
    }
    char *list = strdup(kernels ? "" : mixers_arg), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int id = mixer_find(tok);
        if (id < 0 || !mixer_available(id) || n_mixers == MIXER__COUNT) {
            fprintf(stderr, "statebench bench: --mixers: '%s' is not a known mixer; allowed:", tok);
            for (int i = 0; i < MIXER__COUNT; i++)
                if (mixer_available(i)) fprintf(stderr, " %s", mixer_name(i));
            fputs(" all", stderr);
            fputc('\n', stderr);
            free(list);
            return EXIT_USAGE;
        }
        mixers[n_mixers++] = id;
    }
    free(list);
    if (on_gpu && bench_cuda_fits(kernels, ops, n_ops, head_dim, mixers, n_mixers, layers, l_count, ds, d_count,
                                  ns, n_count, batch))
        return EXIT_USAGE;
    ops_set_threads(threads > 0 ? (int)threads : cli_cores());

    sb_db *db = NULL;
    if (db_path[0]) {
        char err[512];
        db = db_open(db_path, err, sizeof err);
        if (!db) {
            fprintf(stderr, "statebench bench: %s\n", err);
            return EXIT_RUNTIME;
        }
    }
    if (kernels) {
        int rc = bench_kernels(ops, n_ops, ns, n_count, batch, heads, head_dim, d_state, (int)steps, device,
                               on_gpu, db, db_path);
        db_close(db);
        return rc;
    }
    const double load_before = load_average();
    const int measured = peak <= 0;
    if (measured) peak = gemm_ceiling();
    if (peak <= 0) {
        fprintf(stderr, "statebench bench: cannot measure the gemm ceiling (out of memory); give --peak\n");
        db_close(db);
        return EXIT_RUNTIME;
    }
    printf("gemm ceiling: %.1f GFLOP/s (%s); %d threads; %s; load average %.2f\n\n", peak,
           measured ? "measured: matmul_forward 1024^3, best of 5, again before each shape" : "--peak",
           ops_get_threads(),
           ops_blas_info(), load_before);
    printf("| mixer | d | n | params | train tok/s | infer tok/s | train ms/step | gemm GFLOP/s | MFU "
           "| PyTorch train tok/s | PyTorch infer tok/s | train vs PyTorch | layers |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    int rc = EXIT_OK;
    double best_peak = peak;
    for (int mi = 0; mi < n_mixers; mi++)
        for (int li = 0; li < l_count; li++)
        for (int di = 0; di < d_count; di++)
            for (int ni = 0; ni < n_count; ni++) {
                const model_config cfg = bench_config(mixers[mi], layers[li], ds[di], ns[ni], batch);
                char err[256];
                model *m = model_create(&cfg, 0, err, sizeof err);
                if (!m) {
                    fprintf(stderr, "statebench bench: %s d=%ld: %s\n", mixer_name(mixers[mi]), ds[di], err);
                    rc = EXIT_RUNTIME;
                    continue;
                }
                size_t tokens = (size_t)batch * (size_t)ns[ni];
                int *x = malloc(tokens * sizeof *x), *y = malloc(tokens * sizeof *y);
                if (!x || !y) {
                    fprintf(stderr, "statebench bench: out of memory for the batch of %zu tokens\n", tokens);
                    free(x);
                    free(y);
                    model_free(m);
                    rc = EXIT_RUNTIME;
                    continue;
                }
                uint64_t state = 12345;
                for (size_t i = 0, parity = 0; i < tokens; i++) {
                    if (i % (size_t)ns[ni] == 0) parity = 0;
                    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                    x[i] = (int)(state >> 63);
                    parity ^= (size_t)x[i];
                    y[i] = (int)parity;
                }
                /* the ceiling under the load this shape sees (the first
                   shape reuses the one measured above); MFU is against the
                   highest measured so far in the run: a single 1024^3
                   product that a descheduled thread slowed reads low, and
                   would make the MFU read high */
                double shape_peak = peak;
                if (measured && (mi || li || di || ni)) {
                    double now_peak = gemm_ceiling();
                    if (now_peak > 0) shape_peak = now_peak;
                }
                if (shape_peak > best_peak) best_peak = shape_peak;
                double train_s = time_steps(m, x, y, (int)batch, (int)ns[ni], (int)steps, 1);
                const char *no_graph = model_graph_failure(m);
                if (no_graph)
                    fprintf(stderr, "statebench bench: note: %s d=%ld: the step runs uncaptured (no CUDA graph): %s\n",
                            mixer_name(mixers[mi]), ds[di], no_graph);
                double infer_s = time_steps(m, x, y, (int)batch, (int)ns[ni], (int)steps, 0);
                double train_tps = (double)tokens / train_s, infer_tps = (double)tokens / infer_s;
                double params = (double)model_num_params(m);
                double mfu = 6 * params * train_tps / (best_peak * 1e9);
                printf("| %s | %ld | %ld | %.0f | %.0f | %.0f | %.2f | %.1f | %.1f%% |", mixer_name(mixers[mi]),
                       ds[di], ns[ni], params, train_tps, infer_tps, 1e3 * train_s, shape_peak, 100 * mfu);
                int pt = on_gpu || layers[li] != 2 ? -1 : pytorch_row(mixer_name(mixers[mi]), ds[di], ns[ni], batch);
                if (pt >= 0)
                    printf(" %.0f | %.0f | %.2fx |", pytorch_cpu[pt].train, pytorch_cpu[pt].infer,
                           train_tps / pytorch_cpu[pt].train);
                else
                    printf(" | | |");
                printf(" %ld |\n", layers[li]);
                fflush(stdout);
                if (db) {
                    char config[384];
                    snprintf(config, sizeof config,
                             "{\"kind\":\"step\",\"d_model\":%ld,\"heads\":4,\"layers\":%ld,\"params\":%.0f,"
                             "\"threads\":%d,\"gemm_gflops\":%.1f,\"mfu\":%.4f,\"mfu_peak\":%.1f,\"load\":%.2f,\"graphs\":%d}",
                             ds[di], layers[li], params, ops_get_threads(), shape_peak, mfu, best_peak, load_average(),
                             model_graphs_captured(m));
                    db_bench_row tr = {.mixer = mixer_name(mixers[mi]), .config = config, .device = device,
                                       .direction = "train", .n = (int)ns[ni], .batch = (int)batch,
                                       .tokens_per_s = train_tps, .ms = 1e3 * train_s};
                    db_bench_row in = tr;
                    in.direction = "infer";
                    in.tokens_per_s = infer_tps;
                    in.ms = 1e3 * infer_s;
                    if (db_add_bench(db, &tr) || db_add_bench(db, &in)) {
                        fprintf(stderr, "statebench bench: cannot record into %s: %s\n", db_path, db_errmsg(db));
                        rc = EXIT_RUNTIME;
                    }
                }
                free(x);
                free(y);
                model_free(m);
            }
    printf("\nMFU against the highest gemm ceiling measured so far in the run (%.1f GFLOP/s at the end); "
           "load average %.2f before, %.2f after\n", best_peak, load_before, load_average());
    db_close(db);
    return rc;
}
