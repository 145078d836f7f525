/* test_tasks_metrics.c: what a run records about a task beyond the evals
 * columns. The eval_metrics table (schema v3): an old database reads and
 * upgrades with its rows; metrics go in the transaction of their eval
 * rows; icll's plain_token_acc is the share of argmax == y, recomputed here
 * from the run's own checkpointed model, beside token_acc = dfa_acc; a run
 * stopped after every step ends with the metric rows of an uninterrupted
 * one. And dfa's balance fallback is said once in the run's log. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/checkpoint.h"
#include "../harness/groups.h"
#include "../harness/options.h"
#include "../harness/train.h"
#include "../kernels/ops.h"
#include "../models/model.h"
#include "../tasks/task.h"

static char tmp_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void make_tmp(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sb_test_metrics_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
    ops_set_threads(1);
}

static void remove_tmp(void) { nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(eval_metrics, .init = make_tmp, .fini = remove_tmp);

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmp_dir, name); }

static sb_db *open_rw(const char *name)
{
    char path[160], err[512];
    path_in(path, sizeof path, name);
    sb_db *db = db_open(path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    return db;
}

/* The text of sql's rows, one line each, every column with %a (doubles
 * exact) or as text; ?1 = run_id when given. */
static char *rows_text(sb_db *db, const char *sql)
{
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db_handle(db), sql, -1, &q, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db_handle(db)));
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(cap, 1);
    cr_assert_not_null(out);
    while (sqlite3_step(q) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(q); c++) {
            if (sqlite3_column_type(q, c) == SQLITE_TEXT)
                len += (size_t)snprintf(out + len, cap - len, "%s ", (const char *)sqlite3_column_text(q, c));
            else
                len += (size_t)snprintf(out + len, cap - len, "%a ", sqlite3_column_double(q, c));
        }
        len += (size_t)snprintf(out + len, cap - len, "\n");
        cr_assert_lt(len, cap - 1);
    }
    sqlite3_finalize(q);
    return out;
}

static int64_t sql_int(sb_db *db, const char *sql)
{
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db_handle(db), sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db_handle(db)));
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* ---- the schema ----------------------------------------------------------- */

/* Version 1 as statebench 0.1.0 wrote it, with one done icll run evaluated
 * at step 10 at n = 16 and 32. */
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
    "INSERT INTO runs (hash, status, experiment, task, mixer, seed, config)"
    " VALUES ('old1', 'done', 'e', 'icll', 'lstm', 0,"
    " '{\"model\":{\"mixer\":\"lstm\"},\"seed\":0,\"task\":{\"name\":\"icll\"}}');"
    "INSERT INTO evals VALUES (1, 10, 16, 0.5, 0.25, 0.4, 0.5, 16);"
    "INSERT INTO evals VALUES (1, 10, 32, 0.75, 0.5, 0.7, 0.25, 32);";

/* The points groups_load gives for metric: "n=value " per point of the one run. */
static void points_of(sb_db *db, const char *metric, char *out, size_t len)
{
    grp_filter f = {.source = GRP_SOURCE_RUNS, .any_experiment = 1, .any_task = 1, .metric = metric};
    grp_set set;
    char err[512];
    cr_assert_eq(groups_load(db, &f, &set, err, sizeof err), 0, "%s: %s", metric, err);
    cr_assert_eq(set.count, 1, "%s: %d runs", metric, set.count);
    out[0] = '\0';
    for (int i = 0; i < set.runs[0].n_points; i++) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%d=%g ", set.runs[0].points[i].n, set.runs[0].points[i].value);
    }
    groups_free(&set);
}

