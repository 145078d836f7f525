/* test_report.c: `report` tables, `plot` figures and run selection (groups.c) on small synthetic results databases. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness/cmd_plot.h"
#include "../harness/cmd_report.h"
#include "../harness/db.h"
#include "../harness/groups.h"

static char tmp_dir[64];
static char db_path[128];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void make_tmp(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sb_test_report_XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
    snprintf(db_path, sizeof db_path, "%s/parity.db", tmp_dir);
}

static void remove_tmp(void)
{
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(report, .init = make_tmp, .fini = remove_tmp);
TestSuite(plot, .init = make_tmp, .fini = remove_tmp);
TestSuite(groups);

typedef struct {
    int n;
    double scaled_acc;
} point;

/* One run with its evals: first at step 100 with wrong values (they must be
 * ignored), then the given values at last_step (> 100). */
static int64_t add_run(sb_db *db, const char *hash, const char *experiment, const char *task, const char *mixer,
                       int seed, const char *config, const char *status, int last_step, const point *points, int n)
{
    db_run_info info = {.hash = hash, .experiment = experiment, .task = task, .mixer = mixer, .config = config,
                        .device = "cpu", .version = "test", .seed = (uint64_t)seed, .n_params = 100};
    int64_t id = 0;
    cr_assert_eq(db_claim_run(db, &info, &id), CLAIM_OK, "%s", db_errmsg(db));
    db_eval_row rows[8];
    for (int i = 0; i < n; i++) {
        rows[i] = (db_eval_row){.step = 100, .n = points[i].n, .token_acc = 0.5, .seq_acc = 0.5,
                                .scaled_acc = -0.9, .loss = 9, .count = 32};
        rows[n + i] = (db_eval_row){.step = last_step, .n = points[i].n,
                                    .token_acc = 0.5 + 0.5 * points[i].scaled_acc, .seq_acc = 0,
                                    .scaled_acc = points[i].scaled_acc, .loss = 1 - points[i].scaled_acc,
                                    .count = 32};
    }
    cr_assert_eq(db_add_evals(db, id, rows, 2 * n), 0, "%s", db_errmsg(db));
    cr_assert_eq(db_finish_run(db, id, status, NULL, 1, last_step), 0, "%s", db_errmsg(db));
    return id;
}

/* Training curves of one run: n rows (step, loss, acc). */
static void add_curves(sb_db *db, int64_t run_id, const int64_t *steps, const double *loss, const double *acc, int n)
{
    db_curve_row rows[8];
    for (int i = 0; i < n; i++)
        rows[i] = (db_curve_row){.step = steps[i], .loss = loss[i], .acc = acc[i], .lr = 1e-3, .grad_norm = 1,
                                 .tokens_per_s = 1000};
    cr_assert_eq(db_add_curves(db, run_id, rows, n), 0, "%s", db_errmsg(db));
}

/* model.pos varies with the mixer only (mamba rope, deltanet none), so it
 * must not show in labels; model.eigen varies within deltanet, so it must. */
#define PARITY_CONFIG(mixer, eigen, pos, seed)                                                              \
    "{\"experiment\":\"parity-eigen\",\"model\":{" eigen "\"layers\":2,\"mixer\":\"" mixer "\",\"pos\":\"" pos \
    "\"},\"seed\":" #seed ",\"task\":{\"name\":\"parity\",\"train_len\":[3,40]}}"

/* parity-eigen / parity: deltanet eigen=signed (2 done seeds + 1 failed),
 * deltanet eigen=positive (2 seeds), mamba (no eigen key, 1 seed);
 * count-mod3 / mod_count: one lstm run. Curves: the signed runs (seed 0
 * at steps 10, 20, 30; seed 1 at 10, 20; the failed one at 10) and mamba. */
static void make_db(void)
{
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    int64_t s0 = add_run(db, "s0", "parity-eigen", "parity", "deltanet", 0,
                         PARITY_CONFIG("deltanet", "\"eigen\":\"signed\",", "none", 0), "done", 200,
                         (point[]){{40, 0.9}, {64, 0.5}}, 2);
    int64_t s1 = add_run(db, "s1", "parity-eigen", "parity", "deltanet", 1,
                         PARITY_CONFIG("deltanet", "\"eigen\":\"signed\",", "none", 1), "done", 200,
                         (point[]){{40, 0.7}, {64, 0.3}}, 2);
    int64_t s2 = add_run(db, "s2", "parity-eigen", "parity", "deltanet", 2,
                         PARITY_CONFIG("deltanet", "\"eigen\":\"signed\",", "none", 2), "failed", 120,
                         (point[]){{40, 0.0}, {64, 0.0}}, 2);
    add_curves(db, s0, (int64_t[]){10, 20, 30}, (double[]){0.75, 0.5, 0.125}, (double[]){0.5, 0.625, 0.875}, 3);
    add_curves(db, s1, (int64_t[]){10, 20}, (double[]){0.25, 0.25}, (double[]){0.5, 0.75}, 2);
    add_curves(db, s2, (int64_t[]){10}, (double[]){8.0}, (double[]){0.0}, 1);
    add_run(db, "p0", "parity-eigen", "parity", "deltanet", 0,
            PARITY_CONFIG("deltanet", "\"eigen\":\"positive\",", "none", 0), "done", 200, (point[]){{40, 0.1}, {64, 0.0}}, 2);
    add_run(db, "p1", "parity-eigen", "parity", "deltanet", 1,
            PARITY_CONFIG("deltanet", "\"eigen\":\"positive\",", "none", 1), "done", 200, (point[]){{40, 0.2}, {64, 0.05}},
            2);
    int64_t m0 = add_run(db, "m0", "parity-eigen", "parity", "mamba", 0, PARITY_CONFIG("mamba", "", "rope", 0), "done",
                         150, (point[]){{40, 0.6}, {64, 0.334}}, 2);
    add_curves(db, m0, (int64_t[]){10}, (double[]){0.5}, (double[]){0.5}, 1);
    add_run(db, "l0", "count-mod3", "mod_count", "lstm", 0,
            "{\"experiment\":\"count-mod3\",\"model\":{\"mixer\":\"lstm\"},\"seed\":0,"
            "\"task\":{\"modulus\":3,\"name\":\"mod_count\",\"train_len\":[2,16]}}",
            "done", 300, (point[]){{16, 0.5}, {32, 0.25}}, 2);
    db_close(db);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc((size_t)len + 1, 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len) text[0] = '\0';
    fclose(f);
    return text;
}

typedef struct {
    int rc;
    char *out, *err; /* what the command printed on stdout / stderr */
} captured;

/* Runs cmd(argv) in this process with stdout and stderr sent to files. */
static captured run_cmd(int (*cmd)(int, char **), const char **args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++) argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    char out_path[160], err_path[160];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmp_dir);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(out_fd >= 0 && err_fd >= 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    captured c = {.rc = cmd(argc, argv)};
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(out_fd);
    close(err_fd);
    close(saved_out);
    close(saved_err);
    c.out = read_file(out_path);
    c.err = read_file(err_path);
    return c;
}

static void captured_free(captured *c)
{
    free(c->out);
    free(c->err);
}

static void expect_output(const char **args, const char *expected)
{
    make_db();
    captured c = run_cmd(cmd_report, args);
    cr_expect_eq(c.rc, 0, "exit %d; stderr: %s", c.rc, c.err);
    cr_expect_str_eq(c.out, expected, "got:\n%s\nexpected:\n%s", c.out, expected);
    captured_free(&c);
}

