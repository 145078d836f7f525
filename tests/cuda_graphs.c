/* cuda_graphs.c: the training step captured as a CUDA graph and replayed
 * (model_train_step) against the same steps run uncaptured
 * (model_forward_queued, model_backward, model_adamw_step_queued) and
 * against the CPU; and the determinism the runs table records: two
 * identical GPU trainings end bit for bit equal.
 * The learning rate changes at every step (warmup, then cosine) and the
 * batch length alternates, so a graph that kept a captured learning rate,
 * bias correction, 1/count or batch would part from the uncaptured steps. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/model.h"
#include "../models/model_internal.h"
#include "cuda_check.h"
#include "support.h"

static void setup(void)
{
    ops_set_threads(1);
    xt_require_gpu();
}

TestSuite(cuda_graphs, .init = setup);

enum { B = 3, T_MAX = 29, VOCAB_IN = 3, VOCAB_OUT = 2 };

/* The two batch lengths, alternating: two graphs per model. */
static int length_at(int step)
{
    return step % 2 ? T_MAX : 17;
}

static model *create_on(ops_backend_kind backend, int mixer, int pos, uint64_t seed)
{
    model_spec s = {0};
    s.mixer[0] = mixer;
    s.n_mixer = 1;
    s.layers = 2;
    s.d_model = 16;
    s.heads = 2;
    s.eigen = EIGEN_POSITIVE;
    s.mlp = MLP_SWIGLU;
    s.mlp_ratio = 2;
    s.pos = pos;
    s.rope_theta = 10000;
    s.feature_map = FMAP_ELU1;
    s.normalize = 1;
    s.d_state = 8;   /* mamba, mamba2, s4d */
    s.expand = 2;
    s.r_min = 0.4;   /* lru */
    s.r_max = 0.9;
    s.max_phase = 0.314;
    model_config cfg = {.spec = s, .vocab_in = VOCAB_IN, .vocab_out = VOCAB_OUT, .max_batch = B, .max_len = T_MAX};
    char err[256] = "";
    if (backend == OPS_CUDA) xt_cuda_backend();
    else ops_set_backend(OPS_CPU);
    model *m = model_create(&cfg, seed, err, sizeof err);
    cr_assert_not_null(m, "model_create (%s, %s): %s", mixer_name(mixer), backend == OPS_CUDA ? "CUDA" : "CPU",
                       err);
    return m;
}

/* Batch `step` of running parity (length length_at(step)); every third
 * target unscored, so the count, hence 1/count, changes with the length. */
static int batch(int *x, int *y, uint64_t seed, int step)
{
    const int T = length_at(step);
    uint64_t st = seed * 1000003u + (uint64_t)step;
    for (int b = 0; b < B; b++) {
        int parity = 0;
        for (int t = 0; t < T; t++) {
            const int bit = rand_uniform(&st) < 0.5;
            parity ^= bit;
            x[b * T + t] = 1 + bit;
            y[b * T + t] = t % 3 == 1 ? -1 : parity;
        }
    }
    return T;
}

enum { STEPS = 8, WARMUP = 3 };
static const double LR = 3e-3, BETA1 = 0.9, BETA2 = 0.999, EPS = 1e-8, WD = 0.01, CLIP = 0.5;

/* One step of m on its backend: through model_train_step (graph 1) or the
 * three queued calls (graph 0); reads the step's loss and norm. */
static void step_once(model *m, int graph, uint64_t seed, int step, model_step_stats *st)
{
    int x[B * T_MAX], y[B * T_MAX];
    const int T = batch(x, y, seed, step);
    const double lr = lr_schedule(LR, WARMUP, STEPS, 0.1, step);
    if (graph) {
        model_train_step(m, x, y, B, T, lr, BETA1, BETA2, EPS, WD, CLIP, step);
    } else {
        model_forward_queued(m, x, y, B, T);
        model_backward(m);
        model_adamw_step_queued(m, lr, BETA1, BETA2, EPS, WD, CLIP, step);
    }
    model_step_read(m, st);
}

/* The parameters and both AdamW moments of a GPU model, bit for bit. */
static void expect_same_state(const char *what, model *a, model *b)
{
    const size_t n = model_num_params(a);
    real *pa = malloc(3 * n * sizeof *pa);
    cr_assert_not_null(pa);
    memcpy(pa, model_params(a), n * sizeof *pa);
    memcpy(pa + n, model_adam_m(a), n * sizeof *pa);
    memcpy(pa + 2 * n, model_adam_v(a), n * sizeof *pa);
    const real *pb = model_params(b), *mb = model_adam_m(b), *vb = model_adam_v(b);
    const real *other[3] = {pb, mb, vb};
    const char *names[3] = {"parameter", "AdamW m", "AdamW v"};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < n; i++)
            if (memcmp(&pa[k * n + i], &other[k][i], sizeof(real))) {
                cr_expect_fail("%s: %s %zu differs: %.9g against %.9g", what, names[k], i, (double)pa[k * n + i],
                               (double)other[k][i]);
                break;
            }
    free(pa);
}

