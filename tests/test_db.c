/* test_db.c: the results database: schema, pragmas, run claiming (also by two processes at once), refusals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/db.h"

static char tmp_dir[64];
static char db_path[128];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void make_tmp(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sb_test_db_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
    snprintf(db_path, sizeof db_path, "%s/results.db", tmp_dir);
}

static void remove_tmp(void)
{
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(db, .init = make_tmp, .fini = remove_tmp);

static sb_db *open_ok(void)
{
    char err[512] = "";
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "db_open(%s): %s", db_path, err);
    return db;
}

/* The first column of the first row of sql as text ("" when NULL or no row). */
static void query_text(sb_db *db, const char *sql, char *out, size_t len)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *h = db_handle(db);
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static int64_t query_int(sb_db *db, const char *sql, int64_t bound)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *h = db_handle(db);
    cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(h));
    if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, bound);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static db_run_info run_info(const char *hash)
{
    static char host[256];
    gethostname(host, sizeof host - 1);
    return (db_run_info){.hash = hash, .experiment = "exp", .task = "parity", .mixer = "deltanet",
                         .config = "{\"model\":{\"mixer\":\"deltanet\"},\"seed\":0}", .device = "cpu",
                         .host = host, .version = "test", .seed = 0, .n_params = 1234};
}

static void add_rows(sb_db *db, int64_t id)
{
    db_eval_row evals[2] = {{.step = 10, .n = 40, .token_acc = 0.9, .seq_acc = 0.8, .scaled_acc = 0.8, .loss = 0.3, .count = 64},
                            {.step = 10, .n = 64, .token_acc = 0.7, .seq_acc = 0.5, .scaled_acc = 0.4, .loss = 0.6, .count = 64}};
    db_curve_row curves[3] = {{.step = 1, .loss = 0.7}, {.step = 2, .loss = 0.6}, {.step = 3, .loss = 0.5}};
    cr_assert_eq(db_add_evals(db, id, evals, 2), 0, "%s", db_errmsg(db));
    cr_assert_eq(db_add_curves(db, id, curves, 3), 0, "%s", db_errmsg(db));
}

Test(db, schema_version_pragmas_and_tables)
{
    sb_db *db = open_ok();
    char text[256];
    cr_expect_eq(query_int(db, "PRAGMA user_version", 0), DB_SCHEMA_VERSION);
    query_text(db, "PRAGMA journal_mode", text, sizeof text);
    cr_expect_str_eq(text, "wal");
    cr_expect_eq(query_int(db, "PRAGMA foreign_keys", 0), 1);
    cr_expect_eq(query_int(db, "PRAGMA synchronous", 0), 1, "synchronous should be NORMAL (1)");
    query_text(db,
               "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE type IN ('table','index')"
               " AND name NOT LIKE 'sqlite%' ORDER BY name)",
               text, sizeof text);
    cr_expect_str_eq(text, "bench,curves,curves_run,eval_metrics,evals,evals_run,runs");
    query_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('runs')", text, sizeof text);
    cr_expect_str_eq(text,
                     "id,hash,experiment,task,mixer,seed,config,status,error,n_params,device,host,pid,version,"
                     "started_at,finished_at,train_seconds,steps_done,cpu_model,threads,gpu_name,gpu_cc,"
                     "gpu_driver,cuda_version,compiler,cflags,blas,git_rev,deterministic");
    query_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('evals')", text, sizeof text);
    cr_expect_str_eq(text, "run_id,step,n,token_acc,seq_acc,scaled_acc,loss,count");
    query_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('curves')", text, sizeof text);
    cr_expect_str_eq(text, "run_id,step,loss,acc,lr,grad_norm,tokens_per_s");
    query_text(db, "SELECT group_concat(name, ',') FROM pragma_table_info('bench')", text, sizeof text);
    cr_expect_str_eq(text, "id,mixer,config,device,n,batch,direction,tokens_per_s,ms,created_at");
    /* status is constrained */
    sqlite3 *h = db_handle(db);
    cr_expect_neq(sqlite3_exec(h, "INSERT INTO runs (hash, status) VALUES ('x', 'bogus')", NULL, NULL, NULL),
                  SQLITE_OK);
    db_close(db);
    /* reopening keeps everything and does not recreate */
    db = open_ok();
    cr_expect_eq(query_int(db, "PRAGMA user_version", 0), DB_SCHEMA_VERSION);
    db_close(db);
}