Test(report, markdown_default_means_over_seeds_at_last_step)
{
    expect_output((const char *[]){"report", db_path, NULL},
                  "## count-mod3 / mod_count\n\n"
                  "scaled_acc at each run's last eval step, mean over seeds.\n\n"
                  "| group | seeds | n=16 | n=32 |\n"
                  "|:---|---:|---:|---:|\n"
                  "| lstm | 1 | 0.500 | 0.250 |\n"
                  "\n"
                  "## parity-eigen / parity\n\n"
                  "scaled_acc at each run's last eval step, mean over seeds.\n\n"
                  "| group | seeds | n=40 | n=64 |\n"
                  "|:---|---:|---:|---:|\n"
                  "| deltanet eigen=positive | 2 | 0.150 | 0.025 |\n"
                  "| deltanet eigen=signed | 2 | 0.800 | 0.400 |\n"
                  "| mamba | 1 | 0.600 | 0.334 |\n");
}

Test(report, csv_has_one_header_and_the_union_of_columns)
{
    expect_output((const char *[]){"report", db_path, "--format", "csv", NULL},
                  "experiment,task,group,seeds,n=16,n=32,n=40,n=64\n"
                  "count-mod3,mod_count,lstm,1,0.500,0.250,,\n"
                  "parity-eigen,parity,deltanet eigen=positive,2,,,0.150,0.025\n"
                  "parity-eigen,parity,deltanet eigen=signed,2,,,0.800,0.400\n"
                  "parity-eigen,parity,mamba,1,,,0.600,0.334\n");
}

Test(report, latex_booktabs_with_all_runs_and_median)
{
    expect_output((const char *[]){"report", db_path, "--format", "latex", "--all", "--agg", "median", NULL},
                  "% count-mod3 / mod_count: scaled_acc at each run's last eval step, median over seeds\n"
                  "\\begin{tabular}{lrrr}\n"
                  "\\toprule\n"
                  "group & seeds & n=16 & n=32 \\\\\n"
                  "\\midrule\n"
                  "lstm & 1 & 0.500 & 0.250 \\\\\n"
                  "\\bottomrule\n"
                  "\\end{tabular}\n"
                  "\n"
                  "% parity-eigen / parity: scaled_acc at each run's last eval step, median over seeds\n"
                  "\\begin{tabular}{lrrr}\n"
                  "\\toprule\n"
                  "group & seeds & n=40 & n=64 \\\\\n"
                  "\\midrule\n"
                  "deltanet eigen=positive & 2 & 0.150 & 0.025 \\\\\n"
                  "deltanet eigen=signed & 3 & 0.700 & 0.300 \\\\\n"
                  "mamba & 1 & 0.600 & 0.334 \\\\\n"
                  "\\bottomrule\n"
                  "\\end{tabular}\n");
}

Test(report, config_field_rows_with_max)
{
    expect_output((const char *[]){"report", db_path, "--rows", "model.mixer", "--agg", "max", "--format", "csv", NULL},
                  "experiment,task,model.mixer,runs,n=16,n=32,n=40,n=64\n"
                  "count-mod3,mod_count,lstm,1,0.500,0.250,,\n"
                  "parity-eigen,parity,deltanet,4,,,0.900,0.500\n"
                  "parity-eigen,parity,mamba,1,,,0.600,0.334\n");
}

Test(report, task_name_rows_span_tasks_and_average_over_lengths)
{
    /* deltanet on parity: run means 0.7, 0.5, 0.05, 0.125 -> 0.34375 */
    expect_output((const char *[]){"report", db_path, "--rows", "task.name", "--cols", "model.mixer", "--format",
                                   "csv", NULL},
                  "experiment,task,task.name,runs,mixer=deltanet,mixer=lstm,mixer=mamba\n"
                  "count-mod3,,mod_count,1,,0.375,\n"
                  "parity-eigen,,parity,5,0.344,,0.467\n");
}

Test(report, other_metric)
{
    /* token_acc = 0.5 + 0.5 * scaled_acc in the synthetic data */
    expect_output((const char *[]){"report", db_path, "--metric", "token_acc", "--format", "csv", NULL},
                  "experiment,task,group,seeds,n=16,n=32,n=40,n=64\n"
                  "count-mod3,mod_count,lstm,1,0.750,0.625,,\n"
                  "parity-eigen,parity,deltanet eigen=positive,2,,,0.575,0.512\n"
                  "parity-eigen,parity,deltanet eigen=signed,2,,,0.900,0.700\n"
                  "parity-eigen,parity,mamba,1,,,0.800,0.667\n");
}

Test(report, labels_name_fields_by_last_component_unless_ambiguous)
{
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    add_run(db, "a", "lr", "parity", "lstm", 0,
            "{\"eval\":{\"batch\":128},\"model\":{\"mixer\":\"lstm\"},\"seed\":0,"
            "\"train\":{\"batch\":32,\"lr\":0.001,\"steps\":10}}",
            "done", 200, (point[]){{8, 1.0}}, 1);
    add_run(db, "b", "lr", "parity", "lstm", 0,
            "{\"eval\":{\"batch\":256},\"model\":{\"mixer\":\"lstm\"},\"seed\":0,"
            "\"train\":{\"batch\":64,\"lr\":0.01,\"steps\":10}}",
            "done", 200, (point[]){{8, 0.5}}, 1);
    db_close(db);
    captured c = run_cmd(cmd_report, (const char *[]){"report", db_path, "--format", "csv", NULL});
    cr_expect_eq(c.rc, 0, "%s", c.err);
    cr_expect_str_eq(c.out, "experiment,task,group,seeds,n=8\n"
                            "lr,parity,lstm eval.batch=128 train.batch=32 lr=0.001,1,1.000\n"
                            "lr,parity,lstm eval.batch=256 train.batch=64 lr=0.01,1,0.500\n");
    captured_free(&c);
}

