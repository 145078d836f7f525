/* db.c: the results database: schema creation and checks, run claiming, row writes. */
#include "db.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Version 1 is the schema of DESIGN.md plus runs.pid and bench.created_at. */
static const char *const schema_sql =
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY,"
    " hash TEXT UNIQUE NOT NULL,"
    " experiment TEXT, task TEXT, mixer TEXT, seed INTEGER,"
    " config TEXT,"
    " status TEXT NOT NULL CHECK (status IN"
    "  ('pending','running','done','failed','diverged','interrupted')),"
    " error TEXT, n_params INTEGER, device TEXT, host TEXT,"
    " pid INTEGER," /* owner process, for stale-claim detection */
    " version TEXT, started_at TEXT, finished_at TEXT,"
    " train_seconds REAL, steps_done INTEGER);"
    "CREATE TABLE evals ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " step INTEGER, n INTEGER, token_acc REAL, seq_acc REAL, scaled_acc REAL,"
    " loss REAL, count INTEGER);"
    "CREATE INDEX evals_run ON evals(run_id);"
    "CREATE TABLE curves ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " step INTEGER, loss REAL, acc REAL, lr REAL, grad_norm REAL, tokens_per_s REAL);"
    "CREATE INDEX curves_run ON curves(run_id);"
    "CREATE TABLE bench ("
    " id INTEGER PRIMARY KEY,"
    " mixer TEXT, config TEXT, device TEXT, n INTEGER, batch INTEGER,"
    " direction TEXT, tokens_per_s REAL, ms REAL, created_at TEXT);"
    "PRAGMA user_version = 1;";

/* Named metrics of an eval row besides the columns of DESIGN.md (icll's
 * plain token accuracy beside its dfa_acc token_acc); a row counts only
 * beside the evals row of the same run, step and n. */
#define EVAL_METRICS_COLUMNS "step INTEGER NOT NULL, n INTEGER NOT NULL, name TEXT NOT NULL, value REAL"

/* Upgrades, applied in order to any older file (and to a fresh one after
 * schema_sql, so a created and an upgraded file are the same): migrations[i]
 * takes user_version i + 1 to i + 2. Each ends by setting user_version. */
static const char *const migrations[] = {
    /* 1 -> 2: provenance of each run (db_provenance in db.h) */
    "ALTER TABLE runs ADD COLUMN cpu_model TEXT;"
    "ALTER TABLE runs ADD COLUMN threads INTEGER;"
    "ALTER TABLE runs ADD COLUMN gpu_name TEXT;"
    "ALTER TABLE runs ADD COLUMN gpu_cc TEXT;"
    "ALTER TABLE runs ADD COLUMN gpu_driver TEXT;"
    "ALTER TABLE runs ADD COLUMN cuda_version TEXT;"
    "ALTER TABLE runs ADD COLUMN compiler TEXT;"
    "ALTER TABLE runs ADD COLUMN cflags TEXT;"
    "ALTER TABLE runs ADD COLUMN blas TEXT;"
    "ALTER TABLE runs ADD COLUMN git_rev TEXT;"
    "ALTER TABLE runs ADD COLUMN deterministic INTEGER;"
    "PRAGMA user_version = 2;",
    /* 2 -> 3: metrics of an eval row beyond its columns (db_eval_metric) */
    "CREATE TABLE eval_metrics ("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, " EVAL_METRICS_COLUMNS ","
    " UNIQUE (run_id, step, n, name));"
    "PRAGMA user_version = 3;",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == DB_SCHEMA_VERSION - 1,
               "one migration per schema version after the first");

static const char *const required_tables[] = {"runs", "evals", "curves", "bench"};

struct sb_db {
    sqlite3 *h;
    int readonly;
    int version; /* user_version as opened (after any upgrade) */
    char host[256];
    char err[512];
    sqlite3_stmt *find_run, *insert_run, *reclaim_run, *delete_evals, *delete_curves;
    sqlite3_stmt *insert_eval, *insert_curve, *finish_run, *insert_bench, *status_counts;
    sqlite3_stmt *insert_eval_metric, *prune_eval_metrics;
};

