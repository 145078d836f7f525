/* test_bench.c: `statebench bench` prints the gemm ceiling and a row per
 * shape with PyTorch's figures beside the BASELINES shapes, records a train
 * and an infer row per shape, takes `--mixers all`, and refuses bad mixers;
 * `bench --kernels` times the ops alone into rows of their own kind. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/commands.h"
#include "../kernels/ops.h"
#include "support_cmd.h"

TestSuite(bench, .init = NULL);

Test(bench, rows_table_and_pytorch_columns)
{
    char dir[256], db[300], log[300];
    make_temp_dir(dir, sizeof dir, "sb_bench");
    snprintf(db, sizeof db, "%s/b.db", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    /* d = 64, n = 64 is a BASELINES shape (PyTorch columns); n = 5 is not */
    const char *args[] = {"bench", "--mixers", "lstm,attention", "--d", "64", "--n", "64,5",
                          "--steps", "1", "--threads", "1", "--peak", "100", "--db", db, NULL};
    cr_assert_eq(run_command(log, cmd_bench, args), 0);
    char *out = read_text(log);
    cr_expect(strstr(out, "gemm ceiling: 100.0 GFLOP/s (--peak)") != NULL, "%s", out);
    cr_expect(strstr(out, "| PyTorch train tok/s |") != NULL, "%s", out);
    /* PyTorch's lstm d=64 n=64 figures of BASELINES.md beside ours */
    cr_expect(strstr(out, "| 30126 | 120922 |") != NULL, "%s", out);
    cr_expect(strstr(out, "| 42639 | 123824 |") != NULL, "%s", out);
    free(out);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench"), 8);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE direction = 'train' AND tokens_per_s > 0"), 4);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.gemm_gflops') = 100"), 8);
    remove_temp_dir(dir);
    ops_set_threads(1);
}

Test(bench, all_mixers_and_bad_names)
{
    char dir[256], log[300];
    make_temp_dir(dir, sizeof dir, "sb_bench");
    snprintf(log, sizeof log, "%s/log", dir);
    const char *all[] = {"bench", "--mixers", "all", "--d", "8", "--n", "4", "--batch", "2",
                         "--steps", "1", "--threads", "1", "--peak", "1", "--db", "", NULL};
    cr_expect_eq(run_command(log, cmd_bench, all), 0);
    char *out = read_text(log);
    cr_expect(strstr(out, "| lstm | 8 | 4 |") && strstr(out, "| mamba | 8 | 4 |") &&
                  strstr(out, "| deltanet | 8 | 4 |"),
              "%s", out);
    free(out);
    const char *bad[] = {"bench", "--mixers", "lstm,nope", "--db", "", NULL};
    cr_expect_eq(run_command(log, cmd_bench, bad), 2);
    out = read_text(log);
    cr_expect(strstr(out, "'nope' is not a known mixer") != NULL, "%s", out);
    free(out);
    remove_temp_dir(dir);
    ops_set_threads(1);
}

/* --kernels on the CPU at a tiny shape: a row per op, form and length in
 * the table (scan_delta in its recurrent and chunked forms, the others in
 * their one), each op at its own dimensions (mamba's Di = H D, the LSTM's
 * d = H D), and a fwd and a fwd+bwd row per op, form and length in the
 * bench table, told apart from training rows by config.kind. */