Test(db, claim_absent_busy_done)
{
    sb_db *db = open_ok();
    db_run_info info = run_info("aaaa");
    int64_t id = 0, again = 0;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
    cr_expect_gt(id, 0);
    char text[64];
    query_text(db, "SELECT status FROM runs WHERE id = 1", text, sizeof text);
    cr_expect_str_eq(text, "running");
    cr_expect_eq(query_int(db, "SELECT pid FROM runs WHERE id = ?1", id), getpid());
    query_text(db, "SELECT started_at FROM runs WHERE id = 1", text, sizeof text);
    cr_expect_eq(strlen(text), strlen("2024-05-01T12:34:56.789Z"), "started_at '%s' is not ISO-8601 UTC", text);
    cr_expect_eq(text[10], 'T');
    cr_expect_eq(text[strlen(text) - 1], 'Z');

    /* running and owned by us, a live process: busy */
    cr_expect_eq(db_claim_run(db, &info, &again), CLAIM_BUSY);
    cr_expect_eq(again, id);

    add_rows(db, id);
    cr_assert_eq(db_finish_run(db, id, "done", NULL, 1.5, 100), 0, "%s", db_errmsg(db));
    cr_expect_eq(db_claim_run(db, &info, &again), CLAIM_SKIP_DONE);
    cr_expect_eq(again, id);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM evals WHERE run_id = ?1", id), 2, "done runs keep their evals");
    cr_expect_eq(query_int(db, "SELECT steps_done FROM runs WHERE id = ?1", id), 100);
    query_text(db, "SELECT finished_at FROM runs WHERE id = 1", text, sizeof text);
    cr_expect_eq(text[strlen(text) - 1], 'Z');
    cr_expect_eq(query_int(db, "SELECT count(*) FROM runs", 0), 1);
    db_close(db);
}

Test(db, claim_reruns_unfinished_and_deletes_old_rows)
{
    sb_db *db = open_ok();
    const char *statuses[] = {"failed", "interrupted", "diverged"};
    for (int i = 0; i < 3; i++) {
        char hash[16];
        snprintf(hash, sizeof hash, "h%d", i);
        db_run_info info = run_info(hash);
        int64_t id = 0, again = 0;
        cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
        add_rows(db, id);
        cr_assert_eq(db_finish_run(db, id, statuses[i], "boom", 0.5, 7), 0, "%s", db_errmsg(db));
        cr_expect_eq(db_claim_run(db, &info, &again), CLAIM_OK, "%s should rerun", statuses[i]);
        cr_expect_eq(again, id, "a rerun keeps the row");
        cr_expect_eq(query_int(db, "SELECT count(*) FROM evals WHERE run_id = ?1", id), 0, "old evals deleted");
        cr_expect_eq(query_int(db, "SELECT count(*) FROM curves WHERE run_id = ?1", id), 0, "old curves deleted");
        cr_expect_eq(query_int(db, "SELECT error IS NULL AND finished_at IS NULL FROM runs WHERE id = ?1", id), 1);
    }
    /* pending (e.g. written by a planner) is claimable too */
    sqlite3_exec(db_handle(db), "INSERT INTO runs (hash, status) VALUES ('pend', 'pending')", NULL, NULL, NULL);
    db_run_info info = run_info("pend");
    int64_t id = 0;
    cr_expect_eq(db_claim_run(db, &info, &id), CLAIM_OK);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM runs", 0), 4);
    db_close(db);
}