/* Statements that write, prepared only for read-write connections. */
#define RUN_COLUMNS "experiment, task, mixer, seed, config, n_params, device, host, pid, version, started_at," \
    " cpu_model, threads, gpu_name, gpu_cc, gpu_driver, cuda_version, compiler, cflags, blas, git_rev, deterministic"
static const struct { size_t offset; int writes; const char *sql; } statements[] = {
    {offsetof(sb_db, find_run), 0, "SELECT id, status, host, pid FROM runs WHERE hash = ?1"},
    {offsetof(sb_db, insert_run), 1,
     "INSERT INTO runs (hash, status, " RUN_COLUMNS ")"
     " VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
     " ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"},
    {offsetof(sb_db, reclaim_run), 1,
     "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, train_seconds = NULL,"
     " steps_done = NULL, experiment = ?2, task = ?3, mixer = ?4, seed = ?5, config = ?6,"
     " n_params = ?7, device = ?8, host = ?9, pid = ?10, version = ?11, started_at = ?12,"
     " cpu_model = ?13, threads = ?14, gpu_name = ?15, gpu_cc = ?16, gpu_driver = ?17, cuda_version = ?18,"
     " compiler = ?19, cflags = ?20, blas = ?21, git_rev = ?22, deterministic = ?23"
     " WHERE id = ?1"},
    {offsetof(sb_db, delete_evals), 1, "DELETE FROM evals WHERE run_id = ?1"},
    {offsetof(sb_db, delete_curves), 1, "DELETE FROM curves WHERE run_id = ?1"},
    {offsetof(sb_db, insert_eval), 1,
     "INSERT INTO evals (run_id, step, n, token_acc, seq_acc, scaled_acc, loss, count)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
    {offsetof(sb_db, insert_curve), 1,
     "INSERT INTO curves (run_id, step, loss, acc, lr, grad_norm, tokens_per_s)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
    {offsetof(sb_db, finish_run), 1,
     "UPDATE runs SET status = ?2, error = ?3, finished_at = ?4, train_seconds = ?5,"
     " steps_done = ?6 WHERE id = ?1"},
    {offsetof(sb_db, insert_bench), 1,
     "INSERT INTO bench (mixer, config, device, n, batch, direction, tokens_per_s, ms, created_at)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
    {offsetof(sb_db, status_counts), 0, "SELECT status, count(*) FROM runs GROUP BY status"},
    {offsetof(sb_db, insert_eval_metric), 1,
     "INSERT INTO eval_metrics (run_id, step, n, name, value) VALUES (?1, ?2, ?3, ?4, ?5)"},
    {offsetof(sb_db, prune_eval_metrics), 1,
     "DELETE FROM eval_metrics WHERE run_id = ?1 AND NOT EXISTS (SELECT 1 FROM evals e"
     " WHERE e.run_id = ?1 AND e.step = eval_metrics.step AND e.n = eval_metrics.n)"},
};
#define N_STATEMENTS (sizeof statements / sizeof statements[0])

static sqlite3_stmt **stmt_slot(sb_db *db, size_t i)
{
    return (sqlite3_stmt **)((char *)db + statements[i].offset);
}

static void set_err(sb_db *db, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof db->err, fmt, ap);
    va_end(ap);
}

/* Seconds a connection waits for another process's lock before SQLITE_BUSY:
 * STATEBENCH_BUSY_TIMEOUT when set (0..86400), else 30. */
static int busy_timeout_seconds(void)
{
    const char *text = getenv("STATEBENCH_BUSY_TIMEOUT");
    if (!text || !*text) return 30;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || v < 0 || v > 86400) return -1;
    return (int)v;
}

/* Records "what: <sqlite message>" and, for the failures a user can act on
 * (locked, full, I/O), why and what to do; call before anything that
 * changes the message. */
static int fail_sql(sb_db *db, const char *what)
{
    int code = sqlite3_errcode(db->h), sys = sqlite3_system_errno(db->h);
    char why[256] = "";
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        snprintf(why, sizeof why,
                 " (another process held the database locked for longer than the %d s busy timeout; "
                 "set STATEBENCH_BUSY_TIMEOUT=SECONDS to wait longer)",
                 busy_timeout_seconds());
    else if (code == SQLITE_FULL || code == SQLITE_IOERR)
        snprintf(why, sizeof why, " (%s%s; nothing of this transaction was written, earlier results are intact)",
                 sys ? "system error: " : "the disk or a file-size limit is full", sys ? strerror(sys) : "");
    set_err(db, "%s: %s%s", what, sqlite3_errmsg(db->h), why);
    return -1;
}

static void rollback(sb_db *db)
{
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

static int begin_immediate(sb_db *db, const char *what)
{
    if (sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return fail_sql(db, what);
    return 0;
}

static int commit(sb_db *db, const char *what)
{
    if (sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fail_sql(db, what);
        rollback(db);
        return -1;
    }
    return 0;
}

/* Steps a write statement to completion and resets it. */
static int step_done(sb_db *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) fail_sql(db, what);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ISO-8601 UTC with milliseconds, e.g. 2024-05-01T12:34:56.789Z */
static void iso_now(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, 32 - len, ".%03ldZ", ts.tv_nsec / 1000000);
}

static int exec_int(sqlite3 *h, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

enum { SCHEMA_OURS = 0, SCHEMA_EMPTY = 1, SCHEMA_BAD = -1 };

/* Decides whether the open file holds our schema, nothing at all, or
 * something else (another program's tables, a newer schema, not SQLite). */
static int check_schema(sqlite3 *h, const char *path, int *version_out, char *err, size_t errlen)
{
    int64_t version = 0;
    int rc = exec_int(h, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK) {
        if (rc == SQLITE_NOTADB)
            snprintf(err, errlen, "%s: not a statebench results database (not an SQLite file)", path);
        else
            snprintf(err, errlen, "%s: cannot read the schema version: %s", path, sqlite3_errmsg(h));
        return SCHEMA_BAD;
    }
    if (version > DB_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s: written by a newer statebench (schema version %lld, this build reads up to %d); "
                 "use a newer statebench",
                 path, (long long)version, DB_SCHEMA_VERSION);
        return SCHEMA_BAD;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT count(*), group_concat(name, ', ') FROM sqlite_master"
                           " WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errlen, "%s: cannot list the tables: %s", path, sqlite3_errmsg(h));
        sqlite3_finalize(st);
        return SCHEMA_BAD;
    }
    *version_out = (int)version;
    int64_t tables = sqlite3_column_int64(st, 0);
    char names[200];
    snprintf(names, sizeof names, "%s",
             sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
    sqlite3_finalize(st);
    if (version == 0) {
        if (tables == 0) return SCHEMA_EMPTY;
        snprintf(err, errlen,
                 "%s: not a statebench results database (it holds tables %s and no statebench "
                 "schema version); refusing to write into it",
                 path, names);
        return SCHEMA_BAD;
    }
    for (size_t i = 0; i < sizeof required_tables / sizeof required_tables[0]; i++) {
        int found = 0;
        if (sqlite3_prepare_v2(h, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1, &st,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_text(st, 1, required_tables[i], -1, SQLITE_STATIC);
            found = sqlite3_step(st) == SQLITE_ROW;
        }
        sqlite3_finalize(st);
        if (!found) {
            snprintf(err, errlen,
                     "%s: not a statebench results database (schema version %lld but no table '%s')",
                     path, (long long)version, required_tables[i]);
            return SCHEMA_BAD;
        }
    }
    return SCHEMA_OURS;
}

/* check_schema in one read transaction: its two reads must see one snapshot,
 * or a concurrent schema creation could show tables without the version. */
static int check_schema_snapshot(sqlite3 *h, const char *path, int *version, char *err, size_t errlen)
{
    if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot read: %s", path, sqlite3_errmsg(h));
        return SCHEMA_BAD;
    }
    int state = check_schema(h, path, version, err, errlen);
    sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
    return state;
}

/* Switching to WAL needs a moment of exclusive access; a second process
 * opening the same fresh file can get SQLITE_BUSY without the busy handler. */
static int set_wal(sqlite3 *h, const char *path, char *err, size_t errlen)
{
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(h, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        char mode[16] = "";
        if (rc == SQLITE_ROW) snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (rc == SQLITE_ROW) {
            if (strcmp(mode, "wal") && strcmp(mode, "memory"))
                fprintf(stderr,
                        "statebench: warning: %s: WAL mode unavailable (journal mode '%s'; a network "
                        "filesystem?); concurrent workers will wait on each other\n",
                        path, mode);
            return 0;
        }
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt >= 3000) {
            snprintf(err, errlen, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(h));
            return -1;
        }
        usleep(10000);
    }
}

static int exec_or_err(sqlite3 *h, const char *sql, const char *path, const char *what, char *err,
                       size_t errlen)
{
    if (sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK) return 0;
    int busy = sqlite3_errcode(h) == SQLITE_BUSY;
    snprintf(err, errlen, "%s: %s: %s%s", path, what, sqlite3_errmsg(h),
             busy ? " (another process held the database locked for longer than the busy timeout; "
                    "set STATEBENCH_BUSY_TIMEOUT=SECONDS to wait longer)"
                  : "");
    return -1;
}

/* Applies the migrations from user_version `from` up to DB_SCHEMA_VERSION,
 * inside the caller's transaction. */
static int apply_migrations(sqlite3 *h, const char *path, int from, char *err, size_t errlen)
{
    for (int v = from; v < DB_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(h, migrations[v - 1], NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: cannot upgrade the schema from version %d to %d: %s", path, v, v + 1,
                     sqlite3_errmsg(h));
            return -1;
        }
    }
    return 0;
}

/* Creates the schema, or upgrades an older one, unless a concurrent opener
 * already did; the check is repeated inside the write transaction, so
 * exactly one process creates or upgrades it, all or nothing. */
static int create_schema(sqlite3 *h, const char *path, char *err, size_t errlen)
{
    if (exec_or_err(h, "BEGIN IMMEDIATE", path, "cannot lock to create or upgrade the schema", err, errlen))
        return -1;
    int version = 0;
    int state = check_schema(h, path, &version, err, errlen);
    if (state == SCHEMA_EMPTY) {
        if (exec_or_err(h, schema_sql, path, "cannot create the schema", err, errlen)) state = SCHEMA_BAD;
        version = 1;
    }
    if (state != SCHEMA_BAD && apply_migrations(h, path, version, err, errlen)) state = SCHEMA_BAD;
    if (state == SCHEMA_BAD) {
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (exec_or_err(h, "COMMIT", path, "cannot commit the schema", err, errlen)) {
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

static sb_db *open_db(const char *path, int readonly, char *err, size_t errlen)
{
    if (readonly && access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s: cannot read the database: %s", path, strerror(errno));
        return NULL;
    }
    sb_db *db = calloc(1, sizeof *db);
    if (!db) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    db->readonly = readonly;
    if (gethostname(db->host, sizeof db->host - 1) != 0) snprintf(db->host, sizeof db->host, "unknown");
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto fail;
    }
    int timeout = busy_timeout_seconds();
    if (timeout < 0) {
        snprintf(err, errlen, "STATEBENCH_BUSY_TIMEOUT: '%s' is not an integer number of seconds in 0..86400",
                 getenv("STATEBENCH_BUSY_TIMEOUT"));
        goto fail;
    }
    sqlite3_busy_timeout(db->h, timeout * 1000);
    int state = check_schema_snapshot(db->h, path, &db->version, err, errlen);
    if (state == SCHEMA_BAD) goto fail;
    if (readonly) {
        if (state == SCHEMA_EMPTY) {
            snprintf(err, errlen, "%s: empty database (no statebench schema yet)", path);
            goto fail;
        }
        /* a file older than v3 reads as if upgraded: no extra metrics */
        static const char *const no_metrics =
            "CREATE TEMP TABLE eval_metrics (run_id INTEGER NOT NULL, " EVAL_METRICS_COLUMNS ")";
        if (db->version < 3 &&
            exec_or_err(db->h, no_metrics, path, "cannot stand in for the eval_metrics table", err, errlen))
            goto fail;
    } else {
        if (set_wal(db->h, path, err, errlen)) goto fail;
        if ((state == SCHEMA_EMPTY || db->version < DB_SCHEMA_VERSION) && create_schema(db->h, path, err, errlen))
            goto fail;
        db->version = DB_SCHEMA_VERSION;
        if (exec_or_err(db->h, "PRAGMA synchronous = NORMAL", path, "cannot set synchronous", err, errlen))
            goto fail;
    }
    if (exec_or_err(db->h, "PRAGMA foreign_keys = ON", path, "cannot enable foreign keys", err, errlen))
        goto fail;
    for (size_t i = 0; i < N_STATEMENTS; i++) {
        if (readonly && statements[i].writes) continue;
        if (sqlite3_prepare_v3(db->h, statements[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmt_slot(db, i),
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "%s: cannot prepare a statement: %s", path, sqlite3_errmsg(db->h));
            goto fail;
        }
    }
    return db;
fail:
    db_close(db);
    return NULL;
}

sb_db *db_open(const char *path, char *err, size_t errlen) { return open_db(path, 0, err, errlen); }

sb_db *db_open_readonly(const char *path, char *err, size_t errlen) { return open_db(path, 1, err, errlen); }

void db_close(sb_db *db)
{
    if (!db) return;
    for (size_t i = 0; i < N_STATEMENTS; i++) sqlite3_finalize(*stmt_slot(db, i));
    sqlite3_close(db->h);
    free(db);
}

const char *db_errmsg(sb_db *db) { return db ? db->err : "no database"; }

int db_schema_version(sb_db *db) { return db->version; }

void *db_handle(sb_db *db) { return db->h; }

static int check_writable(sb_db *db, const char *what)
{
    if (!db->readonly) return 0;
    set_err(db, "%s: the database was opened read-only", what);
    return -1;
}

static void bind_text_or_null(sqlite3_stmt *st, int index, const char *text)
{
    if (text) sqlite3_bind_text(st, index, text, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, index);
}

/* Binds ?2..?23 of insert_run / reclaim_run (same layout). */
static void bind_run_info(sb_db *db, sqlite3_stmt *st, const db_run_info *info, const char *now)
{
    bind_text_or_null(st, 2, info->experiment);
    bind_text_or_null(st, 3, info->task);
    bind_text_or_null(st, 4, info->mixer);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)info->seed); /* seeds above 2^63 wrap to negative */
    bind_text_or_null(st, 6, info->config);
    sqlite3_bind_int64(st, 7, info->n_params);
    bind_text_or_null(st, 8, info->device);
    bind_text_or_null(st, 9, info->host ? info->host : db->host);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)getpid());
    bind_text_or_null(st, 11, info->version);
    sqlite3_bind_text(st, 12, now, -1, SQLITE_TRANSIENT);
    const db_provenance *p = info->provenance;
    for (int i = 13; i <= 23; i++) sqlite3_bind_null(st, i);
    if (!p) return;
    bind_text_or_null(st, 13, p->cpu_model);
    sqlite3_bind_int(st, 14, p->threads);
    bind_text_or_null(st, 15, p->gpu_name);
    bind_text_or_null(st, 16, p->gpu_cc);
    bind_text_or_null(st, 17, p->gpu_driver);
    bind_text_or_null(st, 18, p->cuda_version);
    bind_text_or_null(st, 19, p->compiler);
    bind_text_or_null(st, 20, p->cflags);
    bind_text_or_null(st, 21, p->blas);
    bind_text_or_null(st, 22, p->git_rev);
    sqlite3_bind_int(st, 23, p->deterministic);
}

