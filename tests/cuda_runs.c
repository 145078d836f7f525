/* cuda_runs.c: `statebench run --device cuda` end to end, against the same
 * sweep on the CPU: the GPU step reads its metrics only on the logged
 * steps, yet the runs table, the curve rows and the evaluations come out as
 * the CPU's (losses within the cross-backend tolerance), replaying the
 * step's CUDA graphs and recorded as deterministic; a diverging run
 * is marked at its first bad step; a run too big for the GPU is refused
 * before it allocates.
 * No suite .init: the runner probes the device in a child process, which
 * a CUDA context made in this process before the fork would break; so each
 * test makes one GPU run, and that run says when there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/commands.h"
#include "../kernels/ops.h"
#include "support_cmd.h"

static void one_thread(void)
{
    ops_set_threads(1);
}

TestSuite(cuda_runs, .init = one_thread);

/* Runs config on device into db; fails the test, quoting the log, when the
 * exit code is not rc (2 with "no CUDA device": there is no GPU). */
static void run_on(const char *dir, const char *config, const char *device, const char *db, int rc)
{
    char cfg[512], log[512];
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", dir, device);
    snprintf(log, sizeof log, "%s/%s.log", dir, device);
    write_text(cfg, config);
    const char *args[] = {"run", cfg, "--db", db, "--threads", "1", "--device", device, NULL};
    const int got = run_command(log, cmd_run, args);
    if (got == rc) return;
    char *text = read_text(log);
    if (got == 2 && strstr(text, "no CUDA device")) cr_assert_fail("no CUDA device: %s", text);
    cr_assert_fail("run --device %s exited %d, expected %d:\n%s", device, got, rc, text);
}

/* The first max_rows rows of sql's cols numeric columns into out (row-major);
 * returns the number of rows. */
static int read_rows(const char *path, const char *sql, double *out, int max_rows, int cols)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "%s", path);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    int rows = 0;
    while (rows < max_rows && sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < cols; c++) out[rows * cols + c] = sqlite3_column_double(st, c);
        rows++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rows;
}

