/* cmd_slurm.c: `statebench slurm`: writes an sbatch script that runs a sweep
 * as a SLURM job array (task I runs shard I/N into its own database), a merge
 * job that combines the shards once every task succeeded, and a helper that
 * submits both with the afterok dependency. */
#include "cmd_slurm.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"

static const char slurm_usage[] =
    "usage: statebench slurm CONFIG.yaml --array N [options]\n"
    "  Writes SCRIPT, an sbatch script running CONFIG's sweep as a job array of N\n"
    "  tasks: task I runs `statebench run CONFIG --shard I/N` into its own database\n"
    "  on node-local disk (SQLite is not safe on network filesystems), then copies\n"
    "  it to DB_DIR/shard_I.db, also after a failure or at the time limit;\n"
    "  SCRIPT.merge.sbatch, a job merging the N shards into the final database;\n"
    "  and SCRIPT.submit.sh, which submits the array and then the merge job with\n"
    "  --dependency=afterok on the whole array. A resubmitted task starts from its\n"
    "  shard in DB_DIR and skips the runs it already holds as done.\n"
    "options:\n"
    "  --array N            array tasks (shards), 1..10000 (required)\n"
    "  --partition P        partition of both jobs\n"
    "  --time T             time limit per task (minutes, MM:SS, H:MM:SS, D-H:MM:SS)\n"
    "  --cpus-per-task C    CPUs per task, 1..4096 (each task trains with C threads)\n"
    "  --gpus-per-task G    GPUs per task: a count or TYPE:COUNT\n"
    "  --mem M              memory per node, e.g. 4G, 500M\n"
    "  --out SCRIPT         the array script (default slurm/<experiment>.sbatch)\n"
    "  --db-dir DIR         where the shard databases end up; the merge job reads them\n"
    "                       there (default slurm/<experiment>/shards)\n"
    "  --log-dir DIR        job logs (default slurm/<experiment>/logs)\n"
    "  --db PATH            the merged database (default results/<experiment>.db)\n"
    "  --local-dir DIR      node-local directory each task trains in, expanded on the\n"
    "                       node ('$TMPDIR' and the like work; default $TMPDIR, else /tmp)\n"
    "  --binary PATH        statebench on the nodes (default this binary)\n"
    "  --variant NAME       run CONFIG's variant NAME (experiment NAME/VARIANT; the\n"
    "                       default paths use <experiment>.<variant>)\n"
    "  -h, --help           this text\n";

/* mkdir -p */
static int make_dirs(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return -1;
    int rc = 0;
    for (char *p = copy + 1; rc == 0; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, 0777) != 0 && errno != EEXIST) rc = -1;
        *p = saved;
        if (!saved) break;
    }
    free(copy);
    return rc;
}

/* Absolute form of path; its parent directory must exist. */
static char *absolute(const char *path)
{
    char *full = realpath(path, NULL);
    if (full) return full;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    char *dir_full = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!dir_full) return NULL;
    char *result = NULL;
    if (asprintf(&result, "%s/%s", dir_full, slash ? slash + 1 : path) < 0) result = NULL;
    free(dir_full);
    return result;
}

/* Characters allowed in a value that goes into an #SBATCH line or a path
 * the scripts use unquoted in #SBATCH lines: sbatch cannot quote there. */
static int plain_chars(const char *text, const char *extra)
{
    if (!*text) return 0;
    for (const char *c = text; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr(extra, *c)))
            return 0;
    return 1;
}

/* A time limit (digits, ':' and '-', as in 1-02:30:00) or a memory amount
 * (digits and an optional K, M, G or T): what sbatch reads there. */
static int is_time(const char *v) { return *v >= '0' && *v <= '9' && v[strspn(v, "0123456789:-")] == '\0'; }

static int is_memory(const char *v)
{
    size_t digits = strspn(v, "0123456789");
    return digits > 0 && (v[digits] == '\0' || (strchr("KMGT", v[digits]) && v[digits + 1] == '\0'));
}