/* A running claim is stale when its owner was a process of this host that no
 * longer exists. A process that exists but is not ours to signal (EPERM) is alive. */
static int claim_is_stale(sb_db *db, const char *host, int64_t pid)
{
    if (!host || strcmp(host, db->host) != 0 || pid <= 0) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int db_claim_run(sb_db *db, const db_run_info *info, int64_t *run_id)
{
    char what[128];
    snprintf(what, sizeof what, "claim run %.40s", info->hash ? info->hash : "(null)");
    if (check_writable(db, what)) return CLAIM_ERROR;
    if (!info->hash) {
        set_err(db, "%s: the run has no hash", what);
        return CLAIM_ERROR;
    }
    if (begin_immediate(db, what)) return CLAIM_ERROR;
    char now[32];
    iso_now(now);
    int result = CLAIM_ERROR;
    sqlite3_stmt *st = db->find_run;
    sqlite3_bind_text(st, 1, info->hash, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        sqlite3_bind_text(db->insert_run, 1, info->hash, -1, SQLITE_TRANSIENT);
        bind_run_info(db, db->insert_run, info, now);
        if (step_done(db, db->insert_run, what) == 0) {
            *run_id = sqlite3_last_insert_rowid(db->h);
            result = CLAIM_OK;
        }
    } else if (rc == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        char status[16], host[256];
        snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 1));
        int host_null = sqlite3_column_type(st, 2) == SQLITE_NULL;
        snprintf(host, sizeof host, "%s", host_null ? "" : (const char *)sqlite3_column_text(st, 2));
        int64_t pid = sqlite3_column_type(st, 3) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 3);
        sqlite3_reset(st);
        *run_id = id;
        if (!strcmp(status, "done")) {
            result = CLAIM_SKIP_DONE;
        } else if (!strcmp(status, "running") && !claim_is_stale(db, host_null ? NULL : host, pid)) {
            result = CLAIM_BUSY;
        } else {
            sqlite3_bind_int64(db->delete_evals, 1, id);
            sqlite3_bind_int64(db->delete_curves, 1, id);
            sqlite3_bind_int64(db->reclaim_run, 1, id);
            bind_run_info(db, db->reclaim_run, info, now);
            if (step_done(db, db->delete_evals, what) == 0 && step_done(db, db->delete_curves, what) == 0 &&
                step_done(db, db->reclaim_run, what) == 0)
                result = CLAIM_OK;
        }
    } else {
        fail_sql(db, what);
        sqlite3_reset(st);
    }
    if (result == CLAIM_ERROR) {
        rollback(db);
        return CLAIM_ERROR;
    }
    return commit(db, what) == 0 ? result : CLAIM_ERROR;
}