Test(db, claim_reclaims_a_dead_owner_on_this_host_only)
{
    sb_db *db = open_ok();
    db_run_info info = run_info("dead");
    int64_t id = 0, again = 0;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
    add_rows(db, id);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0); /* reaped: kill(child, 0) now fails with ESRCH */
    cr_assert_eq(kill(child, 0), -1);
    sqlite3 *h = db_handle(db);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE runs SET pid = %d, host = 'elsewhere' WHERE id = %lld", (int)child, (long long)id);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    cr_expect_eq(db_claim_run(db, &info, &again), CLAIM_BUSY, "a dead pid on another host proves nothing");

    snprintf(sql, sizeof sql, "UPDATE runs SET host = '%s' WHERE id = %lld", info.host, (long long)id);
    cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    cr_expect_eq(db_claim_run(db, &info, &again), CLAIM_OK, "%s", db_errmsg(db));
    cr_expect_eq(again, id);
    cr_expect_eq(query_int(db, "SELECT pid FROM runs WHERE id = ?1", id), getpid());
    cr_expect_eq(query_int(db, "SELECT count(*) FROM evals WHERE run_id = ?1", id), 0);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM curves WHERE run_id = ?1", id), 0);
    db_close(db);
}

/* Each child claims the same 50 hashes and marks what it gets done at once,
 * so the other sees done or busy, never a dead owner. */
#define N_HASHES 50
static void claim_all(const char *path, int read_fd, const char *results)
{
    char err[512], start;
    if (read(read_fd, &start, 1) != 1) _exit(3); /* both start together */
    sb_db *db = db_open(path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "child: %s\n", err);
        _exit(4);
    }
    FILE *out = fopen(results, "w");
    if (!out) _exit(5);
    for (int i = 0; i < N_HASHES; i++) {
        char hash[16];
        snprintf(hash, sizeof hash, "hash%02d", i);
        db_run_info info = run_info(hash);
        int64_t id = 0;
        int claim = db_claim_run(db, &info, &id);
        if (claim == CLAIM_ERROR) {
            fprintf(stderr, "child: %s\n", db_errmsg(db));
            _exit(6);
        }
        if (claim == CLAIM_OK) {
            db_eval_row e = {.step = 1, .n = 8, .scaled_acc = 1, .count = 1};
            if (db_add_evals(db, id, &e, 1) || db_finish_run(db, id, "done", NULL, 0, 1)) _exit(7);
        }
        fprintf(out, "%d %d\n", i, claim);
    }
    fclose(out);
    db_close(db);
    _exit(0);
}

/* One round on a fresh file: the children also race to create the schema. */
static void claim_round(const char *path, int round)
{
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t children[2];
    char results[2][160];
    for (int c = 0; c < 2; c++) {
        snprintf(results[c], sizeof results[c], "%s/claims%d_%d.txt", tmp_dir, round, c);
        children[c] = fork();
        cr_assert_geq(children[c], 0);
        if (children[c] == 0) {
            close(go[1]);
            claim_all(path, go[0], results[c]);
        }
    }
    close(go[0]);
    cr_assert_eq(write(go[1], "gg", 2), 2);
    close(go[1]);
    for (int c = 0; c < 2; c++) {
        int status = 0;
        waitpid(children[c], &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: child %d failed (status %d)", round, c,
                  status);
    }
    int ok_count[N_HASHES] = {0}, lines = 0;
    for (int c = 0; c < 2; c++) {
        FILE *f = fopen(results[c], "r");
        cr_assert_not_null(f);
        int i, claim;
        while (fscanf(f, "%d %d", &i, &claim) == 2) {
            cr_assert(i >= 0 && i < N_HASHES);
            cr_expect(claim == CLAIM_OK || claim == CLAIM_SKIP_DONE || claim == CLAIM_BUSY, "claim %d", claim);
            ok_count[i] += claim == CLAIM_OK;
            lines++;
        }
        fclose(f);
    }
    cr_expect_eq(lines, 2 * N_HASHES);
    for (int i = 0; i < N_HASHES; i++)
        cr_expect_eq(ok_count[i], 1, "round %d: hash%02d claimed OK %d times", round, i, ok_count[i]);
    char err[512] = "";
    sb_db *db = db_open(path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM runs", 0), N_HASHES);
    cr_expect_eq(query_int(db, "SELECT count(DISTINCT hash) FROM runs", 0), N_HASHES);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM runs WHERE status = 'done'", 0), N_HASHES);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM evals", 0), N_HASHES);
    char text[64];
    query_text(db, "PRAGMA integrity_check", text, sizeof text);
    cr_expect_str_eq(text, "ok");
    query_text(db, "PRAGMA foreign_key_check", text, sizeof text);
    cr_expect_str_eq(text, "");
    db_close(db);
}

