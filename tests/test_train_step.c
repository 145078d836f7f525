/* test_train_step.c: the training step without host syncs on the CPU: the
 * queued forward and AdamW step give bit for bit what the host-side step
 * gave (the loss, the gradient norm, clipping, the update), the step guard
 * skips non-finite steps and remembers the first, argmax_rows breaks ties
 * as the scorer always did; and train.precision (fp32 | tf32 | bf16, bf16
 * refused for runs on the CPU), which leaves the hashes of fp32 runs as
 * they were. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/commands.h"
#include "../harness/options.h"
#include "../harness/spec.h"
#include "../kernels/ops.h"
#include "../models/model.h"
#include "../models/model_internal.h"
#include "support.h"
#include "support_cmd.h"

static void one_thread(void)
{
    ops_set_threads(1);
}

TestSuite(train_step, .init = one_thread);

enum { B = 3, T = 11, VOCAB_IN = 3, VOCAB_OUT = 2 };

static model *create(int mixer, uint64_t seed)
{
    model_spec s = {0};
    s.mixer[0] = mixer;
    s.n_mixer = 1;
    s.layers = 2;
    s.d_model = 16;
    s.heads = 2;
    s.mlp = MLP_SWIGLU;
    s.mlp_ratio = 2;
    s.pos = POS_ROPE;
    s.rope_theta = 10000;
    s.feature_map = FMAP_ELU1;
    s.normalize = 1;
    model_config cfg = {.spec = s, .vocab_in = VOCAB_IN, .vocab_out = VOCAB_OUT, .max_batch = B, .max_len = T};
    char err[256] = "";
    model *m = model_create(&cfg, seed, err, sizeof err);
    cr_assert_not_null(m, "model_create: %s", err);
    return m;
}

/* Running parity over random bits, every third position unscored. */
static void batch(int *x, int *y, uint64_t seed)
{
    uint64_t st = seed;
    for (int b = 0; b < B; b++) {
        int parity = 0;
        for (int t = 0; t < T; t++) {
            const int bit = rand_uniform(&st) < 0.5;
            parity ^= bit;
            x[b * T + t] = 1 + bit;
            y[b * T + t] = t % 3 == 1 ? -1 : parity;
        }
    }
}

/* The step as the host computed it before the step guard: the norm from
 * sum_squares, the clip as scale_inplace on the whole gradient, AdamW per
 * run of tensors of equal decay, nothing when the norm is not finite. */
static double host_adamw_step(model *m, double lr, double wd, double clip, int step)
{
    real *p = model_params(m), *g = model_grads(m), *mom = model_adam_m(m), *var = model_adam_v(m);
    const size_t n = model_num_params(m);
    const double norm = sqrt(sum_squares(g, n));
    if (!isfinite(norm)) return norm;
    if (clip > 0 && norm > clip) scale_inplace(g, n, (real)(clip / norm));
    for (int i = 0; i < model_num_tensors(m);) {
        const model_tensor *first = model_tensor_at(m, i);
        size_t len = 0;
        for (; i < model_num_tensors(m) && model_tensor_at(m, i)->decay == first->decay; i++)
            len += model_tensor_at(m, i)->size;
        adamw_update(p + first->offset, g + first->offset, mom + first->offset, var + first->offset, len,
                     (real)lr, (real)0.9, (real)0.999, (real)1e-8, first->decay ? (real)wd : 0, step);
    }
    return norm;
}

static void queued_against_host(int mixer, double clip, uint64_t seed)
{
    model *queued = create(mixer, seed), *host = create(mixer, seed);
    const size_t n = model_num_params(queued);
    int x[B * T], y[B * T];
    int clipped = 0;
    for (int step = 1; step <= 6; step++) {
        batch(x, y, seed * 100 + (uint64_t)step);
        const double lr = lr_schedule(3e-2, 2, 6, 0.1, step);
        int count = 0;
        const double loss = model_forward(host, x, y, B, T, &count);
        model_backward(host);
        const double norm = host_adamw_step(host, lr, 0.01, clip, step);
        clipped += clip > 0 && norm > clip;

        cr_assert_eq(model_forward_queued(queued, x, y, B, T), count, "the host counts what the op counted");
        model_backward(queued);
        model_adamw_step_queued(queued, lr, 0.9, 0.999, 1e-8, 0.01, clip, step);
        model_step_stats st;
        model_step_read(queued, &st);
        cr_assert_eq(st.loss, loss, "%s step %d: loss %.17g, host %.17g", mixer_name(mixer), step, st.loss, loss);
        cr_assert_eq(st.grad_norm, norm, "%s step %d: norm %.17g, host %.17g", mixer_name(mixer), step,
                     st.grad_norm, norm);
        cr_assert_eq(st.first_bad_step, 0);
        cr_assert(memcmp(model_params(queued), model_params(host), n * sizeof(real)) == 0,
                  "%s step %d: the parameters differ from the host step's", mixer_name(mixer), step);
        cr_assert(memcmp(model_grads(queued), model_grads(host), n * sizeof(real)) == 0,
                  "%s step %d: the (clipped) gradients differ", mixer_name(mixer), step);
    }
    if (clip > 0) cr_assert_gt(clipped, 0, "clip %g never bit: the test would not see the clip", clip);
    model_free(queued);
    model_free(host);
}