Test(eval_metrics, an_old_database_reads_and_upgrades)
{
    char path[160], err[512], points[256];
    path_in(path, sizeof path, "old.db");
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, schema_v1, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(h));
    sqlite3_close(h);

    /* read only: the metric reads as absent, the file stays as it was */
    sb_db *ro = db_open_readonly(path, err, sizeof err);
    cr_assert_not_null(ro, "%s", err);
    cr_expect_eq(db_schema_version(ro), 1);
    points_of(ro, "token_acc", points, sizeof points);
    cr_expect_str_eq(points, "16=0.5 32=0.75 ");
    points_of(ro, "plain_token_acc", points, sizeof points);
    cr_expect_str_eq(points, "", "an old run has no plain_token_acc");
    cr_expect_eq(sql_int(ro, "SELECT count(*) FROM main.sqlite_master WHERE name = 'eval_metrics'"), 0);
    cr_expect_eq(sql_int(ro, "PRAGMA user_version"), 1);
    db_close(ro);

    /* read-write: upgraded in place (1 -> 2 -> 3), rows kept */
    sb_db *db = db_open(path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_expect_eq(db_schema_version(db), DB_SCHEMA_VERSION);
    cr_expect_eq(sql_int(db, "PRAGMA user_version"), 3);
    char *cols = rows_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('eval_metrics')");
    cr_expect_str_eq(cols, "run_id,step,n,name,value \n");
    free(cols);
    cols = rows_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('evals')");
    cr_expect_str_eq(cols, "run_id,step,n,token_acc,seq_acc,scaled_acc,loss,count \n", "the evals contract");
    free(cols);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM evals"), 2);

    db_eval_row rows[2] = {{.step = 20, .n = 16, .token_acc = 0.875, .count = 16},
                           {.step = 20, .n = 32, .token_acc = 0.9375, .count = 32}};
    db_eval_metric metrics[2] = {{.step = 20, .n = 16, .name = "plain_token_acc", .value = 0.625},
                                 {.step = 20, .n = 32, .name = "plain_token_acc", .value = 0.5}};
    cr_assert_eq(db_add_evals_metrics(db, 1, rows, 2, metrics, 2), 0, "%s", db_errmsg(db));
    points_of(db, "plain_token_acc", points, sizeof points);
    cr_expect_str_eq(points, "16=0.625 32=0.5 ", "the last step's metric");
    points_of(db, "token_acc", points, sizeof points);
    cr_expect_str_eq(points, "16=0.875 32=0.9375 ");
    db_close(db);
}

Test(eval_metrics, written_in_the_transaction_of_their_rows_and_pruned_with_them)
{
    sb_db *db = open_rw("tx.db");
    db_run_info info = {.hash = "tx", .task = "icll", .mixer = "lstm", .config = "{}"};
    int64_t id;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
    db_eval_row rows[1] = {{.step = 5, .n = 8, .token_acc = 0.5, .count = 8}};
    db_eval_metric twice[2] = {{.step = 5, .n = 8, .name = "plain_token_acc", .value = 0.25},
                               {.step = 5, .n = 8, .name = "plain_token_acc", .value = 0.5}};
    cr_expect_eq(db_add_evals_metrics(db, id, rows, 1, twice, 2), -1, "a metric twice for one row is refused");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM evals"), 0, "and its eval row is not written either");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM eval_metrics"), 0);
    cr_assert_eq(db_add_evals_metrics(db, id, rows, 1, twice, 1), 0, "%s", db_errmsg(db));

    /* metric rows of a step without eval rows (a killed attempt's, whose
     * eval rows the next claim deleted) go; those beside eval rows stay */
    db_eval_metric orphan[1] = {{.step = 6, .n = 8, .name = "plain_token_acc", .value = 1}};
    cr_assert_eq(db_add_evals_metrics(db, id, NULL, 0, orphan, 1), 0, "%s", db_errmsg(db));
    cr_assert_eq(db_prune_eval_metrics(db, id), 0, "%s", db_errmsg(db));
    char *left = rows_text(db, "SELECT step, n, name, value FROM eval_metrics");
    cr_expect_str_eq(left, "0x1.4p+2 0x1p+3 plain_token_acc 0x1p-2 \n");
    free(left);
    db_close(db);
}

