/* test_bench.c: `statebench bench` prints the gemm ceiling and a row per
 * shape with PyTorch's figures beside the BASELINES shapes, records a train
 * and an infer row per shape, takes `--mixers all`, and refuses bad mixers. */
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
