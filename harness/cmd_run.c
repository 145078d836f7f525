/* cmd_run.c: `statebench run`: expand a config into runs and train the ones
 * the database does not hold as done, in one or several worker processes. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../kernels/device.h"
#include "../kernels/ops.h"
#include "../models/model.h"
#include "../tasks/task.h"
#include "cli.h"
#include "commands.h"
#include "config.h"
#include "checkpoint.h"
#include "db.h"
#include "options.h"
#include "provenance.h"
#include "train.h"

static const char run_usage[] =
    "usage: statebench run CONFIG.yaml [options]\n"
    "  Trains every run of the config's sweep that DB does not already hold as done\n"
    "  (failed and interrupted runs are rerun; nothing is duplicated). Runs are\n"
    "  checkpointed every train.checkpoint_every steps into DB.ckpt/, and a rerun\n"
    "  resumes from there; SIGINT / SIGTERM finish the current step, checkpoint,\n"
    "  mark the run interrupted and exit with 128 + the signal. A done run's\n"
    "  weights go to DB.weights/<hash>.safetensors (statebench export).\n"
    "options:\n"
    "  --db PATH         results database (default: results/<experiment name>.db)\n"
    "  --jobs N          worker processes sharing the database (default 1)\n"
    "  --threads N       threads per worker (default: cores / jobs)\n"
    "  --shard I/N       run only shard I of N (0 <= I < N); default from\n"
    "                    SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set\n"
    "  --device D        auto | cpu | cuda (default auto: GPU 0 for the runs whose\n"
    "                    mixers all have CUDA versions when a GPU is present,\n"
    "                    else the CPU; cuda: every run on GPU 0)\n"
    "  --variant NAME    apply the config's variant NAME (e.g. quick); the experiment\n"
    "                    is named NAME/VARIANT, its default database\n"
    "                    results/<experiment name>.<variant>.db\n"
    "  --dry-run         list the runs and their state without training\n"
    "  -h, --help        this text\n";

static void on_stop_signal(int sig) { train_stop_signal = sig; }

/* "deltanet eigen=signed seed=0": what the progress lines call a run. */
static void run_label(const run_spec *s, char *buf, size_t len)
{
    int pos = 0;
    for (int i = 0; i < s->model.n_mixer && pos < (int)len; i++)
        pos += snprintf(buf + pos, len - (size_t)pos, "%s%s", i ? "+" : "", mixer_name(s->model.mixer[i]));
    const sb_option *eigen = option_find("model.eigen");
    char why[128];
    if (eigen && option_applies(eigen, s, why, sizeof why) && pos < (int)len)
        pos += snprintf(buf + pos, len - (size_t)pos, " eigen=%s",
                        s->model.eigen == EIGEN_SIGNED ? "signed" : "positive");
    if (pos < (int)len)
        snprintf(buf + pos, len - (size_t)pos, " d=%d L=%d seed=%llu", s->model.d_model, s->model.layers,
                 (unsigned long long)s->seed);
}

static int parse_shard(const char *text, long *index, long *count)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    if (!slash) {
        fprintf(stderr, "statebench run: --shard: '%s' is not of the form I/N (0 <= I < N)\n", text ? text : "");
        return -1;
    }
    char *first = strndup(text, (size_t)(slash - text));
    int rc = cli_parse_long("run", "--shard N", slash + 1, 1, 1000000, count);
    if (rc == 0) rc = cli_parse_long("run", "--shard I", first, 0, *count - 1, index);
    free(first);
    return rc;
}

typedef struct {
    const experiment *exp;
    const char *db_path;
    long shard_index, shard_count;
    int live;
    int cuda;           /* 0: the CPU; 1 (auto): GPU 0 for runs whose mixers all
                           have CUDA versions, the CPU for the rest; 2: GPU 0 */
} worker_args;

static const char *our_version(void) { return SB_VERSION "+" SB_GIT_REV; }

/* 1 when every mixer of the run has a CUDA version and the CUDA kernels
 * cover its sizes (--device auto trains the others on the CPU). */
static int run_on_cuda(const run_spec *s)
{
    for (int i = 0; i < s->model.n_mixer; i++)
        if (!mixer_on_cuda(s->model.mixer[i])) return 0;
    char err[512];
    return train_cuda_fits(s, err, sizeof err) == 0;
}