static void graph_against_uncaptured(int mixer, int pos, uint64_t seed)
{
    fprintf(stderr, "  %s: seed %llu\n", mixer_name(mixer), (unsigned long long)seed);
    model *cpu = create_on(OPS_CPU, mixer, pos, seed);
    model *graph = create_on(OPS_CUDA, mixer, pos, seed), *plain = create_on(OPS_CUDA, mixer, pos, seed);
    double lr_seen[STEPS];
    for (int step = 1; step <= STEPS; step++) {
        model_step_stats sc, sg, sp;
        lr_seen[step - 1] = lr_schedule(LR, WARMUP, STEPS, 0.1, step);
        ops_set_backend(OPS_CPU);
        step_once(cpu, 0, seed, step, &sc);
        xt_cuda_backend();
        step_once(graph, 1, seed, step, &sg);
        step_once(plain, 0, seed, step, &sp);
        cr_expect_eq(memcmp(&sg.loss, &sp.loss, sizeof sg.loss), 0, "%s step %d: loss graph %.17g uncaptured %.17g",
                     mixer_name(mixer), step, sg.loss, sp.loss);
        cr_expect_eq(memcmp(&sg.grad_norm, &sp.grad_norm, sizeof sg.grad_norm), 0,
                     "%s step %d: gradient norm graph %.17g uncaptured %.17g", mixer_name(mixer), step, sg.grad_norm,
                     sp.grad_norm);
        cr_expect_eq(sg.first_bad_step, 0);
        /* against the CPU: the 1e-2 per-step curve bound of cuda_models */
        cr_expect(fabs(sg.loss - sc.loss) <= 1e-2 * fabs(sc.loss), "%s step %d: loss graph %.7g CPU %.7g",
                  mixer_name(mixer), step, sg.loss, sc.loss);
        cr_expect(fabs(sg.grad_norm - sc.grad_norm) <= 1e-2 * sc.grad_norm,
                  "%s step %d: gradient norm graph %.7g CPU %.7g", mixer_name(mixer), step, sg.grad_norm,
                  sc.grad_norm);
    }
    cr_expect(lr_seen[0] != lr_seen[1] && lr_seen[WARMUP] != lr_seen[WARMUP + 1], "the learning rate must change");
    cr_expect_eq(model_graphs_captured(graph), 2, "%s: one graph per batch length", mixer_name(mixer));
    cr_expect_null(model_graph_failure(graph), "%s: no capture failed", mixer_name(mixer));
    char what[96];
    snprintf(what, sizeof what, "%s after %d steps, graph against uncaptured", mixer_name(mixer), STEPS);
    expect_same_state(what, graph, plain);
    ops_set_backend(OPS_CPU);
    model_free(cpu);
    xt_cuda_backend();
    model_free(graph);
    model_free(plain);
    ops_set_backend(OPS_CPU);
}

/* Every mixer with CUDA ops (none of its ops may wait for the device or
 * allocate inside the capture: the emulator fails the capture then), and
 * attention with learned positions too. */
Test(cuda_graphs, replayed_steps_equal_uncaptured_steps_bit_for_bit, .timeout = 900)
{
    fprintf(stderr, "cuda_graphs.replayed_steps_equal_uncaptured_steps_bit_for_bit: seeds 41 + mixer\n");
    for (int mixer = 0; mixer < MIXER__COUNT; mixer++)
        if (mixer_on_cuda(mixer)) graph_against_uncaptured(mixer, POS_ROPE, 41 + (uint64_t)mixer);
    graph_against_uncaptured(MIXER_ATTENTION, POS_LEARNED, 40);
}

/* The scans' chunked forms (scan_delta_chunk.cu, scan_delta_vec_chunk.cu)
 * captured too: every mixer whose scan has one, with the form forced on
 * both backends (the lengths here are below AUTO's threshold). */
Test(cuda_graphs, chunked_scans_replay_bit_for_bit, .timeout = 900)
{
    fprintf(stderr, "cuda_graphs.chunked_scans_replay_bit_for_bit: seeds 61 + mixer\n");
    const int scans[] = {MIXER_DELTANET, MIXER_GATED_DELTANET, MIXER_LINEAR_ATTN, MIXER_RETNET,
                         MIXER_MLSTM,    MIXER_MAMBA2,         MIXER_GLA};
    ops_set_scan_form(OPS_SCAN_CHUNKED);
    for (size_t i = 0; i < sizeof scans / sizeof *scans; i++)
        graph_against_uncaptured(scans[i], POS_ROPE, 61 + (uint64_t)scans[i]);
    ops_set_scan_form(OPS_SCAN_AUTO);
}