Test(bench, kernels_table_and_rows)
{
    char dir[256], db[300], log[300];
    make_temp_dir(dir, sizeof dir, "sb_bench");
    snprintf(db, sizeof db, "%s/k.db", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    const char *args[] = {"bench", "--kernels", "--batch", "2", "--n", "5,17", "--heads", "2", "--head-dim", "4",
                          "--d-state", "3", "--steps", "2", "--threads", "1", "--db", db, NULL};
    cr_assert_eq(run_command(log, cmd_bench, args), 0);
    char *out = read_text(log);
    cr_expect(strstr(out, "| op | kernel | form | shape | device | fwd ms | fwd+bwd ms |") != NULL, "%s", out);
    static const char *const rows[] = {
        "| deltanet | scan_delta (beta) | recurrent | B 2, T 5, H 2, D 4 | cpu | ",
        "| deltanet | scan_delta (beta) | chunked | B 2, T 5, H 2, D 4 | cpu | ",
        "| gated_deltanet | scan_delta (beta, alpha) | recurrent | B 2, T 17, H 2, D 4 | cpu | ",
        "| gated_deltanet | scan_delta (beta, alpha) | chunked | B 2, T 17, H 2, D 4 | cpu | ",
        "| gla | scan_delta_vec | recurrent | B 2, T 5, H 2, D 4 | cpu | ",
        "| mamba | selective_scan | - | B 2, T 17, Di 8, N 3 | cpu | ",
        "| lstm | lstm (recurrence) | - | B 2, T 5, d 8 | cpu | ",
        "| attention | attention (causal) | - | B 2, T 17, H 2, D 4 | cpu | ",
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) cr_expect(strstr(out, rows[i]) != NULL, "%s\n%s", rows[i], out);
    free(out);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench"), 32);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.kind') = 'kernel' AND ms > 0 "
                             "AND tokens_per_s > 0 AND mixer LIKE 'kernel:%' AND batch = 2 AND device = 'cpu'"),
                 32);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE direction = 'fwd+bwd'"), 16);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.form') = 'chunked' AND "
                             "mixer IN ('kernel:deltanet', 'kernel:gated_deltanet')"),
                 8, "two ops, two lengths, two directions");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.form') = 'recurrent'"), 12,
                 "deltanet, gated_deltanet and gla");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE mixer = 'kernel:mamba' AND n = 17 AND "
                             "json_extract(config, '$.d_state') = 3 AND json_extract(config, '$.H') = 2 AND "
                             "json_extract(config, '$.D') = 4"),
                 2);
    /* training rows into the same database: kind "step", one per layers value */
    const char *steps[] = {"bench", "--mixers", "lstm", "--d", "8", "--n", "4", "--batch", "2", "--layers", "1,2",
                           "--steps", "1", "--threads", "1", "--peak", "1", "--db", db, NULL};
    cr_assert_eq(run_command(log, cmd_bench, steps), 0);
    out = read_text(log);
    cr_expect(strstr(out, "| lstm | 8 | 4 |") != NULL && strstr(out, " | 1 |\n") && strstr(out, " | 2 |\n"), "%s", out);
    free(out);
    /* graphs: how many CUDA graphs the step captured (none on the CPU) */
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.kind') = 'step' AND "
                             "direction IN ('train', 'infer') AND mixer = 'lstm' AND "
                             "json_extract(config, '$.graphs') = 0"),
                 4);
    cr_expect_eq(sql_int(db, "SELECT count(DISTINCT json_extract(config, '$.layers')) FROM bench WHERE "
                             "json_extract(config, '$.kind') = 'step'"),
                 2);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM bench WHERE json_extract(config, '$.kind') = 'kernel'"), 32);
    remove_temp_dir(dir);
    ops_set_threads(1);
}

/* Exit 2 with the option and what is allowed, before anything runs. */
static void expect_usage_error(const char *log, const char *const *args, const char *message)
{
    cr_expect_eq(run_command(log, cmd_bench, args), 2, "%s", args[1]);
    char *out = read_text(log);
    cr_expect(strstr(out, message) != NULL, "expected '%s' in:\n%s", message, out);
    free(out);
}

Test(bench, kernels_bad_options)
{
    char dir[256], log[300];
    make_temp_dir(dir, sizeof dir, "sb_bench");
    snprintf(log, sizeof log, "%s/log", dir);
    const char *step_opt[] = {"bench", "--kernels", "--d", "64", "--db", "", NULL};
    expect_usage_error(log, step_opt, "--d applies to training steps, not to --kernels");
    const char *mixers[] = {"bench", "--mixers", "lstm", "--kernels", "--db", "", NULL};
    expect_usage_error(log, mixers, "--mixers applies to training steps, not to --kernels");
    const char *bad_op[] = {"bench", "--kernels", "--ops", "deltanet,nope", "--db", "", NULL};
    expect_usage_error(log, bad_op, "--ops: 'nope' is not a known op; allowed: deltanet gated_deltanet gla mamba lstm "
                                    "attention all");
    const char *twice[] = {"bench", "--kernels", "--ops", "gla,gla", "--db", "", NULL};
    expect_usage_error(log, twice, "--ops: 'gla' is not wanted twice");
    const char *no_kernels[] = {"bench", "--heads", "4", "--db", "", NULL};
    expect_usage_error(log, no_kernels, "--heads applies only with --kernels");
    const char *dim[] = {"bench", "--kernels", "--head-dim", "0", "--db", "", NULL};
    expect_usage_error(log, dim, "--head-dim: '0' is not an integer in the allowed range 1..1024");
    const char *wide[] = {"bench", "--kernels", "--heads", "1024", "--head-dim", "1024", "--db", "", NULL};
    expect_usage_error(log, wide, "--heads 1024 x --head-dim 1024 is too large");
    const char *layers[] = {"bench", "--layers", "0", "--db", "", NULL};
    expect_usage_error(log, layers, "--layers");
    remove_temp_dir(dir);
}
