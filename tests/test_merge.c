/* test_merge.c: `statebench merge`: shards merge to the results of one
 * unsharded run (eval_metrics rows included), done beats unfinished, conflicting duplicates are reported
 * and never silently dropped, bench rows, bad inputs merge nothing, and
 * `statebench status` on the result. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness/cmd_merge.h"
#include "../harness/commands.h"
#include "../harness/db.h"
#include "support_cmd.h"

static char dir[64];

static void setup(void) { make_temp_dir(dir, sizeof dir, "sb_merge"); }
static void teardown(void) { remove_temp_dir(dir); }

TestSuite(merge, .init = setup, .fini = teardown);

static void path_in(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", dir, name); }

/* Tiny sweep: 2 mixers x 2 seeds, parity, 12 steps: 4 runs in well under a second. */
static const char sweep_config[] =
    "name: mergeme\n"
    "seeds: [0, 1]\n"
    "task: {name: parity, train_len: [3, 9], eval_len: [9, 17]}\n"
    "model: {mixer: deltanet, layers: 1, d_model: 8, heads: 2}\n"
    "train: {steps: 12, batch: 8, lr: 3.0e-3, log_every: 2}\n"
    "eval: {every: 6, count: 16, batch: 8}\n"
    "sweep:\n"
    "  model.mixer: [deltanet, lstm]\n";

/* Evals and curves (without the timing column) of every run, keyed by hash. */
#define EVALS_BY_HASH                                                                                          \
    "SELECT r.hash, e.step, e.n, e.token_acc, e.seq_acc, e.scaled_acc, e.loss, e.count FROM evals e"         \
    " JOIN runs r ON r.id = e.run_id ORDER BY r.hash, e.step, e.n"
#define METRICS_BY_HASH                                                                                        \
    "SELECT r.hash, m.step, m.n, m.name, m.value FROM eval_metrics m JOIN runs r ON r.id = m.run_id"          \
    " ORDER BY r.hash, m.step, m.n, m.name"
#define CURVES_BY_HASH                                                                                         \
    "SELECT r.hash, c.step, c.loss, c.acc, c.lr, c.grad_norm FROM curves c JOIN runs r ON r.id = c.run_id"    \
    " ORDER BY r.hash, c.step"

static int merge(const char *log, const char *out, const char *a, const char *b, const char *c)
{
    const char *args[] = {"merge", out, a, b, c, NULL};
    return run_command(log, cmd_merge, args);
}