Test(report, bad_usage_exits_2)
{
    make_db();
    const char *bad[][8] = {
        {"report", db_path, "--rows", "model.mixer'); DROP TABLE runs; --", NULL},
        {"report", db_path, "--cols", "Model.Mixer", NULL},
        {"report", db_path, "--rows", "model..mixer", NULL},
        {"report", db_path, "--metric", "accuracy", NULL},
        {"report", db_path, "--format", "xml", NULL},
        {"report", db_path, "--agg", "min", NULL},
        {"report", db_path, "--rows", "n", "--cols", "n", NULL},
        {"report", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        captured c = run_cmd(cmd_report, bad[i]);
        cr_expect_eq(c.rc, 2, "case %zu: exit %d", i, c.rc);
        cr_expect(strstr(c.err, "allowed") || strstr(c.err, "must differ") || strstr(c.err, "expected one"),
                  "case %zu: stderr: %s", i, c.err);
        captured_free(&c);
    }
    captured c = run_cmd(cmd_report, (const char *[]){"report", db_path, NULL});
    cr_expect_eq(c.rc, 0, "the runs table survived: %s", c.err);
    captured_free(&c);
}

Test(report, empty_and_missing_databases)
{
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    db_close(db);
    captured c = run_cmd(cmd_report, (const char *[]){"report", db_path, NULL});
    cr_expect_eq(c.rc, 0);
    cr_expect_str_eq(c.out, "");
    cr_expect(strstr(c.err, "holds no done runs (0 in total)") != NULL, "stderr: %s", c.err);
    captured_free(&c);

    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.db", tmp_dir);
    c = run_cmd(cmd_report, (const char *[]){"report", missing, NULL});
    cr_expect_eq(c.rc, 1);
    cr_expect(strstr(c.err, "missing.db: cannot read the database") != NULL, "stderr: %s", c.err);
    cr_expect_neq(access(missing, F_OK), 0, "report must not create a database");
    captured_free(&c);
}


/* zoo / mqar: attention and mamba at two learning rates (mamba one seed):
 *   attention lr=0.001  n=64: 0.875 0.625   n=128: 0.25 0.25
 *   attention lr=0.01   n=64: 0.5   0.5     n=128: 0.75 0.25
 *   mamba     lr=0.001  n=64: 0.25          n=128: 0.25
 *   mamba     lr=0.01   n=64: 0.5           n=128: 0
 * (dyadic, so every mean prints exactly). Curves at step 10: loss 0.5 and
 * 0.25 (attention 0.001), 1 (attention 0.01), 2 (mamba 0.001), 0.125
 * (mamba 0.01); accuracy 0.5 everywhere. */
#define ZOO_CONFIG(mixer, lr, seed)                                                                         \
    "{\"experiment\":\"zoo\",\"model\":{\"d_model\":64,\"mixer\":\"" mixer "\"},\"seed\":" #seed           \
    ",\"task\":{\"name\":\"mqar\",\"train_len\":[64,64]},\"train\":{\"lr\":" lr "}}"

static void make_zoo_db(void)
{
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    static const struct {
        const char *hash, *mixer, *config;
        int seed;
        double at64, at128, loss;
    } runs[] = {
        {"a1s0", "attention", ZOO_CONFIG("attention", "0.001", 0), 0, 0.875, 0.25, 0.5},
        {"a1s1", "attention", ZOO_CONFIG("attention", "0.001", 1), 1, 0.625, 0.25, 0.25},
        {"a2s0", "attention", ZOO_CONFIG("attention", "0.01", 0), 0, 0.5, 0.75, 1.0},
        {"a2s1", "attention", ZOO_CONFIG("attention", "0.01", 1), 1, 0.5, 0.25, 1.0},
        {"m1s0", "mamba", ZOO_CONFIG("mamba", "0.001", 0), 0, 0.25, 0.25, 2.0},
        {"m2s0", "mamba", ZOO_CONFIG("mamba", "0.01", 0), 0, 0.5, 0.0, 0.125},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        int64_t id = add_run(db, runs[i].hash, "zoo", "mqar", runs[i].mixer, runs[i].seed, runs[i].config, "done", 200,
                             (point[]){{64, runs[i].at64}, {128, runs[i].at128}}, 2);
        add_curves(db, id, (int64_t[]){10}, (double[]){runs[i].loss}, (double[]){0.5}, 1);
    }
    db_close(db);
}

/* suite: two tasks whose task fields differ (train_len, modulus), which
 * must not split the architectures:
 *   parity    lstm seeds 0, 1  n=16: 1 0.75  n=32: 0.5 0.25   deltanet  n=16: 0.25  n=32: 0.125
 *   mod_count lstm             n=16: 0.5     n=32: 0.25       (no deltanet run) */
static void make_suite_db(void)
{
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
#define SUITE_PARITY(mixer, seed)                                                                  \
    "{\"experiment\":\"suite\",\"model\":{\"mixer\":\"" mixer "\"},\"seed\":" #seed                \
    ",\"task\":{\"name\":\"parity\",\"train_len\":[2,16]}}"
    add_run(db, "lp0", "suite", "parity", "lstm", 0, SUITE_PARITY("lstm", 0), "done", 200,
            (point[]){{16, 1.0}, {32, 0.5}}, 2);
    add_run(db, "lp1", "suite", "parity", "lstm", 1, SUITE_PARITY("lstm", 1), "done", 200,
            (point[]){{16, 0.75}, {32, 0.25}}, 2);
    add_run(db, "dp0", "suite", "parity", "deltanet", 0, SUITE_PARITY("deltanet", 0), "done", 200,
            (point[]){{16, 0.25}, {32, 0.125}}, 2);
    add_run(db, "lm0", "suite", "mod_count", "lstm", 0,
            "{\"experiment\":\"suite\",\"model\":{\"mixer\":\"lstm\"},\"seed\":0,"
            "\"task\":{\"modulus\":3,\"name\":\"mod_count\",\"train_len\":[2,8]}}",
            "done", 200, (point[]){{16, 0.5}, {32, 0.25}}, 2);
#undef SUITE_PARITY
    db_close(db);
}

/* bench rows: lstm d_model 32 (n=16 twice: the older row, train 10 tok/s,
 * must lose to the newer), deltanet at d_model 32 and 64 (params differ
 * with d_model and must stay out of the labels). */
static void add_bench_rows(void)
{
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    static const struct {
        const char *mixer, *config, *direction;
        int n;
        double tokens_per_s;
    } rows[] = {
        {"lstm", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2}", "train", 16, 10},
        {"lstm", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2}", "train", 16, 1000},
        {"lstm", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2}", "infer", 16, 5000},
        {"lstm", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2}", "train", 32, 900},
        {"lstm", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2}", "infer", 32, 4000},
        {"deltanet", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":2000,\"threads\":2}", "train", 16, 2000},
        {"deltanet", "{\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":2000,\"threads\":2}", "infer", 16, 8000},
        {"deltanet", "{\"d_model\":64,\"heads\":4,\"layers\":2,\"params\":6000,\"threads\":2}", "train", 16, 500},
        {"deltanet", "{\"d_model\":64,\"heads\":4,\"layers\":2,\"params\":6000,\"threads\":2}", "infer", 16, 3000},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        db_bench_row row = {.mixer = rows[i].mixer, .config = rows[i].config, .device = "cpu",
                            .direction = rows[i].direction, .n = rows[i].n, .batch = 8,
                            .tokens_per_s = rows[i].tokens_per_s, .ms = 1};
        cr_assert_eq(db_add_bench(db, &row), 0, "%s", db_errmsg(db));
    }
    db_close(db);
}

static void expect_report(void (*make)(void), const char **args, const char *expected)
{
    make();
    captured c = run_cmd(cmd_report, args);
    cr_expect_eq(c.rc, 0, "exit %d; stderr: %s", c.rc, c.err);
    cr_expect_str_eq(c.out, expected, "got:\n%s\nexpected:\n%s", c.out, expected);
    captured_free(&c);
}

Test(report, range_keeps_only_those_lengths)
{
    /* count-mod3 has no eval at n = 64: its table is left out */
    expect_report(make_db, (const char *[]){"report", db_path, "--range", "64:64", "--format", "csv", NULL},
                  "experiment,task,group,seeds,n=64\n"
                  "parity-eigen,parity,deltanet eigen=positive,2,0.025\n"
                  "parity-eigen,parity,deltanet eigen=signed,2,0.400\n"
                  "parity-eigen,parity,mamba,1,0.334\n");
}

Test(report, where_selects_runs_and_labels_follow)
{
    /* eigen no longer varies among the selected runs, so it leaves the label */
    expect_report(make_db, (const char *[]){"report", db_path, "--where", "model.eigen=signed", "--format", "csv", NULL},
                  "experiment,task,group,seeds,n=40,n=64\n"
                  "parity-eigen,parity,deltanet,2,0.800,0.400\n");
}

Test(report, where_matches_numbers_as_numbers_and_arrays_as_text)
{
    expect_report(make_zoo_db, (const char *[]){"report", db_path, "--where", "train.lr=1e-3", "--where",
                                                "task.train_len=[64,64]", "--format", "csv", NULL},
                  "experiment,task,group,seeds,n=64,n=128\n"
                  "zoo,mqar,attention,2,0.750,0.250\n"
                  "zoo,mqar,mamba,1,0.250,0.250\n");
}

Test(report, labels_show_the_differing_learning_rate)
{
    expect_report(make_zoo_db, (const char *[]){"report", db_path, "--format", "csv", NULL},
                  "experiment,task,group,seeds,n=64,n=128\n"
                  "zoo,mqar,attention lr=0.001,2,0.750,0.250\n"
                  "zoo,mqar,attention lr=0.01,2,0.500,0.500\n"
                  "zoo,mqar,mamba lr=0.001,1,0.250,0.250\n"
                  "zoo,mqar,mamba lr=0.01,1,0.500,0.000\n");
}

Test(report, by_mixer_pools_the_learning_rates)
{
    /* attention n=64: (0.875 + 0.625 + 0.5 + 0.5) / 4; n=128: (0.25 + 0.25 + 0.75 + 0.25) / 4 */
    expect_report(make_zoo_db, (const char *[]){"report", db_path, "--by", "model.mixer", "--format", "csv", NULL},
                  "experiment,task,group,runs,n=64,n=128\n"
                  "zoo,mqar,attention,4,0.625,0.375\n"
                  "zoo,mqar,mamba,2,0.375,0.125\n");
}

Test(report, best_over_takes_the_best_learning_rate_per_length)
{
    /* attention: lr 0.001 at n=64 (0.75 > 0.5), lr 0.01 at n=128 (0.5 > 0.25);
     * mamba: lr 0.01 at n=64, lr 0.001 at n=128 */
    expect_report(make_zoo_db, (const char *[]){"report", db_path, "--best-over", "train.lr", NULL},
                  "## zoo / mqar\n\n"
                  "scaled_acc at each run's last eval step, mean over seeds for the train.lr whose mean is best in each "
                  "cell.\n\n"
                  "| group | runs | n=64 | n=128 |\n"
                  "|:---|---:|---:|---:|\n"
                  "| attention | 4 | 0.750 | 0.500 |\n"
                  "| mamba | 2 | 0.500 | 0.250 |\n");
}

Test(report, best_over_with_max_and_range_in_latex)
{
    /* max over seeds: attention n=128 lr 0.01 has 0.75; range 128:128 only */
    expect_report(make_zoo_db, (const char *[]){"report", db_path, "--best-over", "train.lr", "--agg", "max",
                                                "--range", "128:128", "--format", "latex", NULL},
                  "% zoo / mqar: scaled_acc at each run's last eval step, n in 128..128, max over seeds for the train.lr "
                  "whose max is best in each cell\n"
                  "\\begin{tabular}{lrr}\n"
                  "\\toprule\n"
                  "group & runs & n=128 \\\\\n"
                  "\\midrule\n"
                  "attention & 4 & 0.750 \\\\\n"
                  "mamba & 2 & 0.250 \\\\\n"
                  "\\bottomrule\n"
                  "\\end{tabular}\n");
}

Test(report, loss_best_is_the_smallest)
{
    /* loss = 1 - scaled_acc in the fixture: lr 0.01 at n=128 for attention (0.5 < 0.75) */
    expect_report(make_zoo_db, (const char *[]){"report", db_path, "--best-over", "train.lr", "--metric", "loss",
                                                "--format", "csv", NULL},
                  "experiment,task,group,runs,n=64,n=128\n"
                  "zoo,mqar,attention,4,0.250,0.500\n"
                  "zoo,mqar,mamba,2,0.500,0.750\n");
}

Test(report, task_rows_by_group_columns_match_the_heatmap)
{
    /* each run's mean over n in 32..32, mean over seeds: lstm parity (0.5 + 0.25) / 2 */
    expect_report(make_suite_db, (const char *[]){"report", db_path, "--rows", "task.name", "--cols", "group",
                                                  "--range", "32:32", "--format", "csv", NULL},
                  "experiment,task,task.name,runs,deltanet,lstm\n"
                  "suite,,mod_count,1,,0.250\n"
                  "suite,,parity,3,0.125,0.375\n");
}

Test(report, task_columns_are_headed_by_the_task_name)
{
    expect_report(make_suite_db, (const char *[]){"report", db_path, "--cols", "task.name", "--range", "32:32",
                                                  "--format", "csv", NULL},
                  "experiment,task,group,runs,mod_count,parity\n"
                  "suite,,deltanet,1,,0.125\n"
                  "suite,,lstm,3,0.250,0.375\n");
}

Test(report, selection_errors_exit_2)
{
    make_zoo_db();
    const char *bad[][8] = {
        {"report", db_path, "--where", "task.name') OR 1=1 --=x", NULL},
        {"report", db_path, "--where", "task.name", NULL},
        {"report", db_path, "--by", "model.mixer,model.eigen); DROP TABLE runs; --", NULL},
        {"report", db_path, "--by", "model.mixer,,", NULL},
        {"report", db_path, "--best-over", "$.train.lr", NULL},
        {"report", db_path, "--range", "0:5", NULL},
        {"report", db_path, "--range", "9:3", NULL},
        {"report", db_path, "--range", "64", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        captured c = run_cmd(cmd_report, bad[i]);
        cr_expect_eq(c.rc, 2, "case %zu: exit %d", i, c.rc);
        cr_expect(strstr(c.err, "allowed") != NULL, "case %zu: stderr: %s", i, c.err);
        captured_free(&c);
    }
    captured c = run_cmd(cmd_report, (const char *[]){"report", db_path, "--best-over", "train.lr", "--rows",
                                                      "train.lr", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "must differ") != NULL, "stderr: %s", c.err);
    captured_free(&c);
    c = run_cmd(cmd_report, (const char *[]){"report", db_path, "--by", "model.eign", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "no selected run has the config field 'model.eign'") != NULL, "stderr: %s", c.err);
    captured_free(&c);
}

Test(report, injected_where_value_is_only_a_value)
{
    make_zoo_db();
    captured c = run_cmd(cmd_report, (const char *[]){"report", db_path, "--where", "task.name=mqar' OR '1'='1", NULL});
    cr_expect_eq(c.rc, 0, "%s", c.err);
    cr_expect_str_eq(c.out, "");
    cr_expect(strstr(c.err, "no done runs matching --where task.name=mqar' OR '1'='1; nothing to report") != NULL,
              "stderr: %s", c.err);
    captured_free(&c);
    c = run_cmd(cmd_report, (const char *[]){"report", db_path, "--where", "task.name=mqar", "--format", "csv", NULL});
    cr_expect_eq(c.rc, 0, "%s", c.err);
    cr_expect(strstr(c.out, "zoo,mqar,attention lr=0.001,2,0.750,0.250\n") != NULL, "%s", c.out);
    captured_free(&c);
}

Test(groups, summarise_without_keys)
{
    grp_stats st;
    double v[] = {3, 1, 2};
    cr_assert_eq(groups_summarise(v, NULL, 3, GRP_AGG_MEAN, 0, &st), 0);
    cr_expect(st.value == 2 && st.mean == 2 && st.min == 1 && st.max == 3 && st.count == 3 && st.best == NULL);
    double w[] = {4, 1, 3, 2};
    cr_assert_eq(groups_summarise(w, NULL, 4, GRP_AGG_MEDIAN, 0, &st), 0);
    cr_expect(st.value == 2.5, "median %g", st.value);
    cr_assert_eq(groups_summarise(w, NULL, 4, GRP_AGG_MAX, 0, &st), 0);
    cr_expect(st.value == 4, "max %g", st.value);
}

Test(groups, summarise_picks_the_best_key)
{
    grp_stats st;
    const char *keys[] = {"0.01", "0.001", "0.01", "0.001"};
    double v[] = {0.5, 0.875, 0.75, 0.125}; /* 0.01: mean 0.625; 0.001: mean 0.5 */
    cr_assert_eq(groups_summarise(v, keys, 4, GRP_AGG_MEAN, 0, &st), 0);
    cr_expect_str_eq(st.best, "0.01");
    cr_expect(st.value == 0.625 && st.min == 0.5 && st.max == 0.75 && st.count == 2, "%g %g %g %d", st.value, st.min,
              st.max, st.count);
    double v2[] = {0.5, 0.875, 0.75, 0.125};
    cr_assert_eq(groups_summarise(v2, keys, 4, GRP_AGG_MEAN, 1, &st), 0);
    cr_expect_str_eq(st.best, "0.001", "lower is better: the smaller mean");
    double v3[] = {0.5, 0.875, 0.75, 0.125}; /* max: 0.001 has 0.875 */
    cr_assert_eq(groups_summarise(v3, keys, 4, GRP_AGG_MAX, 0, &st), 0);
    cr_expect_str_eq(st.best, "0.001");
    cr_expect(st.value == 0.875);
}

Test(groups, summarise_ties_go_to_the_first_key_in_numeric_order)
{
    grp_stats st;
    const char *keys[] = {"1e-2", "0.001", NULL};
    double v[] = {0.5, 0.5, 0.25};
    cr_assert_eq(groups_summarise(v, keys, 3, GRP_AGG_MEAN, 0, &st), 0);
    cr_expect_str_eq(st.best, "0.001");
    const char *absent[] = {NULL, "a"};
    double w[] = {1, 0};
    cr_assert_eq(groups_summarise(w, absent, 2, GRP_AGG_MEAN, 0, &st), 0);
    cr_expect_null(st.best, "a run without the field is its own partition");
    cr_expect(st.value == 1);
}

Test(groups, field_paths_are_validated)
{
    char path[GRP_PATH_LEN];
    cr_expect_eq(groups_field_path("model.mixer", path, sizeof path), 0);
    cr_expect_str_eq(path, "$.model.mixer");
    cr_expect_eq(groups_field_path("train.lr2_x", path, sizeof path), 0);
    const char *bad[] = {"", "Model", "model..mixer", ".a", "a.", "a b", "a'b", "1a", "a.1b", "a[0]", "a-b", "$.a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(groups_field_path(bad[i], path, sizeof path), -1, "'%s' accepted", bad[i]);
}

static int starts_with_bytes(const char *path, const char *magic, size_t len)
{
    char head[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(head, 1, len, f);
    fclose(f);
    return got == len && !memcmp(head, magic, len);
}

#define PNG_MAGIC "\x89PNG\r\n\x1a\n", 8
#define PDF_MAGIC "%PDF", 4
#define SVG_MAGIC "<?xml", 5

/* The text of OUT/name; the test fails when it is missing. */
static char *read_out(const char *out_dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    cr_assert_eq(access(path, F_OK), 0, "%s was not written", path);
    return read_file(path);
}

/* The data lines of the index block of group label (after its # lines). */
static const char *group_rows(const char *text, const char *label)
{
    char line[256];
    snprintf(line, sizeof line, "# group: %s\n", label);
    const char *at = strstr(text, line);
    if (!at) return "";
    at += strlen(line);
    while (*at == '#') at = strchr(at, '\n') + 1;
    return at;
}

/* The colour the .dat text gives group label ("" when absent). */
static void group_color(const char *text, const char *label, char color[8])
{
    char line[256];
    snprintf(line, sizeof line, "# group: %s\n# style: color=", label);
    const char *at = strstr(text, line);
    color[0] = '\0';
    if (at) snprintf(color, 8, "%.7s", at + strlen(line));
}

static void expect_rows(const char *text, const char *label, const char *rows)
{
    const char *at = group_rows(text, label);
    cr_expect(!strncmp(at, rows, strlen(rows)), "group %s: expected\n%s\ngot:\n%.200s\nin:\n%s", label, rows, at, text);
}

Test(plot, lengthgen_png_and_dat_files)
{
    make_db();
    char out_dir[160], png[200], dat[200], other_png[200];
    snprintf(out_dir, sizeof out_dir, "%s/figs/nested", tmp_dir);
    snprintf(png, sizeof png, "%s/parity-eigen_parity_lengthgen.png", out_dir);
    snprintf(dat, sizeof dat, "%s/parity-eigen_parity_lengthgen.dat", out_dir);
    snprintf(other_png, sizeof other_png, "%s/count-mod3_mod_count_lengthgen.png", out_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, NULL});
    cr_assert_eq(c.rc, 0, "exit %d; stderr: %s", c.rc, c.err);
    char expected_out[512];
    snprintf(expected_out, sizeof expected_out, "%s\n%s\n", other_png, png);
    cr_expect_str_eq(c.out, expected_out);
    cr_expect(starts_with_bytes(png, PNG_MAGIC), "%s is not a PNG", png);
    cr_expect(starts_with_bytes(other_png, PNG_MAGIC), "%s is not a PNG", other_png);
    char *text = read_file(dat);
    /* groups in label order, each: n mean min max seeds at the last eval step */
    expect_rows(text, "deltanet eigen=positive", "40 0.15 0.1 0.2 2\n64 0.025 0 0.05 2\n\n\n# group: ");
    expect_rows(text, "deltanet eigen=signed", "40 0.8 0.7 0.9 2\n64 0.4 0.3 0.5 2\n\n\n# group: mamba\n");
    expect_rows(text, "mamba", "40 0.6 0.6 0.6 1\n64 0.334 0.334 0.334 1\n\n\n");
    cr_expect(strstr(text, "# group: deltanet eigen=positive") < strstr(text, "# group: deltanet eigen=signed"));
    cr_expect(strstr(text, "# replot: gnuplot -e ") != NULL, "%s:\n%s", dat, text);
    /* the replot line is shell-quoted: gnuplot's 'x' reads '\''x'\'' */
    cr_expect(strstr(text, "labels[2]='\\''deltanet eigen=signed'\\''") != NULL, "labels passed: %s", text);
    cr_expect(strstr(text, "train_lo=3; train_hi=40") != NULL, "training range: %s", text);
    free(text);
    captured_free(&c);
}

Test(plot, all_includes_failed_runs_and_pdf)
{
    make_db();
    char out_dir[160], pdf[200], dat[200];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    snprintf(pdf, sizeof pdf, "%s/parity-eigen_parity_lengthgen.pdf", out_dir);
    snprintf(dat, sizeof dat, "%s/parity-eigen_parity_lengthgen.dat", out_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--format", "pdf", "--all", NULL});
    cr_assert_eq(c.rc, 0, "exit %d; stderr: %s", c.rc, c.err);
    cr_expect(starts_with_bytes(pdf, PDF_MAGIC), "%s is not a PDF", pdf);
    char *text = read_file(dat);
    expect_rows(text, "deltanet eigen=signed", "40 0.533333 0 0.9 3\n");
    free(text);
    captured_free(&c);
}

Test(plot, default_out_dir_is_named_after_the_db)
{
    make_db();
    char plots[PATH_MAX];
    if (!getenv("STATEBENCH_PLOTS")) { /* keep finding the templates after chdir */
        cr_assert_not_null(realpath("plots", plots), "run the tests from the repository root");
        setenv("STATEBENCH_PLOTS", plots, 1);
    }
    cr_assert_eq(chdir(tmp_dir), 0);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--format", "svg", NULL});
    cr_assert_eq(c.rc, 0, "exit %d; stderr: %s", c.rc, c.err);
    cr_expect_str_eq(c.out, "plots/parity/count-mod3_mod_count_lengthgen.svg\n"
                            "plots/parity/parity-eigen_parity_lengthgen.svg\n");
    cr_expect(starts_with_bytes("plots/parity/parity-eigen_parity_lengthgen.svg", SVG_MAGIC));
    captured_free(&c);
}

Test(plot, lengthgen_best_over_by_and_where_select_the_right_rows)
{
    make_zoo_db();
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--best-over", "train.lr", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    char *text = read_out(out_dir, "zoo_mqar_lengthgen.dat");
    /* last column: the learning rate chosen at that length */
    expect_rows(text, "attention", "64 0.75 0.625 0.875 2 0.001\n128 0.5 0.25 0.75 2 0.01\n\n\n");
    expect_rows(text, "mamba", "64 0.5 0.5 0.5 1 0.01\n128 0.25 0.25 0.25 1 0.001\n\n\n");
    cr_expect(strstr(text, "--best-over train.lr") != NULL, "selection recorded: %s", text);
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--by", "model.mixer", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "zoo_mqar_lengthgen.dat");
    expect_rows(text, "attention", "64 0.625 0.5 0.875 4\n128 0.375 0.25 0.75 4\n\n\n");
    expect_rows(text, "mamba", "64 0.375 0.25 0.5 2\n128 0.125 0 0.25 2\n\n\n");
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--where", "train.lr=0.01", "--where",
                                           "model.mixer=attention", "--by", "model.mixer,train.lr", "--range",
                                           "100:200", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "zoo_mqar_lengthgen.dat");
    expect_rows(text, "attention lr=0.01", "128 0.5 0.25 0.75 2\n\n\n");
    cr_expect(strstr(text, "# group: mamba") == NULL && strstr(text, "lr=0.001") == NULL, "%s", text);
    free(text);
    captured_free(&c);
}

/* --x FIELD: one point per run at (its FIELD, its mean over the eval lengths
 * in --range), then summarised per group like lengthgen; no training band. */
Test(plot, lengthgen_against_a_config_field)
{
    make_zoo_db();
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--x", "model.d_model",
                                                    "--best-over", "train.lr", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    char *text = read_out(out_dir, "zoo_mqar_vs_d_model.dat");
    /* attention: lr 0.001 runs average (0.875+0.25)/2 and (0.625+0.25)/2, lr 0.01 ones 0.625 and 0.375: a tie, the first lr */
    expect_rows(text, "attention", "64 0.5 0.4375 0.5625 2 0.001\n\n\n");
    expect_rows(text, "mamba", "64 0.25 0.25 0.25 1 0.001\n\n\n");
    cr_expect(strstr(text, "train_hi=0") != NULL, "no training band: %s", text);
    cr_expect(strstr(text, "xlabel_text='\\''model.d_model'\\''") != NULL, "x label: %s", text);
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--x", "model.d_model", "--best-over",
                                           "train.lr", "--range", "64:64", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "zoo_mqar_vs_d_model.dat");
    expect_rows(text, "attention", "64 0.75 0.625 0.875 2 0.001\n\n\n");
    free(text);
    captured_free(&c);

    make_db(); /* layers 2 in the parity runs; the mod_count run has none and is left out */
    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--x", "model.layers", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "parity-eigen_parity_vs_layers.dat");
    expect_rows(text, "deltanet eigen=signed", "2 0.6 0.5 0.7 2\n\n\n");
    expect_rows(text, "mamba", "2 0.467 0.467 0.467 1\n\n\n");
    free(text);
    cr_expect(strstr(c.err, "count-mod3 / mod_count: no rows to draw") != NULL, "stderr: %s", c.err);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--x", "model.heads", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "--x: no selected run has the config field 'model.heads'") != NULL, "%s", c.err);
    captured_free(&c);
    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "heatmap", "--x", "model.layers", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "--x: applies to --kind lengthgen only") != NULL, "%s", c.err);
    captured_free(&c);
}