/* Number of CUDA devices, asked in a child process so that this one stays
 * free of CUDA (the workers are forked from it, and a CUDA context does
 * not survive fork). 0 with the reason in `reason` when there are none. */
static int probe_cuda(char *reason, size_t len)
{
    int fds[2];
    snprintf(reason, len, "the device probe failed");
    if (!cuda_backend_built()) return cuda_device_count(reason, len);
    if (pipe(fds) != 0) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char msg[256] = "";
        int n = cuda_device_count(msg, sizeof msg);
        if (write(fds[1], &n, sizeof n) != (ssize_t)sizeof n || write(fds[1], msg, sizeof msg) < 0) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    int n = 0, status = 0;
    char msg[256] = "";
    if (pid < 0 || read(fds[0], &n, sizeof n) != (ssize_t)sizeof n) n = 0;
    else if (read(fds[0], msg, sizeof msg) > 0) snprintf(reason, len, "%.*s", (int)sizeof msg - 1, msg);
    close(fds[0]);
    if (pid > 0) waitpid(pid, &status, 0);
    return n;
}

/* Runs every pending run of this shard that this process can claim.
 * Returns the exit code: 0, 1 (a run failed or the database failed) or
 * 128 + signal when interrupted. */
static int worker(const worker_args *w)
{
    char err[512];
    sb_db *db = db_open(w->db_path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "statebench run: %s\n", err);
        return EXIT_RUNTIME;
    }
    char host[256] = "unknown";
    gethostname(host, sizeof host - 1);
    db_provenance prov;
    char gpu[256] = "";
    if (w->cuda) {
        /* here, not in the parent: a CUDA context does not survive fork */
        if (ops_set_backend(OPS_CUDA) != 0) {
            fprintf(stderr, "statebench run: --device cuda: cannot start the CUDA backend on device 0\n");
            db_close(db);
            return EXIT_RUNTIME;
        }
        cuda_device_describe(0, gpu, sizeof gpu);
    }
    long long steps_total = 0;
    int mine = 0;
    for (int i = 0; i < w->exp->count; i++)
        if (i % w->shard_count == w->shard_index) {
            steps_total += w->exp->runs[i].train.steps;
            mine++;
        }
    progress prog;
    progress_init(&prog, stderr, w->live, mine, steps_total);
    int rc = EXIT_OK, k = 0, trained = 0, skipped = 0, busy = 0;
    for (int i = 0; i < w->exp->count && !train_stop_signal; i++) {
        if (i % w->shard_count != w->shard_index) continue;
        const run_spec *s = &w->exp->runs[i];
        k++;
        char hash[33], label[256];
        spec_hash(s, hash);
        run_label(s, label, sizeof label);
        char *json = spec_to_json(s);
        const task_def *t = task_get(s->task.task);
        const int on_gpu = w->cuda == 2 || (w->cuda == 1 && run_on_cuda(s));
        ops_set_backend(on_gpu ? OPS_CUDA : OPS_CPU);
        provenance_collect(&prov, on_gpu ? "cuda" : "cpu");
        char mixers[128] = "";
        for (int j = 0, pos = 0; j < s->model.n_mixer && pos < (int)sizeof mixers; j++)
            pos += snprintf(mixers + pos, sizeof mixers - (size_t)pos, "%s%s", j ? "+" : "", mixer_name(s->model.mixer[j]));
        db_run_info info = {.hash = hash, .experiment = s->experiment, .task = t->name,
                            .mixer = mixers, .config = json, .device = on_gpu ? gpu : "cpu", .host = host,
                            .version = our_version(), .seed = s->seed,
                            .n_params = train_count_params(s), .provenance = &prov};
        int64_t run_id = 0;
        int claim = db_claim_run(db, &info, &run_id);
        free(json);
        if (claim == CLAIM_ERROR) {
            fprintf(stderr, "statebench run: cannot record run %s in %s: %s\n", label, w->db_path, db_errmsg(db));
            rc = EXIT_RUNTIME;
            break;
        }
        if (claim != CLAIM_OK) {
            if (claim == CLAIM_SKIP_DONE) {
                skipped++;
                checkpoint_discard(db, hash); /* left if a kill came between the done mark and the removal */
            } else {
                busy++;
            }
            progress_run_end(&prog, s->train.steps);
            continue;
        }
        progress_run_start(&prog, k, label, s->train.steps);
        progress_log(&prog, "run %d/%d: %s [%.12s]", k, mine, label, hash);
        run_outcome out;
        train_run(s, db, run_id, &prog, &out);
        trained++;
        progress_run_end(&prog, s->train.steps - (int)out.steps_done);
        if (db_finish_run(db, run_id, out.status, out.error[0] ? out.error : NULL, out.train_seconds,
                          out.steps_done) != 0) {
            fprintf(stderr, "statebench run: cannot mark run %s %s: %s\n", label, out.status, db_errmsg(db));
            rc = EXIT_RUNTIME;
        } else if (!strcmp(out.status, "done") || !strcmp(out.status, "diverged")) {
            checkpoint_discard(db, hash); /* only after the mark: a kill before it resumes from the checkpoint */
        }
        progress_log(&prog, "run %d/%d: %s %s after %lld steps, %.1f s%s%s", k, mine, label, out.status,
                     (long long)out.steps_done, out.train_seconds, out.error[0] ? ": " : "", out.error);
        if (!strcmp(out.status, "failed")) rc = EXIT_RUNTIME;
    }
    progress_log(&prog, "%d trained, %d already done, %d held by other workers (%s)", trained, skipped, busy,
                 w->db_path);
    db_close(db);
    if (train_stop_signal) return 128 + train_stop_signal;
    return rc;
}