static int check_value(const char *option, const char *value, const char *extra, const char *allowed)
{
    int ok = !strcmp(option, "--time") ? is_time(value) : !strcmp(option, "--mem") ? is_memory(value)
                                                                                   : plain_chars(value, extra);
    if (ok) return 0;
    fprintf(stderr, "statebench slurm: %s: '%s' is not allowed; allowed: %s\n", option, value, allowed);
    return -1;
}

/* Writes text into f single-quoted for the shell. */
static void put_quoted(FILE *f, const char *text)
{
    fputc('\'', f);
    for (const char *c = text; *c; c++) {
        if (*c == '\'') fputs("'\\''", f);
        else fputc(*c, f);
    }
    fputc('\'', f);
}

typedef struct {
    const char *partition, *time, *cpus, *gpus, *mem;
    long array;
} slurm_opts;

static void put_sbatch_common(FILE *f, const slurm_opts *o)
{
    if (o->partition) fprintf(f, "#SBATCH --partition=%s\n", o->partition);
    if (o->time) fprintf(f, "#SBATCH --time=%s\n", o->time);
    if (o->mem) fprintf(f, "#SBATCH --mem=%s\n", o->mem);
}

static FILE *open_script(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "statebench slurm: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static int close_script(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "statebench slurm: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return chmod(path, 0755);
}