Test(plot, heatmap_tasks_by_architecture_with_missing_cells)
{
    make_suite_db();
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "heatmap", "--out", out_dir, NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    char png[200];
    snprintf(png, sizeof png, "%s/suite_heatmap.png", out_dir);
    cr_expect_str_eq(c.out, strcat(strcpy((char[256]){0}, png), "\n"));
    cr_expect(starts_with_bytes(png, PNG_MAGIC), "%s is not a PNG", png);
    char *text = read_out(out_dir, "suite_heatmap.dat");
    /* rows: mod_count 0, parity 1; columns: deltanet 0, lstm 1 (task fields
     * differ between the tasks and must not split lstm in two) */
    cr_expect(strstr(text, "# rows (tasks): 0=mod_count 1=parity\n# columns (groups): 0=deltanet; 1=lstm;\n") != NULL,
              "%s", text);
    cr_expect(strstr(text, "\n1 0 0.375 1\n0 1 0.1875 1\n1 1 0.625 2\n\n\n# missing cells: col row\n0 0\n") != NULL,
              "%s", text);
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "heatmap", "--out", out_dir, "--range", "32:32",
                                           "--format", "svg", "--where", "task.name=parity", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    snprintf(png, sizeof png, "%s/suite_heatmap.svg", out_dir);
    cr_expect(starts_with_bytes(png, SVG_MAGIC), "%s is not an SVG", png);
    text = read_out(out_dir, "suite_heatmap.dat");
    cr_expect(strstr(text, "# rows (tasks): 0=parity\n") != NULL, "%s", text);
    cr_expect(strstr(text, "\n0 0 0.125 1\n1 0 0.375 2\n\n\n# missing cells: col row\n\n") != NULL, "%s", text);
    cr_expect(strstr(text, "mean over n in 32..32") != NULL, "%s", text);
    free(text);
    captured_free(&c);
}