Test(train_step, queued_step_is_the_host_step_bit_for_bit)
{
    fprintf(stderr, "train_step.queued_step_is_the_host_step_bit_for_bit: seeds 11, 12, 13\n");
    queued_against_host(MIXER_LSTM, 0.05, 11);
    queued_against_host(MIXER_DELTANET, 0, 12);
    queued_against_host(MIXER_ATTENTION, 1.0, 13);
}

/* The step's scalars for step (lr 0.01, betas 0.9 and 0.999, one scored
 * position): what the model uploads before the step's ops. */
static const step_scalars *at_step(int step)
{
    static step_scalars s;
    step_scalars_set(&s, 0.01, 0.9, 0.999, step, 1);
    return &s;
}

Test(train_step, guard_skips_nonfinite_steps_and_remembers_the_first)
{
    step_guard g = {0};
    const real finite = 7, nan_loss = NAN;
    g.grad_sumsq = 4;
    step_guard_update(&g, &finite, 1.0, at_step(1));
    cr_expect_eq(g.grad_norm, 2);
    cr_expect_eq(g.clip_scale, (real)0.5);
    cr_expect_eq(g.loss_sum, 7);
    cr_expect_eq(g.skip, 0);
    step_guard_update(&g, NULL, 3.0, at_step(2)); /* norm under the clip; nothing scored */
    cr_expect_eq(g.clip_scale, 1);
    cr_expect_eq(g.loss_sum, 0);
    step_guard_update(&g, &finite, 0, at_step(2)); /* clip off */
    cr_expect_eq(g.clip_scale, 1);
    step_guard_update(&g, &nan_loss, 1.0, at_step(3));
    cr_expect_eq(g.skip, 1);
    cr_expect_eq(g.first_bad_step, 3);
    cr_expect_eq(g.first_bad_what, STEP_BAD_LOSS);
    cr_expect(isnan(g.first_bad_value));
    g.grad_sumsq = INFINITY;
    step_guard_update(&g, &finite, 1.0, at_step(5));
    cr_expect_eq(g.skip, 1);
    cr_expect_eq(g.first_bad_step, 3, "the first bad step stays");
    cr_expect_eq(g.first_bad_what, STEP_BAD_LOSS);
    g.grad_sumsq = 1;
    step_guard_update(&g, &finite, 1.0, at_step(6));
    cr_expect_eq(g.skip, 0, "a finite step is not skipped");

    step_guard fresh = {0};
    fresh.grad_sumsq = NAN;
    step_guard_update(&fresh, &finite, 1.0, at_step(9));
    cr_expect_eq(fresh.first_bad_what, STEP_BAD_GRAD);
    cr_expect_eq(fresh.first_bad_step, 9);
}

Test(train_step, guarded_adamw_scales_first_and_skips_whole)
{
    enum { N = 37 };
    real p[2][N], g[2][N], m[2][N], v[2][N];
    fill_uniform(p[0], N, -1, 1, 31);
    fill_uniform(g[0], N, -1, 1, 32);
    fill_uniform(m[0], N, -0.1, 0.1, 33);
    fill_uniform(v[0], N, 0, 0.1, 34);
    memcpy(p[1], p[0], sizeof p[0]);
    memcpy(g[1], g[0], sizeof g[0]);
    memcpy(m[1], m[0], sizeof m[0]);
    memcpy(v[1], v[0], sizeof v[0]);
    step_guard guard = {.clip_scale = (real)0.3};
    adamw_update_guarded(p[0], g[0], m[0], v[0], N, (real)0.9, (real)0.999, (real)1e-8, (real)0.1, at_step(4), &guard);
    scale_inplace(g[1], N, (real)0.3);
    adamw_update(p[1], g[1], m[1], v[1], N, (real)0.01, (real)0.9, (real)0.999, (real)1e-8, (real)0.1, 4);
    cr_expect(memcmp(p[0], p[1], sizeof p[0]) == 0 && memcmp(g[0], g[1], sizeof g[0]) == 0 &&
              memcmp(m[0], m[1], sizeof m[0]) == 0 && memcmp(v[0], v[1], sizeof v[0]) == 0,
              "scale then update, as scale_inplace + adamw_update");

    guard.skip = 1;
    memcpy(p[1], p[0], sizeof p[0]);
    memcpy(g[1], g[0], sizeof g[0]);
    adamw_update_guarded(p[0], g[0], m[0], v[0], N, (real)0.9, (real)0.999, (real)1e-8, (real)0.1, at_step(5), &guard);
    cr_expect(memcmp(p[0], p[1], sizeof p[0]) == 0 && memcmp(g[0], g[1], sizeof g[0]) == 0,
              "a skipped step changes nothing");
}