/* NaN binds as NULL in SQLite, which is what a diverged loss should read as. */
int db_add_curves(sb_db *db, int64_t run_id, const db_curve_row *rows, int count)
{
    const char *what = "write training curve rows";
    if (check_writable(db, what)) return -1;
    if (count <= 0) return 0;
    if (begin_immediate(db, what)) return -1;
    sqlite3_stmt *st = db->insert_curve;
    for (int i = 0; i < count; i++) {
        const db_curve_row *r = &rows[i];
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, r->step);
        sqlite3_bind_double(st, 3, r->loss);
        sqlite3_bind_double(st, 4, r->acc);
        sqlite3_bind_double(st, 5, r->lr);
        sqlite3_bind_double(st, 6, r->grad_norm);
        sqlite3_bind_double(st, 7, r->tokens_per_s);
        if (step_done(db, st, what)) {
            rollback(db);
            return -1;
        }
    }
    return commit(db, what);
}

int db_add_evals(sb_db *db, int64_t run_id, const db_eval_row *rows, int count)
{
    return db_add_evals_metrics(db, run_id, rows, count, NULL, 0);
}

int db_add_evals_metrics(sb_db *db, int64_t run_id, const db_eval_row *rows, int count,
                         const db_eval_metric *metrics, int n_metrics)
{
    const char *what = "write eval rows";
    if (check_writable(db, what)) return -1;
    if (count <= 0 && n_metrics <= 0) return 0;
    if (begin_immediate(db, what)) return -1;
    sqlite3_stmt *st = db->insert_eval;
    for (int i = 0; i < count; i++) {
        const db_eval_row *r = &rows[i];
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, r->step);
        sqlite3_bind_int(st, 3, r->n);
        sqlite3_bind_double(st, 4, r->token_acc);
        sqlite3_bind_double(st, 5, r->seq_acc);
        sqlite3_bind_double(st, 6, r->scaled_acc);
        sqlite3_bind_double(st, 7, r->loss);
        sqlite3_bind_int64(st, 8, r->count);
        if (step_done(db, st, what)) {
            rollback(db);
            return -1;
        }
    }
    st = db->insert_eval_metric;
    for (int i = 0; i < n_metrics; i++) {
        const db_eval_metric *m = &metrics[i];
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, m->step);
        sqlite3_bind_int(st, 3, m->n);
        bind_text_or_null(st, 4, m->name);
        sqlite3_bind_double(st, 5, m->value);
        if (step_done(db, st, what)) {
            rollback(db);
            return -1;
        }
    }
    return commit(db, what);
}