/* ---- icll's plain_token_acc in a run --------------------------------------- */

static run_spec icll_spec(int steps, int eval_every)
{
    run_spec s;
    spec_defaults(&s, task_index("icll"));
    char steps_text[16], every_text[16];
    snprintf(steps_text, sizeof steps_text, "%d", steps);
    snprintf(every_text, sizeof every_text, "%d", eval_every);
    const char *const settings[][2] = {
        {"task.train_len", "24"},  {"task.eval_len", "24,40"}, {"model.mixer", "lstm"},
        {"model.layers", "1"},     {"model.d_model", "16"},    {"train.steps", steps_text},
        {"train.batch", "4"},      {"train.warmup", "1"},      {"train.lr", "0.01"},
        {"train.log_every", "1"},  {"train.checkpoint_every", "3"}, {"eval.every", every_text},
        {"eval.count", "24"},      {"eval.batch", "8"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        cr_assert_eq(options_set(&s, settings[i][0], settings[i][1], err, sizeof err), 0, "%s: %s", settings[i][0],
                     err);
    s.seed = 4;
    return s;
}

/* One attempt as `statebench run` makes it: claim, train, mark, and drop
 * the checkpoint of a finished run; log NULL: /dev/null. */
static const char *attempt(sb_db *db, const run_spec *s, const char *log_path)
{
    char hash[33];
    spec_hash(s, hash);
    char *json = spec_to_json(s);
    db_run_info info = {.hash = hash, .config = json, .seed = s->seed, .task = task_get(s->task.task)->name,
                        .mixer = mixer_name(s->model.mixer[0])};
    int64_t id;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
    free(json);
    FILE *log = fopen(log_path ? log_path : "/dev/null", "a");
    cr_assert_not_null(log);
    progress prog;
    progress_init(&prog, log, 0, 1, s->train.steps);
    run_outcome out;
    train_run(s, db, id, &prog, &out);
    fclose(log);
    cr_assert_eq(db_finish_run(db, id, out.status, out.error[0] ? out.error : NULL, out.train_seconds,
                               out.steps_done),
                 0, "%s", db_errmsg(db));
    if (!strcmp(out.status, "done")) checkpoint_discard(db, hash);
    return out.status;
}

Test(eval_metrics, icll_plain_token_acc_is_the_share_of_argmax_equal_to_y, .timeout = 120)
{
    /* The run stops after step 1, whose evaluation is pending in its
     * checkpoint; the model of that checkpoint is evaluated here, then the
     * resumed run records step 1's rows from the same model. */
    run_spec s = icll_spec(2, 1);
    sb_db *db = open_rw("icll.db");
    train_stop_signal = SIGTERM;
    cr_assert_str_eq(attempt(db, &s, NULL), "interrupted");
    train_stop_signal = 0;

    const task_def *t = task_get(s.task.task);
    model_config cfg = {.spec = s.model, .vocab_in = t->vocab_in(&s.task), .vocab_out = t->vocab_out(&s.task),
                        .max_len = 40, .max_batch = 8};
    char err[512], hash[33];
    model *m = model_create(&cfg, s.seed, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    spec_hash(&s, hash);
    char *ckpt = checkpoint_path(db, hash);
    checkpoint_state st = {0};
    cr_assert_eq(checkpoint_load(ckpt, hash, m, &st, err, sizeof err), CKPT_LOADED, "%s", err);
    cr_assert_eq(st.step, 1);
    cr_assert_eq(st.eval_pending, 1, "step 1's evaluation is left to the resumed run");
    checkpoint_state_free(&st);
    free(ckpt);

    double plain[2];
    int V = cfg.vocab_out, x[8 * 40], y[8 * 40];
    for (int k = 0; k < 2; k++) {
        int n = s.task.eval_len[k];
        long right = 0, scored = 0;
        for (int first = 0; first < s.eval.count; first += s.eval.batch) {
            int L = task_eval_batch(t, &s.task, s.seed, n, (uint64_t)first, s.eval.batch, x, y);
            int count;
            model_forward(m, x, y, s.eval.batch, L, &count);
            const real *probs = model_probs(m); /* (B, L, V) */
            for (int i = 0; i < s.eval.batch * L; i++) {
                if (y[i] < 0) continue;
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (probs[(size_t)i * V + v] > probs[(size_t)i * V + best]) best = v;
                scored++;
                right += best == y[i];
            }
        }
        plain[k] = (double)right / (double)scored;
    }
    model_free(m);

    cr_assert_str_eq(attempt(db, &s, NULL), "done");
    for (int k = 0; k < 2; k++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT m.value, e.token_acc FROM eval_metrics m JOIN evals e USING (run_id, step, n)"
                 " WHERE m.name = 'plain_token_acc' AND step = 1 AND n = %d",
                 s.task.eval_len[k]);
        sqlite3_stmt *q;
        cr_assert_eq(sqlite3_prepare_v2(db_handle(db), sql, -1, &q, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "no plain_token_acc beside the eval row at n = %d",
                     s.task.eval_len[k]);
        double stored = sqlite3_column_double(q, 0), dfa_acc = sqlite3_column_double(q, 1);
        sqlite3_finalize(q);
        fprintf(stderr, "eval_metrics: icll n=%d step 1: plain_token_acc %.4f, token_acc (dfa_acc) %.4f\n",
                s.task.eval_len[k], stored, dfa_acc);
        cr_expect_eq(stored, plain[k], "n = %d: stored %.17g, argmax == y over the checkpoint's model %.17g",
                     s.task.eval_len[k], stored, plain[k]);
        /* y is a letter that continues the word, so argmax == y implies dfa_acc's rule */
        cr_expect_leq(stored, dfa_acc, "n = %d", s.task.eval_len[k]);
        cr_expect_neq(stored, dfa_acc, "n = %d: the two metrics should differ on a barely trained model",
                      s.task.eval_len[k]);
    }
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM eval_metrics"), sql_int(db, "SELECT count(*) FROM evals"),
                 "one plain_token_acc per eval row");
    db_close(db);
}

Test(eval_metrics, a_run_stopped_after_every_step_keeps_the_same_metric_rows, .timeout = 120)
{
    run_spec s = icll_spec(7, 2);
    sb_db *whole = open_rw("whole.db");
    train_stop_signal = 0;
    cr_assert_str_eq(attempt(whole, &s, NULL), "done");

    sb_db *cut = open_rw("cut.db");
    int attempts = 0;
    const char *status;
    do {
        train_stop_signal = SIGTERM;
        status = attempt(cut, &s, NULL);
        attempts++;
    } while (strcmp(status, "done") != 0 && attempts < 20);
    train_stop_signal = 0;
    cr_assert_str_eq(status, "done");
    cr_assert_gt(attempts, 7);

    static const char sql[] = "SELECT step, n, name, value FROM eval_metrics ORDER BY step, n, name";
    char *a = rows_text(whole, sql), *b = rows_text(cut, sql);
    cr_expect_str_eq(b, a, "metric rows of the stopped run differ from the uninterrupted run's");
    cr_expect_eq(sql_int(cut, "SELECT count(*) FROM eval_metrics"), 4 * 2, "evals at 2, 4, 6, 7 at two lengths");
    cr_expect_eq(sql_int(cut, "SELECT count(*) FROM evals e WHERE NOT EXISTS (SELECT 1 FROM eval_metrics m"
                              " WHERE m.run_id = e.run_id AND m.step = e.step AND m.n = e.n)"),
                 0, "every eval row has its metric");
    free(a);
    free(b);
    db_close(whole);
    db_close(cut);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    cr_assert(a && b, "copy %s to %s: %s", from, to, strerror(errno));
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, a)) > 0) cr_assert_eq(fwrite(buf, 1, got, b), got);
    fclose(a);
    cr_assert_eq(fclose(b), 0);
}