/* Several rounds: a race in opening a fresh file showed up in ~2% of them. */
Test(db, two_processes_claim_each_hash_once)
{
    int rounds = getenv("SB_TEST_QUICK") ? 4 : 25;
    for (int round = 0; round < rounds; round++) {
        char path[160];
        snprintf(path, sizeof path, "%s/race%d.db", tmp_dir, round);
        claim_round(path, round);
    }
}

/* Four processes open one fresh file at the same moment: exactly one creates
 * the schema, none sees a half-made one. */
Test(db, concurrent_opens_of_a_fresh_file)
{
    int rounds = getenv("SB_TEST_QUICK") ? 8 : 40;
    for (int round = 0; round < rounds; round++) {
        char path[160];
        snprintf(path, sizeof path, "%s/open%d.db", tmp_dir, round);
        int go[2];
        cr_assert_eq(pipe(go), 0);
        pid_t children[4];
        for (int c = 0; c < 4; c++) {
            children[c] = fork();
            cr_assert_geq(children[c], 0);
            if (children[c] == 0) {
                char err[512], start;
                close(go[1]);
                if (read(go[0], &start, 1) != 1) _exit(3);
                sb_db *db = db_open(path, err, sizeof err);
                if (!db) {
                    fprintf(stderr, "round %d child %d: %s\n", round, c, err);
                    _exit(4);
                }
                db_close(db);
                _exit(0);
            }
        }
        close(go[0]);
        cr_assert_eq(write(go[1], "gggg", 4), 4);
        close(go[1]);
        for (int c = 0; c < 4; c++) {
            int status = 0;
            waitpid(children[c], &status, 0);
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: child %d could not open (status %d)",
                      round, c, status);
        }
    }
}