Test(train_step, argmax_rows_takes_the_first_largest)
{
    enum { V = 4 };
    const real rows[][V] = {
        {0.1f, 0.2f, 0.6f, 0.1f},  /* 2 */
        {0.4f, 0.1f, 0.4f, 0.1f},  /* tie: the first, 0 */
        {0.1f, 0.3f, 0.3f, 0.3f},  /* tie: 1 */
        {NAN, 0.9f, 0.05f, 0.05f}, /* p[0] NaN: nothing beats it, 0 */
        {0.2f, NAN, 0.7f, 0.1f},   /* NaN elsewhere is never chosen: 2 */
        {0.25f, 0.25f, 0.25f, 0.25f},
    };
    const int expected[] = {2, 0, 1, 0, 2, 0};
    const int N = (int)(sizeof expected / sizeof *expected);
    int pred[sizeof expected / sizeof *expected];
    memset(pred, 0xff, sizeof pred);
    argmax_rows(pred, &rows[0][0], N, V);
    for (int r = 0; r < N; r++) cr_expect_eq(pred[r], expected[r], "row %d: %d, expected %d", r, pred[r], expected[r]);
}

Test(train_step, predictions_are_the_argmax_of_the_probabilities)
{
    model *m = create(MIXER_LSTM, 5);
    int x[B * T], y[B * T];
    batch(x, y, 55);
    model_forward(m, x, y, B, T, NULL);
    const real *probs = model_probs(m);
    const int *pred = model_predictions(m);
    for (int r = 0; r < B * T; r++)
        cr_expect_eq(pred[r], probs[2 * r + 1] > probs[2 * r] ? 1 : 0, "position %d", r);
    model_free(m);
}

Test(train_step, nonfinite_loss_skips_the_update)
{
    model *m = create(MIXER_DELTANET, 6);
    const size_t n = model_num_params(m);
    const model_tensor *head = model_tensor_at(m, model_num_tensors(m) - 1);
    real *p = model_params(m);
    for (size_t i = 0; i < head->size; i++) p[head->offset + i] = NAN;
    real *before = malloc(n * sizeof *before);
    cr_assert_not_null(before);
    memcpy(before, p, n * sizeof *before);
    int x[B * T], y[B * T];
    batch(x, y, 66);
    model_forward_queued(m, x, y, B, T);
    model_backward(m);
    model_adamw_step_queued(m, 1e-2, 0.9, 0.999, 1e-8, 0, 1.0, 4);
    model_step_stats st;
    model_step_read(m, &st);
    cr_expect_eq(st.first_bad_step, 4);
    cr_expect_eq(st.first_bad_what, STEP_BAD_LOSS);
    cr_expect(isnan(st.first_bad_value) && isnan(st.loss));
    cr_expect(memcmp(model_params(m), before, n * sizeof *before) == 0, "no parameter moved");
    free(before);
    model_free(m);
}

static void hash_of(const char *precision, char out[33], char **json)
{
    run_spec s;
    spec_defaults(&s, 0);
    char err[256] = "";
    if (precision) cr_assert_eq(options_set(&s, "train.precision", precision, err, sizeof err), 0, "%s", err);
    spec_hash(&s, out);
    *json = spec_to_json(&s);
    spec_free(&s);
}