Test(plot, heatmap_best_over_per_cell_and_pdf)
{
    make_zoo_db();
    char out_dir[160], pdf[200];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "heatmap", "--out", out_dir, "--range",
                                                    "64:64", "--best-over", "train.lr", "--format", "pdf", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    snprintf(pdf, sizeof pdf, "%s/zoo_heatmap.pdf", out_dir);
    cr_expect(starts_with_bytes(pdf, PDF_MAGIC), "%s is not a PDF", pdf);
    char *text = read_out(out_dir, "zoo_heatmap.dat");
    cr_expect(strstr(text, "\n0 0 0.75 2 0.001\n1 0 0.5 1 0.01\n") != NULL, "%s", text);
    free(text);
    captured_free(&c);
}

Test(plot, curves_mean_over_seeds_per_step)
{
    make_db();
    char out_dir[160], pdf[200];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    snprintf(pdf, sizeof pdf, "%s/parity-eigen_parity_curves.pdf", out_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "curves", "--out", out_dir, "--format",
                                                    "pdf", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect_str_eq(c.out, strcat(strcpy((char[256]){0}, pdf), "\n"), "count-mod3 has no curves: no figure");
    cr_expect(strstr(c.err, "count-mod3 / mod_count: no rows to draw") != NULL, "stderr: %s", c.err);
    cr_expect(starts_with_bytes(pdf, PDF_MAGIC), "%s is not a PDF", pdf);
    char *text = read_out(out_dir, "parity-eigen_parity_curves.dat");
    /* step loss acc runs: the failed seed is left out, the positive runs have no curves */
    expect_rows(text, "deltanet eigen=signed", "10 0.5 0.5 2\n20 0.375 0.6875 2\n30 0.125 0.875 1\n\n\n");
    expect_rows(text, "mamba", "10 0.5 0.5 1\n\n\n");
    cr_expect(strstr(text, "eigen=positive") == NULL, "%s", text);
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "curves", "--out", out_dir, "--all", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "parity-eigen_parity_curves.dat");
    expect_rows(text, "deltanet eigen=signed", "10 3 0.333333 3\n");
    free(text);
    captured_free(&c);
}