Test(db, refuses_foreign_sqlite_file)
{
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open(db_path, &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "CREATE TABLE photos (id INTEGER, path TEXT)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    char err[512] = "";
    cr_expect_null(db_open(db_path, err, sizeof err));
    cr_expect(strstr(err, "not a statebench results database") && strstr(err, "photos"), "message: %s", err);
    cr_expect_null(db_open_readonly(db_path, err, sizeof err));
    /* nothing was written: same tables, journal mode untouched */
    cr_assert_eq(sqlite3_open(db_path, &h), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    cr_expect_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_eq(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL);
    cr_expect_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(st, 0), "delete");
    sqlite3_finalize(st);
    sqlite3_close(h);
}

Test(db, refuses_non_sqlite_and_newer_files)
{
    FILE *f = fopen(db_path, "w");
    cr_assert_not_null(f);
    fputs("name,value\nthis is a csv file, not a database\n", f);
    fclose(f);
    char err[512] = "";
    cr_expect_null(db_open(db_path, err, sizeof err));
    cr_expect(strstr(err, "not an SQLite file") != NULL, "message: %s", err);
    remove(db_path);

    sb_db *db = open_ok();
    cr_assert_eq(sqlite3_exec(db_handle(db), "PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
    db_close(db);
    cr_expect_null(db_open(db_path, err, sizeof err));
    cr_expect(strstr(err, "newer statebench") && strstr(err, "schema version 4"), "message: %s", err);
    cr_expect_null(db_open_readonly(db_path, err, sizeof err));
}

Test(db, readonly_reads_and_refuses_writes)
{
    char err[512] = "";
    cr_expect_null(db_open_readonly(db_path, err, sizeof err), "a missing file is not created");
    cr_expect(strstr(err, "cannot read") != NULL, "message: %s", err);
    cr_expect_neq(access(db_path, F_OK), 0);
    sb_db *db = open_ok();
    db_run_info info = run_info("ro");
    int64_t id = 0;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK);
    db_close(db);
    db = db_open_readonly(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    int64_t counts[6];
    cr_expect_eq(db_status_counts(db, counts), 0, "%s", db_errmsg(db));
    cr_expect_eq(counts[1], 1);
    db_eval_row e = {.step = 1, .n = 8};
    cr_expect_eq(db_add_evals(db, id, &e, 1), -1);
    cr_expect(strstr(db_errmsg(db), "read-only") != NULL, "message: %s", db_errmsg(db));
    cr_expect_eq(db_claim_run(db, &info, &id), CLAIM_ERROR);
    db_close(db);
}

Test(db, write_errors_roll_back_and_report)
{
    sb_db *db = open_ok();
    db_eval_row rows[2] = {{.step = 1, .n = 8}, {.step = 1, .n = 16}};
    cr_expect_eq(db_add_evals(db, 999, rows, 2), -1, "evals of a missing run violate the foreign key");
    cr_expect(strstr(db_errmsg(db), "FOREIGN KEY") != NULL, "message: %s", db_errmsg(db));
    cr_expect_eq(query_int(db, "SELECT count(*) FROM evals", 0), 0);
    cr_expect_eq(db_finish_run(db, 999, "done", NULL, 0, 0), -1);
    cr_expect(strstr(db_errmsg(db), "no such run") != NULL, "message: %s", db_errmsg(db));
    db_run_info info = run_info("st");
    int64_t id = 0;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK);
    cr_expect_eq(db_finish_run(db, id, "running", NULL, 0, 0), -1);
    cr_expect(strstr(db_errmsg(db), "allowed: done, failed, diverged, interrupted") != NULL, "message: %s",
              db_errmsg(db));
    /* the connection is usable after the failures */
    cr_expect_eq(db_add_evals(db, id, rows, 2), 0, "%s", db_errmsg(db));
    cr_expect_eq(query_int(db, "SELECT count(*) FROM evals", 0), 2);
    db_close(db);
}

Test(db, status_counts_and_bench)
{
    sb_db *db = open_ok();
    const char *finish[] = {"done", "done", "failed", NULL, "diverged", "interrupted"};
    for (int i = 0; i < 6; i++) {
        char hash[16];
        snprintf(hash, sizeof hash, "s%d", i);
        db_run_info info = run_info(hash);
        int64_t id = 0;
        cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK);
        if (finish[i]) cr_assert_eq(db_finish_run(db, id, finish[i], NULL, 0, 0), 0);
    }
    int64_t counts[6];
    cr_assert_eq(db_status_counts(db, counts), 0);
    int64_t expected[6] = {0, 1, 2, 1, 1, 1};
    for (int i = 0; i < 6; i++) cr_expect_eq(counts[i], expected[i], "status %d: %lld", i, (long long)counts[i]);

    db_bench_row b = {.mixer = "deltanet", .config = "{}", .device = "cpu", .direction = "fwd+bwd", .n = 256,
                      .batch = 8, .tokens_per_s = 1e5, .ms = 20.5};
    cr_expect_eq(db_add_bench(db, &b), 0, "%s", db_errmsg(db));
    char text[64];
    query_text(db, "SELECT direction || ' ' || n || ' ' || ms FROM bench", text, sizeof text);
    cr_expect_str_eq(text, "fwd+bwd 256 20.5");
    query_text(db, "SELECT created_at FROM bench", text, sizeof text);
    cr_expect_eq(text[strlen(text) - 1], 'Z');
    db_close(db);
}
