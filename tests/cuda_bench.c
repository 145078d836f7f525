/* cuda_bench.c: `statebench bench --device cuda`, both tables: every op of
 * --kernels runs forward and backward on the GPU (at the anchors' shape
 * B 8, T 1024, H 8, D 64 on a GPU, a tiny one on the emulator) and the
 * training step (model_train_step, as `run` trains) runs for mixers of
 * each kernel family, each row recorded with the GPU's name as its device.
 * No suite .init: cmd_bench selects the CUDA backend itself and says when
 * there is no GPU. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/commands.h"
#include "../kernels/ops.h"
#include "cuda_check.h"
#include "support_cmd.h"

TestSuite(cuda_bench);

/* Runs bench with args; fails the test quoting its output unless it exits 0. */
static void bench_ok(const char *log, const char *const *args)
{
    const int rc = run_command(log, cmd_bench, args);
    if (rc == 0) return;
    char *text = read_text(log);
    if (rc == 2 && strstr(text, "no CUDA device")) cr_assert_fail("no CUDA device: %s", text);
    cr_assert_fail("bench exited %d:\n%s", rc, text);
}

Test(cuda_bench, kernels_and_queued_steps_on_the_gpu, .timeout = 600)
{
    char dir[256], db[300], log[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_bench");
    snprintf(db, sizeof db, "%s/b.db", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    /* xt_emulated needs the backend; the first bench call selects it */
    const char *probe[] = {"bench", "--device", "cuda", "--kernels", "--ops", "lstm", "--batch", "1", "--n", "2",
                           "--heads", "1", "--head-dim", "2", "--steps", "1", "--threads", "1", "--db", "", NULL};
    bench_ok(log, probe);
    const int emulated = xt_emulated();
    const char *kernels[] = {"bench", "--device", "cuda", "--kernels", "--batch", emulated ? "2" : "8",
                             "--n", emulated ? "5" : "1024", "--heads", emulated ? "2" : "8",
                             "--head-dim", emulated ? "4" : "64", "--d-state", emulated ? "3" : "16",
                             "--steps", "2", "--threads", "1", "--db", db, NULL};
    bench_ok(log, kernels);
    char *out = read_text(log);
    static const char *const ops[] = {"| deltanet |", "| gated_deltanet |", "| gla |", "| mamba |", "| lstm |",
                                      "| attention |"};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) cr_expect(strstr(out, ops[i]) != NULL, "%s\n%s", ops[i], out);
    free(out);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.kind') = 'kernel' AND "
                             "device != 'cpu' AND ms > 0"),
                 18, "6 ops, the scans of deltanet, gated_deltanet and gla in 2 forms, 2 directions");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.form') = 'chunked' AND "
                             "mixer IN ('kernel:deltanet', 'kernel:gated_deltanet', 'kernel:gla')"),
                 6);
    const char *steps[] = {"bench", "--device", "cuda", "--mixers", "deltanet,gla,mamba,lstm,attention", "--d", "8",
                           "--n", "5", "--batch", "2", "--layers", "1", "--steps", "2", "--threads", "1", "--peak",
                           "1", "--db", db, NULL};
    bench_ok(log, steps);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.kind') = 'step' AND "
                             "device != 'cpu' AND tokens_per_s > 0 AND json_extract(config, '$.layers') = 1"),
                 10);
    remove_temp_dir(dir);
}

/* Shapes past what the CUDA kernels cover (kernels/cuda_limits.h) are
 * refused before anything is timed or recorded, with exit 2, the option
 * and the limit. */
Test(cuda_bench, shapes_past_the_cuda_limits_are_usage_errors, .timeout = 120)
{
    char dir[256], db[300], log[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_bench");
    snprintf(db, sizeof db, "%s/b.db", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    const char *wide_head[] = {"bench", "--device", "cuda", "--kernels", "--ops", "lstm,attention", "--batch", "1",
                               "--n", "2", "--heads", "1", "--head-dim", "129", "--steps", "1", "--db", db, NULL};
    const char *wide_model[] = {"bench", "--device", "cuda", "--mixers", "lstm,deltanet", "--d", "16,1024", "--n",
                                "2", "--batch", "1", "--steps", "1", "--peak", "1", "--db", db, NULL};
    const char *const *cases[] = {wide_head, wide_model};
    const char *want[][3] = {{"--head-dim 129", "attention (causal)", "up to 128"},
                             {"d 1024", "deltanet", "head size d_model/heads = 256"}};
    for (int i = 0; i < 2; i++) {
        const int rc = run_command(log, cmd_bench, cases[i]);
        char *out = read_text(log);
        if (rc == 2 && strstr(out, "no CUDA device")) cr_assert_fail("no CUDA device: %s", out);
        cr_expect_eq(rc, 2, "case %d:\n%s", i, out);
        for (int j = 0; j < 3; j++) cr_expect(strstr(out, want[i][j]) != NULL, "'%s' in:\n%s", want[i][j], out);
        cr_expect(strstr(out, "| lstm |") == NULL, "nothing timed:\n%s", out);
        free(out);
    }
    FILE *f = fopen(db, "r");
    cr_expect_null(f, "no database written");
    if (f) fclose(f);
    remove_temp_dir(dir);
}