int cmd_slurm(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"array", required_argument, 0, 'a'},         {"partition", required_argument, 0, 'p'},
        {"time", required_argument, 0, 't'},          {"cpus-per-task", required_argument, 0, 'c'},
        {"gpus-per-task", required_argument, 0, 'g'}, {"mem", required_argument, 0, 'm'},
        {"out", required_argument, 0, 'o'},           {"db-dir", required_argument, 0, 'd'},
        {"log-dir", required_argument, 0, 'l'},       {"db", required_argument, 0, 'f'},
        {"local-dir", required_argument, 0, 'L'},     {"binary", required_argument, 0, 'b'},
        {"variant", required_argument, 0, 'V'},       {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    slurm_opts o = {0};
    const char *out = NULL, *db_dir = NULL, *log_dir = NULL, *final_db = NULL, *local_dir = NULL, *binary = NULL;
    const char *variant = NULL;
    long cpus = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (cli_parse_long("slurm", "--array", optarg, 1, 10000, &o.array)) return EXIT_USAGE;
            break;
        case 'p':
            if (check_value("--partition", optarg, "_.,-", "letters, digits, '_', '.', ',', '-'")) return EXIT_USAGE;
            o.partition = optarg;
            break;
        case 't':
            if (check_value("--time", optarg, "", "minutes, MM:SS, H:MM:SS, D-H, D-H:MM, D-H:MM:SS")) return EXIT_USAGE;
            o.time = optarg;
            break;
        case 'c':
            if (cli_parse_long("slurm", "--cpus-per-task", optarg, 1, 4096, &cpus)) return EXIT_USAGE;
            o.cpus = optarg;
            break;
        case 'g':
            if (check_value("--gpus-per-task", optarg, "_:-", "a count or TYPE:COUNT")) return EXIT_USAGE;
            o.gpus = optarg;
            break;
        case 'm':
            if (check_value("--mem", optarg, "", "digits with an optional K, M, G or T, e.g. 4G")) return EXIT_USAGE;
            o.mem = optarg;
            break;
        case 'o': out = optarg; break;
        case 'd': db_dir = optarg; break;
        case 'l': log_dir = optarg; break;
        case 'f': final_db = optarg; break;
        case 'L': local_dir = optarg; break;
        case 'b': binary = optarg; break;
        case 'V':
            if (check_value("--variant", optarg, "_.-", "letters, digits, '_', '.', '-'")) return EXIT_USAGE;
            variant = optarg;
            break;
        case 'h': fputs(slurm_usage, stdout); return EXIT_OK;
        default: fputs(slurm_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "statebench slurm: expected exactly one CONFIG.yaml\n%s", slurm_usage);
        return EXIT_USAGE;
    }
    if (!o.array) {
        fprintf(stderr, "statebench slurm: --array N is required (the number of array tasks, 1..10000)\n");
        return EXIT_USAGE;
    }
    experiment exp;
    char err[1024];
    if (config_load_variant(argv[optind], variant, &exp, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "statebench slurm: %s\n", err);
        return EXIT_USAGE;
    }
    if (o.array > exp.count)
        fprintf(stderr, "statebench slurm: note: --array %ld is more than the %d runs of %s: %ld tasks get no run\n",
                o.array, exp.count, exp.name, o.array - exp.count);
    char *defaults[4] = {NULL, NULL, NULL, NULL}, stem[512];
    experiment_file_stem(&exp, stem, sizeof stem);
    if (!out && asprintf(&defaults[0], "slurm/%s.sbatch", stem) >= 0) out = defaults[0];
    if (!db_dir && asprintf(&defaults[1], "slurm/%s/shards", stem) >= 0) db_dir = defaults[1];
    if (!log_dir && asprintf(&defaults[2], "slurm/%s/logs", stem) >= 0) log_dir = defaults[2];
    if (!final_db && asprintf(&defaults[3], "results/%s.db", stem) >= 0) final_db = defaults[3];
    char *paths[6] = {NULL}; /* config, db_dir, log_dir, final, binary, script */
    char *base = NULL, *merge_path = NULL, *submit_path = NULL;
    int rc = EXIT_RUNTIME;
    if (!out || !db_dir || !log_dir || !final_db) goto done;
    if (local_dir && strpbrk(local_dir, "\"`\\\n")) {
        fprintf(stderr, "statebench slurm: --local-dir: '%s' may not hold '\"', '`', '\\' or a newline\n", local_dir);
        rc = EXIT_USAGE;
        goto done;
    }
    const char *parents[2] = {out, final_db};
    for (int i = 0; i < 2; i++) {
        const char *slash = strrchr(parents[i], '/');
        char *dir = slash ? strndup(parents[i], (size_t)(slash - parents[i])) : NULL;
        int bad = slash && (!dir || (*dir && make_dirs(dir)));
        free(dir);
        if (bad || (i == 0 && (make_dirs(db_dir) || make_dirs(log_dir)))) {
            fprintf(stderr, "statebench slurm: cannot create the folders of %s: %s\n",
                    bad ? parents[i] : "--db-dir and --log-dir", strerror(errno));
            goto done;
        }
    }
    paths[0] = absolute(argv[optind]);
    paths[1] = absolute(db_dir);
    paths[2] = absolute(log_dir);
    paths[3] = absolute(final_db);
    paths[4] = binary ? absolute(binary) : realpath("/proc/self/exe", NULL);
    paths[5] = absolute(out);
    const char *given[6] = {argv[optind], db_dir, log_dir, final_db, binary ? binary : "this binary", out};
    for (int i = 0; i < 6; i++)
        if (!paths[i]) {
            fprintf(stderr, "statebench slurm: cannot resolve the path of %s: %s\n", given[i], strerror(errno));
            goto done;
        }
    if (!plain_chars(paths[2], "/_.,+-")) {
        fprintf(stderr, "statebench slurm: --log-dir: '%s' has characters #SBATCH lines cannot carry; allowed: "
                        "letters, digits, '/', '_', '.', ',', '+', '-'\n", paths[2]);
        rc = EXIT_USAGE;
        goto done;
    }
    size_t len = strlen(paths[5]);
    base = strndup(paths[5], len > 7 && !strcmp(paths[5] + len - 7, ".sbatch") ? len - 7 : len);
    if (!base || asprintf(&merge_path, "%s.merge.sbatch", base) < 0 ||
        asprintf(&submit_path, "%s.submit.sh", base) < 0)
        goto done;

    FILE *f = open_script(paths[5]);
    if (!f) goto done;
    fprintf(f, "#!/bin/bash\n"
               "# statebench sweep '%s': %d runs as a SLURM job array of %ld shards.\n"
               "# Written by `statebench slurm`; submit with %s\n"
               "# (array, then the merge job after every task succeeded).\n",
            exp.name, exp.count, o.array, submit_path);
    fprintf(f, "#SBATCH --job-name=sb-%s\n#SBATCH --array=0-%ld\n#SBATCH --output=%s/%%x_%%A_%%a.log\n", stem,
            o.array - 1, paths[2]);
    put_sbatch_common(f, &o);
    if (o.cpus) fprintf(f, "#SBATCH --cpus-per-task=%s\n", o.cpus);
    if (o.gpus) fprintf(f, "#SBATCH --gpus-per-task=%s\n", o.gpus);
    fprintf(f, "# SIGTERM to this script 60 s before the time limit: statebench stops\n"
               "# the current run as interrupted and the shard is still copied back.\n"
               "#SBATCH --signal=B:TERM@60\n"
               "set -uo pipefail\n");
    fputs("SB=", f), put_quoted(f, paths[4]), fputs("\nCONFIG=", f), put_quoted(f, paths[0]);
    fputs("\nDB_DIR=", f), put_quoted(f, paths[1]);
    fprintf(f, "\nVARIANT=%s", variant ? variant : ""); /* checked: a plain word */
    fprintf(f, "\nLOCAL_DIR=\"%s\"\nN=%ld\n", local_dir ? local_dir : "${TMPDIR:-/tmp}", o.array);
    fputs("I=${SLURM_ARRAY_TASK_ID:?not running as a SLURM array task}\n"
          "SHARD=shard_$I.db\n"
          "WORK=\"$LOCAL_DIR/statebench_${SLURM_ARRAY_JOB_ID}_$I\"\n"
          "rm -rf \"$WORK\" && mkdir -p \"$WORK\" || exit 1\n"
          "# Shard databases travel by `statebench merge`, which writes a self-contained\n"
          "# copy (no WAL file) and turns a run left running by a killed attempt into\n"
          "# interrupted, so the next attempt, on any node, reruns it.\n"
          "if [ -f \"$DB_DIR/$SHARD\" ]; then\n"
          "  \"$SB\" merge \"$WORK/$SHARD\" \"$DB_DIR/$SHARD\" >/dev/null || exit 1  # resume\n"
          "fi\n"
          "echo \"shard $I/$N on $(hostname), ${SLURM_CPUS_PER_TASK:-1} threads, database $WORK/$SHARD\"\n"
          "\"$SB\" run \"$CONFIG\" ${VARIANT:+--variant \"$VARIANT\"} --shard \"$I/$N\" --db \"$WORK/$SHARD\" --threads \"${SLURM_CPUS_PER_TASK:-1}\" &\n"
          "pid=$!\n"
          "trap 'kill -TERM $pid 2>/dev/null' TERM INT\n"
          "wait $pid; rc=$?\n"
          "while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done  # wait returned early for a signal\n"
          "# copy back whatever happened (the done runs count): the runs' weights and\n"
          "# checkpoints (files named by run hash) first, then the database by rename\n"
          "copied=0\n"
          "if mkdir -p \"$WORK/out\" && \"$SB\" merge \"$WORK/out/$SHARD\" \"$WORK/$SHARD\" >/dev/null; then\n"
          "  copied=1\n"
          "  for side in weights ckpt; do\n"
          "    if [ -d \"$WORK/out/$SHARD.$side\" ]; then\n"
          "      mkdir -p \"$DB_DIR/$SHARD.$side\" && cp -r \"$WORK/out/$SHARD.$side/.\" \"$DB_DIR/$SHARD.$side/\" || copied=0\n"
          "    fi\n"
          "  done\n"
          "fi\n"
          "if [ $copied = 1 ] && cp \"$WORK/out/$SHARD\" \"$DB_DIR/$SHARD.part$SLURM_JOB_ID\" &&\n"
          "   mv \"$DB_DIR/$SHARD.part$SLURM_JOB_ID\" \"$DB_DIR/$SHARD\"; then\n"
          "  # checkpoints of runs that have finished since are stale\n"
          "  for f in \"$DB_DIR/$SHARD.ckpt\"/*.ckpt; do\n"
          "    [ ! -e \"$f\" ] || [ -e \"$WORK/out/$SHARD.ckpt/${f##*/}\" ] || rm -f \"$f\"\n"
          "  done\n"
          "else\n"
          "  rc=1\n"
          "fi\n"
          "rm -rf \"$WORK\"\n"
          "exit $rc\n",
          f);
    if (close_script(f, paths[5])) goto done;

    f = open_script(merge_path);
    if (!f) goto done;
    fprintf(f, "#!/bin/bash\n"
               "# Merges the %ld shard databases of sweep '%s' into the final database;\n"
               "# submitted by %s after every array task succeeded.\n",
            o.array, exp.name, submit_path);
    fprintf(f, "#SBATCH --job-name=sb-%s-merge\n#SBATCH --output=%s/%%x_%%j.log\n#SBATCH --cpus-per-task=1\n",
            stem, paths[2]);
    put_sbatch_common(f, &o);
    fputs("set -euo pipefail\nSB=", f), put_quoted(f, paths[4]), fputs("\nCONFIG=", f), put_quoted(f, paths[0]);
    fputs("\nDB_DIR=", f), put_quoted(f, paths[1]), fputs("\nFINAL=", f), put_quoted(f, paths[3]);
    fprintf(f, "\nVARIANT=%s", variant ? variant : "");
    fprintf(f, "\nN=%ld\n", o.array);
    fputs("shards=()\n"
          "for ((i = 0; i < N; i++)); do\n"
          "  [ -f \"$DB_DIR/shard_$i.db\" ] || { echo \"missing shard $DB_DIR/shard_$i.db\" >&2; exit 1; }\n"
          "  shards+=(\"$DB_DIR/shard_$i.db\")\n"
          "done\n"
          "\"$SB\" merge \"$FINAL\" \"${shards[@]}\"\n"
          "\"$SB\" status \"$FINAL\" --config \"$CONFIG\" ${VARIANT:+--variant \"$VARIANT\"}\n",
          f);
    if (close_script(f, merge_path)) goto done;

    f = open_script(submit_path);
    if (!f) goto done;
    fprintf(f, "#!/bin/bash\n"
               "# Submits sweep '%s': the job array, then the merge job, which starts once\n"
               "# every array task succeeded (afterok) and is cancelled if one fails\n"
               "# (then resubmit the array: done runs are skipped). Arguments are passed\n"
               "# to both sbatch calls (e.g. --account=ACCOUNT).\n"
               "set -euo pipefail\n",
            exp.name);
    fputs("array=$(sbatch --parsable \"$@\" ", f), put_quoted(f, paths[5]), fputs(")\narray=${array%%;*}\n", f);
    fputs("merge=$(sbatch --parsable \"$@\" --dependency=afterok:$array --kill-on-invalid-dep=yes ", f);
    put_quoted(f, merge_path), fputs(")\nmerge=${merge%%;*}\n", f);
    fprintf(f, "echo \"array job $array (%ld tasks), merge job $merge\"\n", o.array);
    fputs("echo \"final database: \"", f), put_quoted(f, paths[3]), fputs("\n", f);
    if (close_script(f, submit_path)) goto done;

    printf("wrote %s (array of %ld tasks over %d runs)\n      %s (merge into %s)\n      %s (submits both)\n"
           "submit: bash %s\nlogs:   %s\nshards: %s/shard_I.db\n",
           paths[5], o.array, exp.count, merge_path, paths[3], submit_path, submit_path, paths[2], paths[1]);
    rc = EXIT_OK;
done:
    for (int i = 0; i < 6; i++) free(paths[i]);
    for (int i = 0; i < 4; i++) free(defaults[i]);
    free(base);
    free(merge_path);
    free(submit_path);
    experiment_free(&exp);
    return rc;
}