static int make_parent_dirs(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return -1;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
            free(copy);
            return -1;
        }
        *p = '/';
    }
    free(copy);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, 0, 'd'},      {"jobs", required_argument, 0, 'j'},
        {"threads", required_argument, 0, 't'}, {"shard", required_argument, 0, 's'},
        {"device", required_argument, 0, 'D'},  {"dry-run", no_argument, 0, 'n'},
        {"variant", required_argument, 0, 'V'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *db_path = NULL, *device = "auto", *shard = NULL, *variant = NULL;
    long jobs = 1, threads = 0, shard_index = 0, shard_count = 1;
    int dry_run = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'j': if (cli_parse_long("run", "--jobs", optarg, 1, 1024, &jobs)) return EXIT_USAGE; break;
        case 't': if (cli_parse_long("run", "--threads", optarg, 1, 1024, &threads)) return EXIT_USAGE; break;
        case 's': shard = optarg; break;
        case 'D': device = optarg; break;
        case 'n': dry_run = 1; break;
        case 'V': variant = optarg; break;
        case 'h': fputs(run_usage, stdout); return EXIT_OK;
        default: fputs(run_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "statebench run: expected exactly one CONFIG.yaml\n%s", run_usage);
        return EXIT_USAGE;
    }
    if (shard) {
        if (parse_shard(shard, &shard_index, &shard_count)) return EXIT_USAGE;
    } else if (getenv("SLURM_ARRAY_TASK_ID") && getenv("SLURM_ARRAY_TASK_COUNT")) {
        if (cli_parse_long("run", "SLURM_ARRAY_TASK_COUNT", getenv("SLURM_ARRAY_TASK_COUNT"), 1, 1000000, &shard_count) ||
            cli_parse_long("run", "SLURM_ARRAY_TASK_ID", getenv("SLURM_ARRAY_TASK_ID"), 0, shard_count - 1, &shard_index))
            return EXIT_USAGE;
    }
    if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda")) {
        fprintf(stderr, "statebench run: --device: '%s' is not known; allowed: auto, cpu, cuda\n", device);
        return EXIT_USAGE;
    }
    int use_cuda = 0;
    if (strcmp(device, "cpu")) {
        char reason[256] = "";
        use_cuda = probe_cuda(reason, sizeof reason) > 0 ? 1 + !strcmp(device, "cuda") : 0;
        if (!use_cuda && !strcmp(device, "cuda")) {
            fprintf(stderr, "statebench run: --device cuda: no CUDA device (%s); use --device cpu or auto\n", reason);
            return EXIT_USAGE;
        }
    }

    experiment exp;
    char err[1024];
    if (config_load_variant(argv[optind], variant, &exp, stderr, err, sizeof err) != 0) {
        fprintf(stderr, "statebench run: %s\n", err);
        return EXIT_USAGE;
    }
    char *default_db = NULL;
    int rc = EXIT_OK;
    /* bf16 gemms exist on the GPU only: a run that would train on the CPU
     * (--device cpu, no GPU under auto, or a mixer without CUDA ops) is a
     * config error, before anything is recorded */
    for (int i = 0; i < exp.count; i++) {
        const run_spec *s = &exp.runs[i];
        if (s->train.precision != PRECISION_BF16 || use_cuda == 2 || (use_cuda == 1 && run_on_cuda(s))) continue;
        char label[256];
        run_label(s, label, sizeof label);
        fprintf(stderr,
                "statebench run: %s: run %d (%s): train.precision bf16 needs the GPU, but this run would train "
                "on the CPU (%s); allowed on the CPU: fp32, tf32\n",
                argv[optind], i + 1, label,
                use_cuda ? "a mixer without CUDA ops" : !strcmp(device, "cpu") ? "--device cpu" : "no CUDA device");
        rc = EXIT_USAGE;
        goto done;
    }
    /* --device cuda: every run must fit the CUDA kernels' sizes; a run
     * that does not is a config error, before anything is recorded */
    for (int i = 0; use_cuda == 2 && i < exp.count; i++) {
        const run_spec *s = &exp.runs[i];
        if (train_cuda_fits(s, err, sizeof err) == 0) continue;
        char label[256];
        run_label(s, label, sizeof label);
        fprintf(stderr, "statebench run: %s: run %d (%s): %s\n", argv[optind], i + 1, label, err);
        rc = EXIT_USAGE;
        goto done;
    }
    if (!db_path) {
        char stem[512];
        experiment_file_stem(&exp, stem, sizeof stem);
        if (asprintf(&default_db, "results/%s.db", stem) < 0) default_db = NULL;
        db_path = default_db;
    }
    if (!db_path || make_parent_dirs(db_path) != 0) {
        fprintf(stderr, "statebench run: cannot create the folder of the database %s\n", db_path ? db_path : "");
        rc = EXIT_RUNTIME;
        goto done;
    }
    if (dry_run) {
        printf("%s: %d runs\n", exp.name, exp.count);
        for (int i = 0; i < exp.count; i++) {
            if (i % shard_count != shard_index) continue;
            char hash[33], label[256];
            spec_hash(&exp.runs[i], hash);
            run_label(&exp.runs[i], label, sizeof label);
            printf("%4d  %s  %s  %s steps=%d\n", i + 1, hash, task_get(exp.runs[i].task.task)->name, label,
                   exp.runs[i].train.steps);
        }
        goto done;
    }
    if (jobs > exp.count) jobs = exp.count > 0 ? exp.count : 1;
    ops_set_threads(threads > 0 ? (int)threads : (cli_cores() / (int)jobs > 0 ? cli_cores() / (int)jobs : 1));

    /* Creating the schema once before any worker starts avoids racing creators. */
    sb_db *db = db_open(db_path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "statebench run: %s\n", err);
        rc = EXIT_RUNTIME;
        goto done;
    }
    db_close(db);

    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    worker_args w = {.exp = &exp, .db_path = db_path, .shard_index = shard_index, .cuda = use_cuda,
                     .shard_count = shard_count, .live = jobs == 1 && isatty(STDERR_FILENO)};
    if (jobs == 1) {
        rc = worker(&w);
        goto done;
    }
    pid_t *pids = calloc((size_t)jobs, sizeof *pids);
    for (long j = 0; pids && j < jobs; j++) {
        pids[j] = fork();
        if (pids[j] == 0) {
            fflush(stdout);
            _exit(worker(&w));
        }
        if (pids[j] < 0) {
            fprintf(stderr, "statebench run: fork failed: %s\n", strerror(errno));
            rc = EXIT_RUNTIME;
        }
    }
    for (long j = 0; pids && j < jobs; j++) {
        int status = 0;
        if (pids[j] <= 0) continue;
        while (waitpid(pids[j], &status, 0) < 0 && errno == EINTR) {
            for (long q = 0; q < jobs; q++)
                if (pids[q] > 0) kill(pids[q], (int)train_stop_signal);
        }
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code > rc) rc = code;
    }
    free(pids);
done:
    free(default_db);
    experiment_free(&exp);
    return rc;
}