Test(cuda_runs, gpu_run_records_what_the_cpu_run_records, .timeout = 600)
{
    char dir[256], db_cpu[300], db_gpu[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_runs");
    snprintf(db_cpu, sizeof db_cpu, "%s/cpu.db", dir);
    snprintf(db_gpu, sizeof db_gpu, "%s/gpu.db", dir);
    /* log_every 7, eval every 15, checkpoints every 10: reads at steps that
     * are not curve rows, and a last step that is none of them */
    const char *config = "name: g\n"
                         "seeds: [3]\n"
                         "task: {name: parity, mode: running, train_len: [3, 17], eval_len: [17, 31]}\n"
                         "model: {mixer: deltanet, layers: 1, d_model: 16, heads: 2, mlp: none}\n"
                         "train: {steps: 32, batch: 8, lr: 3.0e-3, warmup: 4, grad_clip: 0.5, log_every: 7,\n"
                         "        checkpoint_every: 10}\n"
                         "eval: {every: 15, count: 16, batch: 8}\n";
    run_on(dir, config, "cpu", db_cpu, 0);
    run_on(dir, config, "cuda", db_gpu, 0);
    char log[300];
    snprintf(log, sizeof log, "%s/cuda.log", dir);
    char *text = read_text(log);
    cr_expect(strstr(text, "no CUDA graph") == NULL, "the steps replay CUDA graphs:\n%s", text);
    free(text);
    cr_expect_eq(sql_int(db_gpu, "SELECT count(*) FROM runs WHERE status = 'done' AND steps_done = 32 AND "
                                 "device != 'cpu' AND deterministic = 1"),
                 1);
    cr_expect_eq(sql_int(db_gpu, "SELECT count(*) FROM curves"), 5, "rows at 7, 14, 21, 28 and the last, 32");
    cr_expect_eq(sql_int(db_cpu, "SELECT count(*) FROM curves"), 5);
    cr_expect_eq(sql_int(db_gpu, "SELECT sum(step) FROM curves"), 7 + 14 + 21 + 28 + 32);
    cr_expect_eq(sql_int(db_gpu, "SELECT count(*) FROM evals"), 3 * 2, "steps 15, 30, 32 at 2 lengths");
    /* the same rows within the 50-step curve tolerance of cuda_models */
    const char *curve_sql = "SELECT step, loss, grad_norm, lr, tokens_per_s FROM curves ORDER BY step";
    double gpu[5][5], cpu[5][5];
    cr_assert_eq(read_rows(db_gpu, curve_sql, &gpu[0][0], 5, 5), 5);
    cr_assert_eq(read_rows(db_cpu, curve_sql, &cpu[0][0], 5, 5), 5);
    for (int r = 0; r < 5; r++) {
        cr_expect_eq(gpu[r][0], cpu[r][0]);
        cr_expect(fabs(gpu[r][1] - cpu[r][1]) <= 1e-2 * fabs(cpu[r][1]), "step %g: loss GPU %.7g CPU %.7g",
                  cpu[r][0], gpu[r][1], cpu[r][1]);
        cr_expect(fabs(gpu[r][2] - cpu[r][2]) <= 1e-2 * cpu[r][2], "step %g: gradient norm GPU %.7g CPU %.7g",
                  cpu[r][0], gpu[r][2], cpu[r][2]);
        cr_expect_eq(gpu[r][3], cpu[r][3], "step %g: lr", cpu[r][0]);
        cr_expect_gt(gpu[r][4], 0, "step %g: tokens/s", cpu[r][0]);
    }
    const char *eval_sql = "SELECT step, n, count, loss, token_acc FROM evals ORDER BY step, n";
    double ge[6][5], ce[6][5];
    cr_assert_eq(read_rows(db_gpu, eval_sql, &ge[0][0], 6, 5), 6);
    cr_assert_eq(read_rows(db_cpu, eval_sql, &ce[0][0], 6, 5), 6);
    for (int r = 0; r < 6; r++) {
        cr_expect(ge[r][0] == ce[r][0] && ge[r][1] == ce[r][1] && ge[r][2] == ce[r][2], "eval row %d", r);
        cr_expect(fabs(ge[r][3] - ce[r][3]) <= 1e-2 * fabs(ce[r][3]), "eval step %g n %g: loss GPU %.7g CPU %.7g",
                  ce[r][0], ce[r][1], ge[r][3], ce[r][3]);
        cr_expect(fabs(ge[r][4] - ce[r][4]) <= 0.05, "eval step %g n %g: token_acc GPU %.4f CPU %.4f", ce[r][0],
                  ce[r][1], ge[r][4], ce[r][4]);
    }
    remove_temp_dir(dir);
}

/* As tests/test_faults.c's: AdamW's decay of 1 - lr wd = -99 per step
 * overflows the weights within a few steps. The GPU learns of it only at
 * the next read (log_every 5), yet marks the first bad step, with no curve
 * row from it on. */
Test(cuda_runs, diverging_gpu_run_is_marked_at_its_first_bad_step, .timeout = 300)
{
    char dir[256], db[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_runs");
    snprintf(db, sizeof db, "%s/gpu.db", dir);
    run_on(dir,
           "name: nan\n"
           "task: {name: parity, train_len: [3, 9], eval_len: [9]}\n"
           "model: {mixer: lstm, layers: 1, d_model: 8}\n"
           "train: {steps: 40, batch: 8, lr: 10, weight_decay: 10, grad_clip: 0, log_every: 5}\n"
           "eval: {count: 16, batch: 8}\n",
           "cuda", db, 0);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'diverged' AND steps_done < 40 AND "
                             "(error = 'loss became nan at step ' || (steps_done + 1) OR "
                             " error = 'loss became inf at step ' || (steps_done + 1) OR "
                             " error LIKE 'gradient norm became % at step ' || steps_done)"),
                 1, "the first bad step, as the CPU reports it");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM curves c JOIN runs r ON r.id = c.run_id WHERE c.step > "
                             "r.steps_done OR c.loss != c.loss OR abs(c.loss) > 1e300"),
                 0, "no curve row at or after the bad step");
    remove_temp_dir(dir);
}