Test(train_step, precision_is_hashed_unless_fp32)
{
    char plain[33], fp32[33], tf32[33], bf16[33], *json_plain, *json_fp32, *json_tf32, *json_bf16;
    hash_of(NULL, plain, &json_plain);
    hash_of("fp32", fp32, &json_fp32);
    hash_of("tf32", tf32, &json_tf32);
    hash_of("bf16", bf16, &json_bf16);
    cr_expect_str_eq(plain, fp32, "fp32, the default, keeps the hashes of the runs before the option");
    cr_expect_str_neq(plain, tf32, "a tf32 run is another run");
    cr_expect_str_neq(plain, bf16, "a bf16 run is another run");
    cr_expect_str_neq(tf32, bf16, "bf16 and tf32 runs differ");
    cr_expect_null(strstr(json_fp32, "precision"), "%s", json_fp32);
    cr_expect_not_null(strstr(json_tf32, "\"precision\":\"tf32\""), "%s", json_tf32);
    cr_expect_not_null(strstr(json_bf16, "\"precision\":\"bf16\""), "%s", json_bf16);
    free(json_plain);
    free(json_fp32);
    free(json_tf32);
    free(json_bf16);
}

/* train.deterministic: true, the one mode every kernel has, is the default
 * and leaves the hash and the canonical JSON as they were; false is a
 * config error naming what is allowed (there is no other mode to run). */
Test(train_step, deterministic_true_is_the_default_and_false_an_error)
{
    run_spec s;
    spec_defaults(&s, 0);
    char plain[33], set[33], err[256] = "";
    spec_hash(&s, plain);
    cr_assert_eq(options_set(&s, "train.deterministic", "true", err, sizeof err), 0, "%s", err);
    spec_hash(&s, set);
    cr_expect_str_eq(plain, set, "true is the default: the same runs");
    char *json = spec_to_json(&s);
    cr_expect_null(strstr(json, "deterministic"), "%s", json);
    free(json);
    cr_expect_neq(options_set(&s, "train.deterministic", "false", err, sizeof err), 0);
    cr_expect_not_null(strstr(err, "train.deterministic") && strstr(err, "allowed: true") ? err : NULL, "%s", err);
    spec_free(&s);
}

/* bf16 is a valid setting (the spec checks pass): only where the run
 * trains decides (cmd_run: the GPU only). */
Test(train_step, bf16_passes_the_option_checks)
{
    run_spec s;
    spec_defaults(&s, 0);
    char err[256] = "";
    cr_assert_eq(options_set(&s, "train.precision", "bf16", err, sizeof err), 0, "%s", err);
    const sb_option *blame = NULL;
    cr_expect_eq(options_check(&s, &blame, err, sizeof err), 0, "%s", err);
    cr_expect_eq(s.train.precision, PRECISION_BF16);
    spec_free(&s);
}

Test(train_step, bf16_is_refused_on_the_cpu_and_tf32_runs_there, .timeout = 120)
{
    char dir[256], cfg[300], db[300], log[300];
    make_temp_dir(dir, sizeof dir, "sb_train_step");
    snprintf(cfg, sizeof cfg, "%s/p.yaml", dir);
    snprintf(db, sizeof db, "%s/p.db", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    write_text(cfg, "name: p\n"
                    "task: {name: parity, train_len: [3, 9], eval_len: [9]}\n"
                    "model: {mixer: lstm, layers: 1, d_model: 8}\n"
                    "train: {steps: 5, batch: 4, precision: bf16}\n"
                    "eval: {count: 8, batch: 4}\n");
    const char *args[] = {"run", cfg, "--db", db, "--threads", "1", "--device", "cpu", NULL};
    cr_expect_eq(run_command(log, cmd_run, args), 2, "bf16 on the CPU is a config error");
    char *text = read_text(log);
    cr_expect_not_null(strstr(text, "p.yaml: run 1 (lstm d=8 L=1 seed=0): train.precision bf16 needs the GPU, but this run would "
                                    "train on the CPU (--device cpu); allowed on the CPU: fp32, tf32"),
                       "%s", text);
    free(text);
    FILE *made = fopen(db, "rb");
    cr_expect_null(made, "refused before the database is made: nothing is recorded");
    if (made) fclose(made);

    write_text(cfg, "name: p\n"
                    "task: {name: parity, train_len: [3, 9], eval_len: [9]}\n"
                    "model: {mixer: lstm, layers: 1, d_model: 8}\n"
                    "train: {steps: 5, batch: 4, precision: tf32}\n"
                    "eval: {count: 8, batch: 4}\n");
    cr_expect_eq(run_command(log, cmd_run, args), 0, "see %s", log);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'done' AND device = 'cpu' AND "
                             "json_extract(config, '$.train.precision') = 'tf32'"),
                 1, "the runs table records the precision asked for");
    text = read_text(log);
    cr_expect_not_null(strstr(text, "the CPU computes fp32"), "%s", text);
    free(text);
    remove_temp_dir(dir);
}