Test(plot, curves_best_over_learning_rate)
{
    make_zoo_db();
    char out_dir[160], png[200];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "curves", "--out", out_dir, "--range",
                                                    "64:64", "--best-over", "train.lr", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    snprintf(png, sizeof png, "%s/zoo_mqar_curves.png", out_dir);
    cr_expect(starts_with_bytes(png, PNG_MAGIC), "%s is not a PNG", png);
    char *text = read_out(out_dir, "zoo_mqar_curves.dat");
    /* judged at n=64: attention lr 0.001 (0.75 > 0.5), mamba lr 0.01 (0.5 > 0.25) */
    expect_rows(text, "attention", "10 0.375 0.5 2\n\n\n");
    expect_rows(text, "mamba", "10 0.125 0.5 1\n\n\n");
    cr_expect(strstr(text, "# group: attention\n# style: color=") != NULL, "%s", text);
    cr_expect(strstr(text, "# best train.lr: 0.001\n10 0.375") != NULL &&
                  strstr(text, "# best train.lr: 0.01\n10 0.125") != NULL,
              "%s", text);
    free(text);
    captured_free(&c);
}

Test(plot, throughput_train_and_infer_from_the_bench_table)
{
    make_db();
    add_bench_rows();
    char out_dir[160], svg[200];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    snprintf(svg, sizeof svg, "%s/throughput.svg", out_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "throughput", "--out", out_dir,
                                                    "--format", "svg", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect_str_eq(c.out, strcat(strcpy((char[256]){0}, svg), "\n"));
    cr_expect(starts_with_bytes(svg, SVG_MAGIC), "%s is not an SVG", svg);
    char *text = read_out(out_dir, "throughput.dat");
    /* train blocks, then infer blocks; the newest lstm row at n=16 wins;
     * d_model varies within deltanet, so every label shows it */
    const char *expected =
        "# train\n# group: deltanet d_model=32\n# style: color=#0072B2 point=7 dash=1\n16 2000 1\n\n\n"
        "# train\n# group: deltanet d_model=64\n# style: color=#0072B2 point=7 dash=2\n16 500 1\n\n\n"
        "# train\n# group: lstm d_model=32\n# style: color=#009E73 point=9 dash=1\n16 1000 1\n32 900 1\n\n\n"
        "# infer\n# group: deltanet d_model=32\n# style: color=#0072B2 point=7 dash=1\n16 8000 1\n\n\n"
        "# infer\n# group: deltanet d_model=64\n# style: color=#0072B2 point=7 dash=2\n16 3000 1\n\n\n"
        "# infer\n# group: lstm d_model=32\n# style: color=#009E73 point=9 dash=1\n16 5000 1\n32 4000 1\n\n\n";
    cr_expect(strstr(text, expected) != NULL, "%s", text);
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "throughput", "--out", out_dir, "--by", "mixer",
                                           "--where", "device=cpu", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "throughput.dat");
    expect_rows(text, "deltanet", "16 1250 2\n\n\n"); /* (2000 + 500) / 2 over the two widths */
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "throughput", "--out", out_dir, "--where",
                                           "d_model=64", "--range", "1:16", NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    text = read_out(out_dir, "throughput.dat");
    cr_expect(strstr(text, "# train\n# group: deltanet\n") != NULL && strstr(text, "lstm") == NULL, "%s", text);
    free(text);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "throughput", "--metric", "loss", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "does not apply to --kind throughput") != NULL, "stderr: %s", c.err);
    captured_free(&c);
}

