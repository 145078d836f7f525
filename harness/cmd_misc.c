/* cmd_misc.c: `statebench version`, `statebench status` and the provenance
 * every run records (this file is built with the version and flags defines). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/device.h"
#include "../kernels/device_info.h"
#include "../kernels/ops.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "db.h"
#include "provenance.h"

#ifdef __clang__
#define SB_COMPILER "clang " __clang_version__
#else
#define SB_COMPILER "gcc " __VERSION__
#endif

/* "model name" of /proc/cpuinfo's first processor, or the machine type. */
static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        snprintf(buf, len, "%.*s", (int)strcspn(colon, "\n"), colon);
        break;
    }
    fclose(f);
}

void provenance_collect(db_provenance *p, const char *device)
{
    static char cpu[256], gpu_name[256], gpu_cc[16], gpu_driver[16], cuda_version[16];
    cpu_model(cpu, sizeof cpu);
    *p = (db_provenance){.cpu_model = cpu, .threads = ops_get_threads(), .compiler = SB_COMPILER,
                         .cflags = SB_CFLAGS, .blas = ops_blas_info(), .git_rev = SB_GIT_REV,
                         /* every path is: the CPU backend's reductions and gemm tiling do not
                            depend on the thread count (kernels/cpu); the CUDA kernels reduce in
                            a fixed order, without float atomics, and cuBLAS runs on one stream,
                            which it makes bit-reproducible on one GPU model and toolkit
                            (docs/SCALE.md, "Determinism") */
                         .deterministic = 1};
    cuda_device_info info;
    if (!strcmp(device, "cuda") && cuda_device_query(0, &info) == 0) {
        snprintf(gpu_name, sizeof gpu_name, "%s", info.name);
        snprintf(gpu_cc, sizeof gpu_cc, "%d.%d", info.cc_major, info.cc_minor);
        snprintf(gpu_driver, sizeof gpu_driver, "%d.%d", info.driver_version / 1000, info.driver_version % 1000 / 10);
        snprintf(cuda_version, sizeof cuda_version, "%d.%d", info.runtime_version / 1000,
                 info.runtime_version % 1000 / 10);
        p->gpu_name = gpu_name;
        p->gpu_cc = gpu_cc;
        p->gpu_driver = gpu_driver;
        p->cuda_version = cuda_version;
    }
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: statebench version\n  Prints the version, git revision, backends built, BLAS and devices seen.");
        return EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "statebench version: unexpected argument '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    printf("statebench %s (git %s)\n", SB_VERSION, SB_GIT_REV);
    printf("backends: cpu%s\n", cuda_backend_built() ? ", cuda" : "");
    printf("blas: %s\n", ops_blas_info());
    db_provenance p;
    provenance_collect(&p, "cpu");
    printf("cpu: %s, %d cores, %d threads\n", p.cpu_model, cli_cores(), ops_get_threads());
    printf("compiler: %s\nflags: %s\n", p.compiler, p.cflags);
    char reason[256] = "";
    int n = cuda_device_count(reason, sizeof reason);
    if (n == 0) printf("cuda devices: none (%s)\n", reason);
    for (int i = 0; i < n; i++) {
        char desc[256];
        cuda_device_describe(i, desc, sizeof desc);
        cuda_device_info info;
        if (cuda_device_query(i, &info) == 0)
            printf("cuda device: %s, compute capability %d.%d, driver CUDA %d.%d, runtime CUDA %d.%d\n", desc,
                   info.cc_major, info.cc_minor, info.driver_version / 1000, info.driver_version % 1000 / 10,
                   info.runtime_version / 1000, info.runtime_version % 1000 / 10);
        else
            printf("cuda device: %s\n", desc);
    }
    return EXIT_OK;
}

static const char status_usage[] =
    "usage: statebench status DB [--config CONFIG.yaml [--variant NAME]]\n"
    "  Counts the runs of DB by status (done, running, failed, pending, diverged,\n"
    "  interrupted), then lists every run that is not done: failed, diverged and\n"
    "  interrupted runs with their error message, running runs with their host,\n"
    "  pid and start (a running run whose process on this host is gone is marked\n"
    "  stale: the next `run` takes it over). Reads DB without writing to it.\n"
    "options:\n"
    "  --config CONFIG.yaml  also count the runs of CONFIG's sweep that DB does not\n"
    "                        hold yet as pending\n"
    "  --variant NAME        with --config: the runs of CONFIG's variant NAME\n"
    "  -h, --help            this text\n";