Test(merge, shards_merge_to_the_results_of_one_run, .timeout = 120)
{
    char cfg[128], single[128], s0[128], s1[128], out[128], log[128];
    path_in(cfg, sizeof cfg, "sweep.yaml");
    path_in(single, sizeof single, "single.db");
    path_in(s0, sizeof s0, "shard_0.db");
    path_in(s1, sizeof s1, "shard_1.db");
    path_in(out, sizeof out, "merged.db");
    path_in(log, sizeof log, "log.txt");
    write_text(cfg, sweep_config);
    const char *full[] = {"run", cfg, "--db", single, "--threads", "1", NULL};
    const char *shard0[] = {"run", cfg, "--db", s0, "--threads", "1", "--shard", "0/2", NULL};
    const char *shard1[] = {"run", cfg, "--db", s1, "--threads", "1", "--shard", "1/2", NULL};
    cr_assert_eq(run_command(log, cmd_run, full), 0, "see %s", log);
    cr_assert_eq(run_command(log, cmd_run, shard0), 0, "see %s", log);
    cr_assert_eq(run_command(log, cmd_run, shard1), 0, "see %s", log);
    cr_assert_eq(sql_int(s0, "SELECT count(*) FROM runs"), 2);
    cr_assert_eq(sql_int(s1, "SELECT count(*) FROM runs"), 2);

    cr_assert_eq(merge(log, out, s0, s1, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM runs WHERE status = 'done'"), 4);
    cr_expect_eq(sql_int(out, "SELECT count(DISTINCT hash) FROM runs"), 4);
    char want[17], got[17];
    sql_digest(single, EVALS_BY_HASH, want);
    sql_digest(out, EVALS_BY_HASH, got);
    cr_expect_str_eq(got, want, "merged evals differ from the unsharded run's");
    sql_digest(single, CURVES_BY_HASH, want);
    sql_digest(out, CURVES_BY_HASH, got);
    cr_expect_str_eq(got, want, "merged curves differ from the unsharded run's");
    sql_digest(single, METRICS_BY_HASH, want);
    sql_digest(out, METRICS_BY_HASH, got);
    cr_expect_str_eq(got, want, "merged eval_metrics differ from the unsharded run's");
    long long evals = sql_int(out, "SELECT count(*) FROM evals"), curves = sql_int(out, "SELECT count(*) FROM curves");
    long long metrics = sql_int(out, "SELECT count(*) FROM eval_metrics");
    cr_expect_eq(evals, sql_int(single, "SELECT count(*) FROM evals"));
    cr_expect_eq(curves, sql_int(single, "SELECT count(*) FROM curves"));
    cr_expect_eq(metrics, sql_int(single, "SELECT count(*) FROM eval_metrics"));
    cr_expect_eq(metrics, sql_int(s0, "SELECT count(*) FROM eval_metrics") +
                              sql_int(s1, "SELECT count(*) FROM eval_metrics"));
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM evals e WHERE NOT EXISTS (SELECT 1 FROM eval_metrics m WHERE"
                              " m.run_id = e.run_id AND m.step = e.step AND m.n = e.n AND m.name = 'plain_token_acc')"),
                 0, "every merged eval row has its plain_token_acc beside it");
    cr_expect_gt(metrics, 0);
    /* each done run's final weights came along, byte for byte */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test $(ls %s.weights | wc -l) = 4 && cd %s.weights && for f in *; do"
             " cmp -s $f %s.weights/$f || cmp -s $f %s.weights/$f || exit 1; done", out, out, s0, s1);
    cr_expect_eq(system(cmd), 0, "%s", cmd);

    /* merging the same shards again: identical duplicates, nothing added */
    char log2[128];
    path_in(log2, sizeof log2, "log2.txt");
    cr_assert_eq(merge(log2, out, s1, s0, NULL), 0, "see %s", log2);
    char *text = read_text(log2);
    cr_expect(strstr(text, "0 added, 0 replaced (done beats unfinished), 2 identical duplicates, 0 conflicts") != NULL,
              "%s", text);
    free(text);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM runs"), 4);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM evals"), evals);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM curves"), curves);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics"), metrics);

    /* a run on the merged database has nothing left to do */
    char log3[128];
    path_in(log3, sizeof log3, "log3.txt");
    const char *again[] = {"run", cfg, "--db", out, "--threads", "1", NULL};
    cr_assert_eq(run_command(log3, cmd_run, again), 0);
    text = read_text(log3);
    cr_expect(strstr(text, "0 trained, 4 already done") != NULL, "%s", text);
    free(text);
}

/* Writes one run into the database at path: claimed, with one eval row at
 * (step 10, n 16) holding token_acc, its plain_token_acc metric (token_acc +
 * 0.125) and two curve rows, finished with status (NULL leaves it running).
 * Returns its id. */