Test(plot, a_mixer_has_one_colour_in_every_figure)
{
    make_db();
    add_bench_rows();
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    const char *kinds[] = {"lengthgen", "throughput"};
    for (int i = 0; i < 2; i++) {
        captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", kinds[i], "--out", out_dir, NULL});
        cr_assert_eq(c.rc, 0, "%s: %s", kinds[i], c.err);
        captured_free(&c);
    }
    char *parity = read_out(out_dir, "parity-eigen_parity_lengthgen.dat");
    char *count = read_out(out_dir, "count-mod3_mod_count_lengthgen.dat");
    char *bench = read_out(out_dir, "throughput.dat");
    char lstm_a[8], lstm_b[8], delta_a[8], delta_b[8], mamba[8];
    group_color(count, "lstm", lstm_a);
    group_color(bench, "lstm d_model=32", lstm_b);
    group_color(parity, "deltanet eigen=signed", delta_a);
    group_color(bench, "deltanet d_model=64", delta_b);
    group_color(parity, "mamba", mamba);
    cr_expect(lstm_a[0] == '#' && !strcmp(lstm_a, lstm_b), "lstm: %s in lengthgen, %s in throughput", lstm_a, lstm_b);
    cr_expect(delta_a[0] == '#' && !strcmp(delta_a, delta_b), "deltanet: %s vs %s", delta_a, delta_b);
    cr_expect(strcmp(delta_a, mamba) && strcmp(delta_a, lstm_a) && strcmp(mamba, lstm_a),
              "different mixers, different colours: %s %s %s", delta_a, mamba, lstm_a);
    free(parity);
    free(count);
    free(bench);
}