/* Runs of exp whose hash db does not hold; -1 on a read error. */
static int count_missing(sqlite3 *h, const experiment *exp)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, "SELECT 1 FROM runs WHERE hash = ?1", -1, &st, NULL) != SQLITE_OK) return -1;
    int missing = 0;
    for (int i = 0; i < exp->count && missing >= 0; i++) {
        char hash[33];
        spec_hash(&exp->runs[i], hash);
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) missing++;
        else if (rc != SQLITE_ROW) missing = -1;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return missing;
}

/* A running run is stale when its owner was a process of this host that no
 * longer exists (the rule of db_claim_run). */
static int owner_gone(const char *host, int64_t pid)
{
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    return host && !strcmp(host, me) && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Lists the runs that are not done, grouped by status, with their messages. */
static int list_unfinished(sqlite3 *h)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT status, hash, task, mixer, seed, error, host, pid, started_at, steps_done"
                           " FROM runs WHERE status <> 'done' ORDER BY CASE status WHEN 'failed' THEN 0"
                           " WHEN 'diverged' THEN 1 WHEN 'interrupted' THEN 2 WHEN 'running' THEN 3 ELSE 4 END, id",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    char group[16] = "";
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text[10];
        for (int j = 0; j < 10; j++) text[j] = (const char *)sqlite3_column_text(st, j);
        if (strcmp(group, text[0])) {
            snprintf(group, sizeof group, "%s", text[0]);
            printf("%s:\n", group);
        }
        printf("  %s %s seed=%s [%.12s]", text[2] ? text[2] : "?", text[3] ? text[3] : "?", text[4] ? text[4] : "?",
               text[1]);
        if (!strcmp(group, "running")) {
            int64_t pid = sqlite3_column_int64(st, 7);
            printf(" on %s pid %lld since %s%s\n", text[6] ? text[6] : "?", (long long)pid, text[8] ? text[8] : "?",
                   owner_gone(text[6], pid) ? " (stale: the process is gone; the next run takes it over)" : "");
        } else if (!strcmp(group, "pending")) {
            printf("\n");
        } else {
            printf(" after %s steps: %s\n", text[9] ? text[9] : "0", text[5] ? text[5] : "(no message)");
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'}, {"variant", required_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *config = NULL, *variant = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'V': variant = optarg; break;
        case 'h': fputs(status_usage, stdout); return EXIT_OK;
        default: fputs(status_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "statebench status: expected exactly one DB\n%s", status_usage);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    experiment exp = {0};
    char err[1024];
    if (variant && !config) {
        fprintf(stderr, "statebench status: --variant needs --config CONFIG.yaml\n%s", status_usage);
        return EXIT_USAGE;
    }
    if (config && config_load_variant(config, variant, &exp, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "statebench status: %s\n", err);
        return EXIT_USAGE;
    }
    sb_db *db = db_open_readonly(path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "statebench status: %s\n", err);
        experiment_free(&exp);
        return EXIT_RUNTIME;
    }
    sqlite3 *h = db_handle(db);
    int64_t counts[6];
    int rc = db_status_counts(db, counts);
    int missing = rc == 0 && config ? count_missing(h, &exp) : 0;
    if (rc == 0 && missing >= 0) {
        int64_t total = 0;
        for (int i = 0; i < 6; i++) total += counts[i];
        printf("%s: %lld runs recorded", path, (long long)total);
        if (config) printf(", %d of the %d runs of %s not recorded yet", missing, exp.count, config);
        printf("\n");
        static const int order[6] = {2, 1, 3, 0, 4, 5}; /* done, running, failed, pending, diverged, interrupted */
        static const char *const names[6] = {"pending", "running", "done", "failed", "diverged", "interrupted"};
        for (int k = 0; k < 6; k++) {
            int i = order[k];
            printf("  %-12s %lld\n", names[i], (long long)(counts[i] + (i == 0 ? missing : 0)));
        }
        rc = list_unfinished(h);
    }
    if (rc != 0 || missing < 0) {
        fprintf(stderr, "statebench status: cannot read %s: %s\n", path, sqlite3_errmsg(h));
        rc = -1;
    }
    db_close(db);
    experiment_free(&exp);
    return rc == 0 ? EXIT_OK : EXIT_RUNTIME;
}