static int64_t put_run(const char *path, const char *hash, const char *status, double token_acc)
{
    char err[512];
    sb_db *db = db_open(path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    db_run_info info = {.hash = hash, .experiment = "exp", .task = "parity", .mixer = "lstm",
                        .config = "{}", .device = "cpu", .host = host, .version = "test", .seed = 7,
                        .n_params = 99};
    int64_t id = 0;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
    db_eval_row e = {.step = 10, .n = 16, .token_acc = token_acc, .seq_acc = token_acc / 2, .scaled_acc = 0.1,
                     .loss = 0.5, .count = 16};
    db_curve_row c[2] = {{.step = 5, .loss = 0.7, .tokens_per_s = 1000 * token_acc},
                         {.step = 10, .loss = 0.6, .tokens_per_s = 2000 * token_acc}};
    db_eval_metric m = {.step = 10, .n = 16, .name = "plain_token_acc", .value = token_acc + 0.125};
    cr_assert_eq(db_add_evals_metrics(db, id, &e, 1, &m, 1), 0, "%s", db_errmsg(db));
    cr_assert_eq(db_add_curves(db, id, c, 2), 0, "%s", db_errmsg(db));
    if (status) cr_assert_eq(db_finish_run(db, id, status, strcmp(status, "done") ? "boom" : NULL, 1, 10), 0);
    db_close(db);
    return id;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    sqlite3_close(h);
}

#define METRICS_OF(hash)                                                                                       \
    "SELECT count(*) FROM eval_metrics m JOIN runs r ON r.id = m.run_id WHERE r.hash = '" hash "'"

Test(merge, done_beats_unfinished_and_running_arrives_interrupted)
{
    char a[128], b[128], out[128], out2[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(out, sizeof out, "out.db");
    path_in(out2, sizeof out2, "out2.db");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "filler", "done", 0.25); /* so ids differ between the files */
    put_run(a, "h1", "failed", 0.5);
    put_run(a, "h2", NULL, 0.5); /* left running: its process (this one) is alive */
    put_run(b, "h1", "done", 0.75);

    cr_assert_eq(merge(log, out, a, b, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM runs"), 3);
    cr_expect_eq(sql_int(out, "SELECT status = 'done' FROM runs WHERE hash = 'h1'"), 1);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.hash = 'h1'"), 1,
                 "the failed attempt's evals were replaced, not added to");
    cr_expect_eq(sql_int(out, "SELECT e.token_acc = 0.75 FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.hash = 'h1'"), 1);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM curves c JOIN runs r ON r.id = c.run_id WHERE r.hash = 'h1'"), 2);
    cr_expect_eq(sql_int(out, "SELECT error IS NULL FROM runs WHERE hash = 'h1'"), 1, "the done run's row, not the failed one's");
    cr_expect_eq(sql_int(out, "SELECT status = 'interrupted' AND pid IS NULL FROM runs WHERE hash = 'h2'"), 1);
    char like[200];
    snprintf(like, sizeof like, "SELECT error LIKE '%%was running in %s%%' FROM runs WHERE hash = 'h2'", a);
    cr_expect_eq(sql_int(out, like), 1);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM evals"), 3);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics"), 3, "one metric row beside each eval row");
    cr_expect_eq(sql_int(out, "SELECT m.value = 0.875 FROM eval_metrics m JOIN runs r ON r.id = m.run_id"
                              " WHERE r.hash = 'h1'"), 1, "the done run's metric, not the failed one's");
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM pragma_foreign_key_check"), 0);

    /* the other order: the done run stays, the failed one is kept out */
    cr_assert_eq(merge(log, out2, b, a, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(out2, "SELECT e.token_acc = 0.75 FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.hash = 'h1'"), 1);
    cr_expect_eq(sql_int(out2, "SELECT count(*) FROM evals"), 3);
    char *text = read_text(log);
    cr_expect(strstr(text, "1 unfinished kept out (done here)") != NULL, "%s", text);
    free(text);
}

static void put_file(const char *db_path, const char *folder, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s", db_path, folder);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s%s/%s", db_path, folder, name);
    write_text(path, text);
}

static char *file_in(const char *db_path, const char *folder, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s%s/%s", db_path, folder, name);
    return read_text(path);
}

Test(merge, checkpoints_and_weights_travel_with_their_runs)
{
    char a[128], b[128], out[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "h1", "interrupted", 0.5);
    put_file(a, ".ckpt", "h1.ckpt", "checkpoint of h1 in a");
    put_run(b, "h1", "done", 0.75);
    put_file(b, ".weights", "h1.safetensors", "weights of h1 in b");
    put_file(b, ".ckpt", "h1.ckpt", "stale checkpoint of h1 in b");

    cr_assert_eq(merge(log, out, a, NULL, NULL), 0, "see %s", log);
    char *text = file_in(out, ".ckpt", "h1.ckpt");
    cr_expect_str_eq(text, "checkpoint of h1 in a", "an unfinished run brings its checkpoint, so a rerun resumes");
    free(text);
    cr_assert_eq(merge(log, out, b, NULL, NULL), 0, "see %s", log);
    text = file_in(out, ".weights", "h1.safetensors");
    cr_expect_str_eq(text, "weights of h1 in b");
    free(text);
    char path[256];
    snprintf(path, sizeof path, "%s.ckpt/h1.ckpt", out);
    cr_expect_neq(access(path, F_OK), 0, "the done run's old checkpoint is gone");
    text = read_text(log);
    cr_expect(strstr(text, "1 replaced (done beats unfinished)") && strstr(text, "1 weights/checkpoint files"), "%s",
              text);
    free(text);
}