/* The deterministic contract (docs/SCALE.md): every CUDA kernel reduces in
 * a fixed order and cuBLAS runs on one stream, so two GPU trainings from
 * the same seed end bit for bit equal; embedding_backward's rows gather
 * many positions here (3 tokens), where atomics would add in the order the
 * blocks happen to run. One training replays graphs, the other runs
 * uncaptured (STATEBENCH_CUDA_GRAPH=0 at its creation). */
Test(cuda_graphs, two_gpu_trainings_are_bit_identical, .timeout = 600)
{
    const uint64_t seed = 51;
    fprintf(stderr, "cuda_graphs.two_gpu_trainings_are_bit_identical: seed %llu\n", (unsigned long long)seed);
    model *a = create_on(OPS_CUDA, MIXER_GATED_DELTANET, POS_LEARNED, seed);
    setenv("STATEBENCH_CUDA_GRAPH", "0", 1);
    model *b = create_on(OPS_CUDA, MIXER_GATED_DELTANET, POS_LEARNED, seed);
    unsetenv("STATEBENCH_CUDA_GRAPH");
    model *c = create_on(OPS_CUDA, MIXER_GATED_DELTANET, POS_LEARNED, seed);
    for (int step = 1; step <= STEPS; step++) {
        model_step_stats sa, sb, sc;
        step_once(a, 1, seed, step, &sa);
        step_once(b, 1, seed, step, &sb);
        step_once(c, 1, seed, step, &sc);
        cr_expect(sa.loss == sb.loss && sa.loss == sc.loss && sa.grad_norm == sb.grad_norm &&
                      sa.grad_norm == sc.grad_norm,
                  "step %d: losses %.17g %.17g %.17g, norms %.17g %.17g %.17g", step, sa.loss, sb.loss, sc.loss,
                  sa.grad_norm, sb.grad_norm, sc.grad_norm);
    }
    cr_expect_eq(model_graphs_captured(a), 2);
    cr_expect_eq(model_graphs_captured(b), 0, "STATEBENCH_CUDA_GRAPH=0 turns the graphs off");
    expect_same_state("two trainings with graphs", a, c);
    expect_same_state("with and without graphs", a, b);
    model_free(a);
    model_free(b);
    model_free(c);
    ops_set_backend(OPS_CPU);
}

/* embedding_backward alone, where atomics would show most: 3 tokens over
 * 2800 positions (three of the GPU's fixed-order segments, each of several
 * chunks), many blocks: two calls on equal inputs give equal bits, within
 * the cross-backend bound of the CPU's sum. */
Test(cuda_graphs, embedding_backward_is_bit_reproducible)
{
    enum { EB = 4, ET = 700, EC = 40, EV = 3 };
    const size_t N = (size_t)EB * ET;
    uint64_t seed = 61, st = seed;
    fprintf(stderr, "cuda_graphs.embedding_backward_is_bit_reproducible: seed %llu\n", (unsigned long long)seed);
    int *tok = malloc(N * sizeof *tok);
    cr_assert_not_null(tok);
    for (size_t i = 0; i < N; i++) tok[i] = (int)(rand_uniform(&st) * EV);
    xt tokens = xt_ints(tok, N), dout = xt_rand(N * EC, -1, 1, seed + 1);
    xt first = xt_fill((size_t)EV * EC, 0), second = xt_fill((size_t)EV * EC, 0);
    BOTH(embedding_backward(XF(first), NULL, XF(dout), XI(tokens), EB, ET, EC, EV));
    xt_expect("embedding_backward dwte", &first, tol_sum((double)N));
    BOTH(embedding_backward(XF(second), NULL, XF(dout), XI(tokens), EB, ET, EC, EV));
    const size_t bytes = (size_t)EV * EC * sizeof(real);
    real *a = malloc(bytes), *b = malloc(bytes);
    cr_assert(a && b);
    xt_side = 1; /* the GPU's elements */
    xt_use_side();
    ops_download(a, XF(first), bytes);
    ops_download(b, XF(second), bytes);
    xt_side = 0;
    xt_use_side();
    cr_expect_eq(memcmp(a, b, bytes), 0, "two GPU calls on equal inputs differ");
    free(a);
    free(b);
    free(tok);
    xt *all[] = {&tokens, &dout, &first, &second};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}