int db_prune_eval_metrics(sb_db *db, int64_t run_id)
{
    const char *what = "prune eval metrics";
    if (check_writable(db, what)) return -1;
    sqlite3_bind_int64(db->prune_eval_metrics, 1, run_id);
    return step_done(db, db->prune_eval_metrics, what);
}

int db_finish_run(sb_db *db, int64_t run_id, const char *status, const char *error, double train_seconds,
                  int64_t steps_done)
{
    char what[64];
    snprintf(what, sizeof what, "finish run %lld", (long long)run_id);
    if (check_writable(db, what)) return -1;
    static const char *const finished[] = {"done", "failed", "diverged", "interrupted"};
    int known = 0;
    for (size_t i = 0; i < sizeof finished / sizeof finished[0]; i++)
        if (status && !strcmp(status, finished[i])) known = 1;
    if (!known) {
        set_err(db, "%s: status '%s' is not allowed; allowed: done, failed, diverged, interrupted", what,
                status ? status : "(null)");
        return -1;
    }
    char now[32];
    iso_now(now);
    sqlite3_stmt *st = db->finish_run;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    bind_text_or_null(st, 3, error);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 5, train_seconds);
    sqlite3_bind_int64(st, 6, steps_done);
    if (step_done(db, st, what)) return -1;
    if (sqlite3_changes(db->h) != 1) {
        set_err(db, "%s: no such run", what);
        return -1;
    }
    return 0;
}