Test(cuda_runs, run_too_big_for_the_gpu_is_refused_before_it_allocates, .timeout = 120)
{
    char dir[256], db[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_runs");
    snprintf(db, sizeof db, "%s/gpu.db", dir);
    setenv("STATEBENCH_MEMORY_LIMIT", "100000T", 1); /* the host's own limit is not the one tested */
    /* batch 4096 at length 16384, d 64: some 680 GiB */
    run_on(dir,
           "name: big\n"
           "task: {name: parity, train_len: [3, 9], eval_len: [16384]}\n"
           "model: {mixer: lstm, layers: 1, d_model: 64}\n"
           "train: {steps: 5, batch: 4096}\n"
           "eval: {count: 16, batch: 8}\n",
           "cuda", db, 1);
    unsetenv("STATEBENCH_MEMORY_LIMIT");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'failed' AND steps_done = 0 AND error LIKE "
                             "'refused before starting: the model needs an estimated % GiB of GPU memory (batch "
                             "4096, length 16384)% but GPU 0 has % GiB free of % GiB; %'"),
                 1);
    remove_temp_dir(dir);
}

/* A sweep with one run past what the CUDA kernels cover (deltanet's head
 * size 256 > CUDA_SCAN_DELTA_MAX_KV): --device cuda refuses the whole config
 * with exit 2 naming the run, the size, the limit and --device cpu, and
 * records nothing, leaving a database's earlier results as they were;
 * --device auto trains that run on the CPU and the other on the GPU. */
Test(cuda_runs, run_past_the_cuda_size_limits_is_a_config_error, .timeout = 300)
{
    char dir[256], db[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_runs");
    snprintf(db, sizeof db, "%s/r.db", dir);
    const char *earlier = "name: e\n"
                          "task: {name: parity, train_len: [3, 5], eval_len: [5]}\n"
                          "model: {mixer: lstm, layers: 1, d_model: 8, mlp: none}\n"
                          "train: {steps: 2, batch: 4}\n"
                          "eval: {count: 4, batch: 4}\n";
    run_on(dir, earlier, "cpu", db, 0);
    const char *config = "name: l\n"
                         "task: {name: parity, train_len: [3, 5], eval_len: [5]}\n"
                         "model: {mixer: deltanet, layers: 1, d_model: 16, heads: 1, mlp: none}\n"
                         "train: {steps: 2, batch: 4}\n"
                         "eval: {count: 4, batch: 4}\n"
                         "sweep:\n"
                         "  model.d_model: [16, 256]\n";
    run_on(dir, config, "cuda", db, 2);
    char log[300];
    snprintf(log, sizeof log, "%s/cuda.log", dir);
    char *text = read_text(log);
    cr_expect(strstr(text, "run 2") && strstr(text, "deltanet") && strstr(text, "head size d_model/heads = 256") &&
                  strstr(text, "at most 128") && strstr(text, "--device cpu"),
              "names run 2, the mixer, the size, the limit and the way out:\n%s", text);
    cr_expect(strstr(text, "run 1") == NULL, "run 1 fits:\n%s", text);
    free(text);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs"), 1, "only the earlier run");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'done' AND mixer = 'lstm'"), 1);

    run_on(dir, config, "auto", db, 0);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'done' AND mixer = 'deltanet' AND device = "
                             "'cpu' AND config LIKE '%\"d_model\":256%'"),
                 1, "the run past the limits trained on the CPU");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'done' AND mixer = 'deltanet' AND device != "
                             "'cpu' AND config LIKE '%\"d_model\":16%'"),
                 1, "the other on the GPU");
    remove_temp_dir(dir);
}