Test(eval_metrics, a_killed_attempts_later_rows_go_and_the_checkpoints_stay, .timeout = 120)
{
    /* Three one-step attempts leave a checkpoint at step 3 (with the
     * step-2 rows); a full attempt then writes the rows of steps 4, 6 and 7
     * and, as if killed before the end, leaves that checkpoint behind and
     * the run unfinished. The rerun resumes at step 3: the metric rows of
     * step 2 stay (the checkpoint restores only eval rows), those of the
     * dead attempt go and come back from the rerun, as in an uninterrupted run. */
    run_spec s = icll_spec(7, 2);
    sb_db *whole = open_rw("whole2.db");
    train_stop_signal = 0;
    cr_assert_str_eq(attempt(whole, &s, NULL), "done");

    sb_db *db = open_rw("killed.db");
    for (int i = 0; i < 3; i++) {
        train_stop_signal = SIGTERM;
        cr_assert_str_eq(attempt(db, &s, NULL), "interrupted");
    }
    train_stop_signal = 0;
    char hash[33], saved[200];
    spec_hash(&s, hash);
    char *ckpt = checkpoint_path(db, hash);
    snprintf(saved, sizeof saved, "%s.saved", ckpt);
    copy_file(ckpt, saved);
    cr_assert_str_eq(attempt(db, &s, NULL), "done");
    copy_file(saved, ckpt);
    cr_assert_eq(sqlite3_exec(db_handle(db), "UPDATE runs SET status = 'failed'", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sql_int(db, "SELECT count(*) FROM eval_metrics WHERE step > 3"), 3 * 2);

    cr_assert_str_eq(attempt(db, &s, NULL), "done", "the rerun from step 3 records steps 4, 6, 7 again");
    static const char sql[] = "SELECT step, n, name, value FROM eval_metrics ORDER BY step, n, name";
    char *a = rows_text(whole, sql), *b = rows_text(db, sql);
    cr_expect_str_eq(b, a, "metric rows after the rerun differ from the uninterrupted run's");
    free(a);
    free(b);
    free(ckpt);
    db_close(whole);
    db_close(db);
}

/* ---- dfa's balance fallback in the run's log -------------------------------- */

Test(eval_metrics, dfa_fallback_is_said_once_in_the_runs_log, .timeout = 60)
{
    run_spec s;
    spec_defaults(&s, task_index("dfa"));
    const char *const settings[][2] = {
        {"task.language", "tomita2"}, {"task.mode", "final"},  {"task.train_len", "2,6"},
        {"task.eval_len", "7"},       {"model.mixer", "lstm"}, {"model.layers", "1"},
        {"model.d_model", "8"},       {"train.steps", "6"},    {"train.batch", "4"},
        {"eval.every", "2"},          {"eval.count", "8"},     {"eval.batch", "8"},
    };
    char err[512], log_path[160];
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        cr_assert_eq(options_set(&s, settings[i][0], settings[i][1], err, sizeof err), 0, "%s", err);
    path_in(log_path, sizeof log_path, "dfa.log");
    sb_db *db = open_rw("dfa.db");
    train_stop_signal = 0;
    cr_assert_str_eq(attempt(db, &s, log_path), "done");
    db_close(db);
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f);
    char line[1024];
    int notes = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "balance falls back to uniform strings")) {
            notes++;
            cr_expect(strstr(line, "no string is accepted at 3 of the run's lengths (n = 3, 5, 7)") != NULL,
                      "tomita2 accepts no odd length: %s", line);
        }
    fclose(f);
    cr_expect_eq(notes, 1, "the fallback is said once per run, not per example or eval");
}