int db_add_bench(sb_db *db, const db_bench_row *row)
{
    const char *what = "write a bench row";
    if (check_writable(db, what)) return -1;
    char now[32];
    iso_now(now);
    sqlite3_stmt *st = db->insert_bench;
    bind_text_or_null(st, 1, row->mixer);
    bind_text_or_null(st, 2, row->config);
    bind_text_or_null(st, 3, row->device);
    sqlite3_bind_int(st, 4, row->n);
    sqlite3_bind_int(st, 5, row->batch);
    bind_text_or_null(st, 6, row->direction);
    sqlite3_bind_double(st, 7, row->tokens_per_s);
    sqlite3_bind_double(st, 8, row->ms);
    sqlite3_bind_text(st, 9, now, -1, SQLITE_TRANSIENT);
    return step_done(db, st, what);
}

int db_status_counts(sb_db *db, int64_t out[6])
{
    static const char *const order[6] = {"pending", "running", "done", "failed", "diverged", "interrupted"};
    for (int i = 0; i < 6; i++) out[i] = 0;
    sqlite3_stmt *st = db->status_counts;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 0);
        for (int i = 0; i < 6; i++)
            if (status && !strcmp(status, order[i])) out[i] = sqlite3_column_int64(st, 1);
    }
    if (rc != SQLITE_DONE) fail_sql(db, "count runs by status");
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}