Test(plot, injection_in_where_and_by_is_refused)
{
    make_db();
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    const char *bad[][8] = {
        {"plot", db_path, "--where", "model.mixer=x' OR 1=1; --", "--where", "task.name'); DROP TABLE runs; --=1", NULL},
        {"plot", db_path, "--by", "model.mixer) FROM runs; DROP TABLE runs; --", NULL},
        {"plot", db_path, "--by", "model.mixer,$.seed", NULL},
        {"plot", db_path, "--best-over", "train.lr' --", NULL},
        {"plot", db_path, "--kind", "heatmap", "--where", "=parity", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        captured c = run_cmd(cmd_plot, bad[i]);
        cr_expect_eq(c.rc, 2, "case %zu: exit %d", i, c.rc);
        cr_expect(strstr(c.err, "is not allowed; allowed:") != NULL, "case %zu: stderr: %s", i, c.err);
        captured_free(&c);
    }
    /* a quote in a value is only a value: it selects nothing and harms nothing */
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, "--where",
                                                    "task.name=parity' OR '1'='1", NULL});
    cr_expect_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect_str_eq(c.out, "");
    cr_expect(strstr(c.err, "no done runs matching --where task.name=parity' OR '1'='1; nothing to plot") != NULL,
              "stderr: %s", c.err);
    cr_expect_neq(access(out_dir, F_OK), 0, "an empty selection writes no file");
    captured_free(&c);
    c = run_cmd(cmd_report, (const char *[]){"report", db_path, "--format", "csv", NULL});
    cr_expect(strstr(c.out, "parity-eigen,parity,mamba,1,,,0.600,0.334\n") != NULL, "runs intact: %s", c.out);
    captured_free(&c);
}

Test(plot, empty_selections_say_so_and_write_nothing)
{
    make_db();
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    const char *kinds[] = {"lengthgen", "heatmap", "curves"};
    for (int i = 0; i < 3; i++) {
        captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", kinds[i], "--out", out_dir,
                                                        "--where", "task.name=nothing", NULL});
        cr_expect_eq(c.rc, 0, "%s: %s", kinds[i], c.err);
        cr_expect(strstr(c.err, "no done runs matching --where task.name=nothing; nothing to plot") != NULL,
                  "%s: stderr: %s", kinds[i], c.err);
        captured_free(&c);
    }
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "lengthgen", "--out", out_dir,
                                                    "--range", "1000:2000", NULL});
    cr_expect_eq(c.rc, 0, "%s", c.err);
    cr_expect(strstr(c.err, "parity-eigen / parity: no rows to draw (no evals in --range); no figure") != NULL,
              "stderr: %s", c.err);
    cr_expect(strstr(c.err, "nothing to plot") != NULL, "stderr: %s", c.err);
    captured_free(&c);
    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "throughput", "--out", out_dir, NULL});
    cr_expect_eq(c.rc, 0, "%s", c.err);
    cr_expect(strstr(c.err, "no bench rows (`statebench bench --db") != NULL, "stderr: %s", c.err);
    captured_free(&c);
    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--by", "model.eign", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "--by: no selected run has the config field 'model.eign'") != NULL, "stderr: %s", c.err);
    captured_free(&c);
    cr_expect_neq(access(out_dir, F_OK), 0, "nothing drawn, no folder made");
}

Test(plot, missing_gnuplot_is_a_clear_error)
{
    make_db();
    char empty_bin[160], out_dir[160], err_path[200];
    snprintf(empty_bin, sizeof empty_bin, "%s/emptybin", tmp_dir);
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/child_stderr.txt", tmp_dir);
    cr_assert_eq(mkdir(empty_bin, 0755), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        setenv("PATH", empty_bin, 1);
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        char *argv[] = {"plot", db_path, "--out", out_dir, "--kind", "heatmap", NULL};
        int rc = cmd_plot(6, argv);
        fflush(NULL);
        _exit(rc);
    }
    int status = 0;
    waitpid(child, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    char *text = read_file(err_path);
    cr_expect(strstr(text, "gnuplot not found on PATH") != NULL, "stderr: %s", text);
    free(text);
}

Test(plot, gnuplot_failure_shows_its_output)
{
    make_db();
    char templates[160], template_path[200], style_path[200], out_dir[160], png[200];
    snprintf(templates, sizeof templates, "%s/templates", tmp_dir);
    snprintf(template_path, sizeof template_path, "%s/lengthgen.gp", templates);
    snprintf(style_path, sizeof style_path, "%s/style.gp", templates);
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    snprintf(png, sizeof png, "%s/parity-eigen_parity_lengthgen.png", out_dir);
    cr_assert_eq(mkdir(templates, 0755), 0);
    FILE *f = fopen(template_path, "w");
    cr_assert_not_null(f);
    fputs("set terminal pngcairo\nset output outfile\nplot datafile using 1:2 with no_such_style\n", f);
    fclose(f);
    f = fopen(style_path, "w");
    cr_assert_not_null(f);
    fclose(f);
    setenv("STATEBENCH_PLOTS", templates, 1);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--out", out_dir, NULL});
    cr_expect_eq(c.rc, 1);
    cr_expect(strstr(c.err, "gnuplot failed (exit status") != NULL, "stderr: %s", c.err);
    cr_expect(strstr(c.err, "no_such_style") != NULL, "gnuplot's own message is shown: %s", c.err);
    cr_expect_neq(access(png, F_OK), 0, "a failed gnuplot leaves no figure");
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "heatmap", NULL});
    cr_expect_eq(c.rc, 1);
    cr_expect(strstr(c.err, "has no template heatmap.gp") != NULL, "stderr: %s", c.err);
    captured_free(&c);

    c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "pie", NULL});
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "allowed: lengthgen, heatmap, curves, throughput") != NULL, "stderr: %s", c.err);
    captured_free(&c);
}

/* `bench` records its measurements (the ceiling, MFU, load, graphs) in each
 * row's config: rows that differ only in those are the same configuration
 * measured again, one group, never labelled by a measurement. */
Test(plot, throughput_groups_ignore_the_benchs_measurements)
{
    make_db();
    char err[512];
    sb_db *db = db_open(db_path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    static const char *const configs[] = {
        "{\"kind\":\"step\",\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2,"
        "\"gemm_gflops\":140.5,\"mfu\":0.4012,\"mfu_peak\":150.0,\"load\":0.50,\"graphs\":0}",
        "{\"kind\":\"step\",\"d_model\":32,\"heads\":4,\"layers\":2,\"params\":1000,\"threads\":2,"
        "\"gemm_gflops\":88.1,\"mfu\":0.3511,\"mfu_peak\":171.2,\"load\":1.75,\"graphs\":0}"};
    const double tps[] = {1000, 3000};
    for (int i = 0; i < 2; i++) {
        db_bench_row row = {.mixer = "lstm", .config = configs[i], .device = "cpu", .direction = "train",
                            .n = 16, .batch = 8, .tokens_per_s = tps[i], .ms = 1};
        cr_assert_eq(db_add_bench(db, &row), 0, "%s", db_errmsg(db));
    }
    db_close(db);
    char out_dir[160];
    snprintf(out_dir, sizeof out_dir, "%s/figs", tmp_dir);
    captured c = run_cmd(cmd_plot, (const char *[]){"plot", db_path, "--kind", "throughput", "--out", out_dir, NULL});
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    char *text = read_out(out_dir, "throughput.dat");
    cr_expect(strstr(text, "# group: lstm\n") != NULL, "one unlabelled lstm group expected:\n%s", text);
    cr_expect(strstr(text, "mfu") == NULL && strstr(text, "load") == NULL && strstr(text, "gemm") == NULL,
              "a measurement in a label:\n%s", text);
    free(text);
    captured_free(&c);
}