Test(merge, conflicting_duplicates_are_reported_and_the_first_kept)
{
    char a[128], b[128], c[128], out[128], log[128], log2[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(c, sizeof c, "c.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    path_in(log2, sizeof log2, "log2.txt");
    put_run(a, "h1", "done", 0.5);
    put_run(b, "h1", "done", 0.625); /* same run, different evals: a conflict */
    put_run(c, "h1", "done", 0.5);   /* equal to a's in every result */
    put_run(c, "h3", "done", 0.5);

    cr_expect_eq(merge(log, out, a, b, c), 1, "conflicts exit 1");
    char *text = read_text(log);
    cr_expect(strstr(text, "CONFLICT: run h1") != NULL, "%s", text);
    char both[300];
    snprintf(both, sizeof both, "is done in %s and in %s (run id 1 there)", a, b);
    cr_expect(strstr(text, both) != NULL, "both sources named: %s", text);
    cr_expect(strstr(text, "evals row 1 (step 10): token_acc 0.5 vs 0.625") != NULL, "the difference: %s", text);
    cr_expect(strstr(text, "1 identical duplicates") != NULL, "c's copy of h1 is a duplicate: %s", text);
    free(text);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM runs"), 2, "h1 once, and c's h3");
    cr_expect_eq(sql_int(out, "SELECT e.token_acc = 0.5 FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.hash = 'h1'"), 1);

    /* a conflict with what OUT held before this merge */
    cr_expect_eq(merge(log2, out, b, NULL, NULL), 1);
    text = read_text(log2);
    char before[300];
    snprintf(before, sizeof before, "is done in %s as it was before this merge", out);
    cr_expect(strstr(text, before) != NULL, "%s", text);
    free(text);
    cr_expect_eq(sql_int(out, "SELECT e.token_acc = 0.5 FROM evals e JOIN runs r ON r.id = e.run_id WHERE r.hash = 'h1'"), 1);
}

Test(merge, a_replacement_replaces_the_metric_rows)
{
    char a[128], b[128], out[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "filler", "done", 0.25); /* so ids differ between the files */
    put_run(a, "h1", "interrupted", 0.5);
    /* the killed attempt also wrote a metric the rerun does not */
    exec_sql(a, "INSERT INTO eval_metrics SELECT id, 10, 16, 'extra', 1.5 FROM runs WHERE hash = 'h1'");
    put_run(b, "h1", "done", 0.75);

    cr_assert_eq(merge(log, out, a, NULL, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(out, METRICS_OF("h1")), 2, "the unfinished run arrives with its metric rows");
    cr_expect_eq(sql_int(out, METRICS_OF("filler")), 1);
    cr_assert_eq(merge(log, out, b, NULL, NULL), 0, "see %s", log);
    char *text = read_text(log);
    cr_expect(strstr(text, "1 replaced (done beats unfinished)") != NULL, "%s", text);
    free(text);
    cr_expect_eq(sql_int(out, METRICS_OF("h1")), 1, "the replaced attempt's metric rows are gone");
    cr_expect_eq(sql_int(out, "SELECT m.name = 'plain_token_acc' AND m.value = 0.875 FROM eval_metrics m"
                              " JOIN runs r ON r.id = m.run_id WHERE r.hash = 'h1'"), 1);
    cr_expect_eq(sql_int(out, METRICS_OF("filler")), 1, "other runs keep theirs");
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics m WHERE NOT EXISTS (SELECT 1 FROM evals e WHERE"
                              " e.run_id = m.run_id AND e.step = m.step AND e.n = m.n)"), 0);
}

Test(merge, metric_differences_are_conflicts)
{
    char a[128], b[128], c[128], out[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(c, sizeof c, "c.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "h1", "done", 0.5);
    put_run(b, "h1", "done", 0.5); /* equal evals and curves, another metric value */
    exec_sql(b, "UPDATE eval_metrics SET value = 0.75");
    put_run(c, "h1", "done", 0.5); /* one metric row more */
    exec_sql(c, "INSERT INTO eval_metrics VALUES (1, 10, 16, 'zzz', 0)");

    cr_expect_eq(merge(log, out, a, b, c), 1, "conflicts exit 1");
    char *text = read_text(log);
    cr_expect(strstr(text, "eval_metrics row 1 (step 10): value 0.625 vs 0.75") != NULL, "%s", text);
    cr_expect(strstr(text, "eval_metrics: one has more rows than the other (from row 2 on)") != NULL, "%s", text);
    cr_expect(strstr(text, "0 identical duplicates, 1 conflicts") != NULL, "%s", text);
    free(text);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics"), 1, "the first copy kept, alone");
    cr_expect_eq(sql_int(out, "SELECT value = 0.625 FROM eval_metrics"), 1);
}

/* A copy made before eval_metrics existed (no metric rows at all) is the
 * same result as one with them, not a conflict. */
Test(merge, a_copy_without_metric_rows_is_not_a_conflict)
{
    char a[128], b[128], out[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "h1", "done", 0.5);
    put_run(b, "h1", "done", 0.5);
    exec_sql(b, "DELETE FROM eval_metrics");

    cr_expect_eq(merge(log, out, a, b, NULL), 0, "no conflict");
    char *text = read_text(log);
    cr_expect(strstr(text, "1 identical duplicates, 0 conflicts") != NULL, "%s", text);
    free(text);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics"), 1, "the first copy's metric kept");
}

Test(merge, timing_differences_are_not_conflicts_and_bench_rows_copy_once)
{
    char a[128], b[128], out[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(b, sizeof b, "b.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "h1", "done", 0.5);
    put_run(b, "h1", "done", 0.5);
    /* the same run measured at another speed: only tokens_per_s and times differ */
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(b, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "UPDATE curves SET tokens_per_s = tokens_per_s * 3; UPDATE runs SET train_seconds = 42",
                              NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    char err[512];
    sb_db *db = db_open(a, err, sizeof err);
    cr_assert_not_null(db);
    db_bench_row row = {.mixer = "lstm", .config = "{}", .device = "cpu", .direction = "fwd+bwd", .n = 64,
                        .batch = 8, .tokens_per_s = 5e4, .ms = 3.5};
    cr_assert_eq(db_add_bench(db, &row), 0);
    row.n = 128;
    cr_assert_eq(db_add_bench(db, &row), 0);
    db_close(db);

    cr_assert_eq(merge(log, out, a, b, NULL), 0, "see %s", log);
    cr_assert_eq(merge(log, out, a, NULL, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM bench"), 2, "bench rows copied once");
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM bench WHERE n = 128 AND ms = 3.5 AND created_at IS NOT NULL"), 1);
    char *text = read_text(log);
    cr_expect(strstr(text, "1 identical duplicates, 0 conflicts") != NULL, "%s", text);
    cr_expect(strstr(text, "0 bench rows (2 already here)") != NULL, "%s", text);
    free(text);
}

Test(merge, bad_inputs_merge_nothing)
{
    char a[128], out[128], missing[128], csv[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(out, sizeof out, "out.db");
    path_in(missing, sizeof missing, "missing.db");
    path_in(csv, sizeof csv, "table.csv");
    path_in(log, sizeof log, "log.txt");
    put_run(a, "h1", "done", 0.5);
    write_text(csv, "a,b\n1,2\n");
    cr_expect_eq(merge(log, out, a, missing, NULL), 2);
    cr_expect_neq(access(out, F_OK), 0, "nothing written when an input is unusable");
    cr_expect_eq(merge(log, out, a, csv, NULL), 2);
    cr_expect_eq(merge(log, out, a, a, NULL), 2);
    cr_expect_eq(merge(log, a, a, NULL, NULL), 2);
    cr_expect_neq(access(out, F_OK), 0);
    const char *too_few[] = {"merge", out, NULL};
    cr_expect_eq(run_command(log, cmd_merge, too_few), 2);
    const char *unknown[] = {"merge", "--frobnicate", out, a, NULL};
    cr_expect_eq(run_command(log, cmd_merge, unknown), 2);
    const char *help[] = {"merge", "--help", NULL};
    cr_expect_eq(run_command(log, cmd_merge, help), 0);
    char *text = read_text(log);
    cr_expect(strstr(text, "missing.db: cannot read the database") != NULL, "%s", text);
    cr_expect(strstr(text, "not an SQLite file") != NULL, "%s", text);
    cr_expect(strstr(text, "is given twice") != NULL, "%s", text);
    cr_expect(strstr(text, "cannot be merged into itself") != NULL, "%s", text);
    cr_expect(strstr(text, "usage: statebench merge OUT.db IN.db...") != NULL, "%s", text);
    free(text);
    cr_expect_eq(sql_int(a, "SELECT count(*) FROM runs"), 1, "inputs are only read");
}

/* The schema of version 1, as statebench 0.1.0 wrote it. */
static const char schema_v1[] =
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, hash TEXT UNIQUE NOT NULL, experiment TEXT, task TEXT, mixer TEXT,"
    " seed INTEGER, config TEXT, status TEXT NOT NULL CHECK (status IN"
    " ('pending','running','done','failed','diverged','interrupted')), error TEXT, n_params INTEGER, device TEXT,"
    " host TEXT, pid INTEGER, version TEXT, started_at TEXT, finished_at TEXT, train_seconds REAL, steps_done INTEGER);"
    "CREATE TABLE evals (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER, n INTEGER,"
    " token_acc REAL, seq_acc REAL, scaled_acc REAL, loss REAL, count INTEGER);"
    "CREATE INDEX evals_run ON evals(run_id);"
    "CREATE TABLE curves (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, step INTEGER, loss REAL,"
    " acc REAL, lr REAL, grad_norm REAL, tokens_per_s REAL);"
    "CREATE INDEX curves_run ON curves(run_id);"
    "CREATE TABLE bench (id INTEGER PRIMARY KEY, mixer TEXT, config TEXT, device TEXT, n INTEGER, batch INTEGER,"
    " direction TEXT, tokens_per_s REAL, ms REAL, created_at TEXT);"
    "PRAGMA user_version = 1;"
    "INSERT INTO runs (hash, status, task, mixer, seed, steps_done, n_params, version)"
    " VALUES ('old1', 'done', 'parity', 'lstm', 3, 10, 99, '0.1.0+abc');"
    "INSERT INTO evals VALUES (1, 10, 16, 0.5, 0.25, 0.1, 0.5, 16);";

Test(merge, schema_v1_inputs_are_read_and_upgraded_files_keep_their_rows)
{
    char old[128], out[128], log[128];
    path_in(old, sizeof old, "old.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(old, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, schema_v1, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);

    cr_assert_eq(merge(log, out, old, NULL, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(old, "PRAGMA user_version"), 1, "an input is not upgraded");
    cr_expect_eq(sql_int(out, "PRAGMA user_version"), DB_SCHEMA_VERSION);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM runs WHERE hash = 'old1' AND status = 'done' AND seed = 3"
                              " AND cpu_model IS NULL AND deterministic IS NULL"), 1);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM evals WHERE token_acc = 0.5"), 1);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics"), 0, "an old input has no metric rows");

    /* opening the old file read-write upgrades it in place, rows kept */
    char err[512];
    sb_db *db = db_open(old, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_expect_eq(db_schema_version(db), DB_SCHEMA_VERSION);
    db_close(db);
    cr_expect_eq(sql_int(old, "PRAGMA user_version"), DB_SCHEMA_VERSION);
    cr_expect_eq(sql_int(old, "SELECT count(*) FROM runs WHERE hash = 'old1' AND threads IS NULL"), 1);
    cr_expect_eq(sql_int(old, "SELECT count(*) FROM evals"), 1);
    cr_expect_eq(sql_int(old, "SELECT count(*) FROM pragma_table_info('runs') WHERE name IN ('cpu_model', 'threads',"
                              " 'gpu_name', 'gpu_cc', 'gpu_driver', 'cuda_version', 'compiler', 'cflags', 'blas',"
                              " 'git_rev', 'deterministic')"), 11);
    /* and a second open changes nothing */
    db = db_open(old, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    db_close(db);
    cr_expect_eq(sql_int(old, "SELECT count(*) FROM pragma_table_info('runs')"), 29);
}

Test(merge, inputs_older_than_v3_merge_beside_inputs_with_metric_rows)
{
    char v1[128], v2[128], now[128], out[128], log[128];
    path_in(v1, sizeof v1, "v1.db");
    path_in(v2, sizeof v2, "v2.db");
    path_in(now, sizeof now, "now.db");
    path_in(out, sizeof out, "out.db");
    path_in(log, sizeof log, "log.txt");
    exec_sql(v1, schema_v1);
    /* a v2 file: today's schema without the eval_metrics table */
    put_run(v2, "h2", "done", 0.25);
    exec_sql(v2, "DROP TABLE eval_metrics; PRAGMA user_version = 2");
    put_run(now, "h3", "done", 0.5);
    put_run(now, "h4", "failed", 0.5);

    cr_assert_eq(merge(log, out, now, v1, v2), 0, "see %s", log);
    char *text = read_text(log);
    cr_expect(strstr(text, "3 inputs merged: 4 runs added") != NULL, "%s", text);
    free(text);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM runs"), 4);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM evals"), 4);
    cr_expect_eq(sql_int(out, METRICS_OF("old1")), 0);
    cr_expect_eq(sql_int(out, METRICS_OF("h2")), 0);
    cr_expect_eq(sql_int(out, METRICS_OF("h3")), 1);
    cr_expect_eq(sql_int(out, METRICS_OF("h4")), 1);
    cr_expect_eq(sql_int(out, "SELECT count(*) FROM eval_metrics WHERE value = 0.625"), 2);
    /* the inputs are only read: no eval_metrics table appears in them */
    cr_expect_eq(sql_int(v2, "PRAGMA user_version"), 2);
    cr_expect_eq(sql_int(v2, "SELECT count(*) FROM sqlite_master WHERE name = 'eval_metrics'"), 0);
    cr_expect_eq(sql_int(v1, "SELECT count(*) FROM sqlite_master WHERE name = 'eval_metrics'"), 0);

    /* an old input merged into a file holding metric rows: they stay */
    char again[128];
    path_in(again, sizeof again, "v2_again.db");
    put_run(again, "h4", "done", 0.75);
    exec_sql(again, "DROP TABLE eval_metrics; PRAGMA user_version = 2");
    cr_assert_eq(merge(log, out, again, NULL, NULL), 0, "see %s", log);
    cr_expect_eq(sql_int(out, METRICS_OF("h4")), 0, "the replaced failed run's metric row went with it");
    cr_expect_eq(sql_int(out, METRICS_OF("h3")), 1);
}

Test(merge, status_lists_unfinished_runs_with_their_messages)
{
    char a[128], cfg[128], log[128];
    path_in(a, sizeof a, "a.db");
    path_in(cfg, sizeof cfg, "sweep.yaml");
    path_in(log, sizeof log, "log.txt");
    write_text(cfg, sweep_config);
    put_run(a, "h_done", "done", 0.5);
    put_run(a, "h_failed", "failed", 0.5);
    put_run(a, "h_diverged", "diverged", 0.5);
    put_run(a, "h_running", NULL, 0.5);
    /* a running run whose owner is gone: stale */
    put_run(a, "h_stale", NULL, 0.5);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(a, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "UPDATE runs SET pid = 2147483646 WHERE hash = 'h_stale'", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    const char *args[] = {"status", a, "--config", cfg, NULL};
    cr_assert_eq(run_command(log, cmd_status, args), 0, "see %s", log);
    char *text = read_text(log);
    cr_expect(strstr(text, "5 runs recorded, 4 of the 4 runs of") != NULL, "%s", text);
    cr_expect(strstr(text, "  done         1\n  running      2\n  failed       1\n  pending      4\n"
                           "  diverged     1\n  interrupted  0\n") != NULL, "%s", text);
    cr_expect(strstr(text, "failed:\n  parity lstm seed=7 [h_failed] after 10 steps: boom\n") != NULL, "%s", text);
    cr_expect(strstr(text, "diverged:\n  parity lstm seed=7 [h_diverged] after 10 steps: boom\n") != NULL, "%s", text);
    cr_expect(strstr(text, "[h_stale] on ") && strstr(text, "(stale: the process is gone"), "%s", text);
    char *running = strstr(text, "[h_running]");
    cr_assert_not_null(running, "%s", text);
    *strchr(running, '\n') = '\0';
    cr_expect(strstr(running, "stale") == NULL, "a live owner is not stale: %s", running);
    free(text);
    const char *missing[] = {"status", "/nonexistent/x.db", NULL};
    cr_expect_eq(run_command(log, cmd_status, missing), 1);
    const char *usage[] = {"status", NULL};
    cr_expect_eq(run_command(log, cmd_status, usage), 2);
}
