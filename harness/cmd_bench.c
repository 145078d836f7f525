/* cmd_bench.c: `statebench bench`: training and inference throughput of the
 * mixers at the shapes of shared/BASELINES.md, into the bench table. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/device.h"
#include "../kernels/ops.h"
#include "../models/model.h"
#include "../tasks/task.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "options.h"
#include "progress.h"

static const char bench_usage[] =
    "usage: statebench bench [options]\n"
    "  Times training steps (forward + loss + backward + AdamW) and inference\n"
    "  (forward) of 2-layer models on running parity, as in shared/BASELINES.md.\n"
    "  Prints a Markdown table with PyTorch's figures of shared/BASELINES.md beside\n"
    "  ours where it has them. MFU = 6 x params x train tokens/s / the gemm ceiling,\n"
    "  measured in the same run just before each shape (best of a few 1024^3\n"
    "  products of the gemm the models use, with the same threads), so that on a\n"
    "  shared machine both see the same load.\n"
    "options:\n"
    "  --mixers LIST     comma-separated mixers, or 'all' for every mixer this build\n"
    "                    implements (default lstm,deltanet,mamba,attention; on cuda\n"
    "                    lstm,deltanet,linear_attn,attention)\n"
    "  --n LIST          sequence lengths (default 64,256)\n"
    "  --d LIST          model widths (default 64,128)\n"
    "  --batch B         batch size (default 32)\n"
    "  --steps K         timed steps per shape (default 10; median reported)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --peak GFLOPS     use this gemm ceiling for MFU instead of measuring it\n"
    "  --device D        cpu (default) or cuda: GPU 0, the mixers with CUDA versions\n"
    "  --db PATH         also record rows into this database (default results/bench.db; '' = none)\n"
    "  -h, --help        this text\n";

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per call of forward (+ backward + AdamW when train). */
static double time_steps(model *m, const int *x, const int *y, int B, int T, int steps, int train)
{
    double *t = malloc((size_t)steps * sizeof *t);
    if (!t) return 0;
    for (int i = -3; i < steps; i++) {
        double t0 = now_seconds();
        int count;
        model_forward(m, x, y, B, T, &count);
        if (train) {
            model_backward(m);
            model_adamw_step(m, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, i + 4);
        }
        ops_sync();
        if (i >= 0) t[i] = now_seconds() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, compare_double);
    double med = t[steps / 2];
    free(t);
    return med;
}

/* PyTorch 1.13.1 on the CPU, same models and configs (shared/BASELINES.md:
 * AMD EPYC, 2 cores, OpenBLAS 1 thread + torch 2 threads, 2026-11-22). */
static const struct {
    const char *mixer;
    int d, n;
    double train, infer; /* tokens/s */
} pytorch_cpu[] = {
    {"lstm", 64, 64, 30126, 120922},        {"lstm", 64, 256, 27109, 102009},
    {"lstm", 128, 64, 13314, 39829},        {"lstm", 128, 256, 11436, 40868},
    {"deltanet", 64, 64, 17974, 66782},     {"deltanet", 64, 256, 14472, 54580},
    {"deltanet", 128, 64, 9320, 33921},     {"deltanet", 128, 256, 9686, 33248},
    {"mamba", 64, 64, 12996, 47774},        {"mamba", 64, 256, 7682, 46495},
    {"mamba", 128, 64, 6455, 18534},        {"mamba", 128, 256, 2785, 22306},
    {"attention", 64, 64, 42639, 123824},   {"attention", 64, 256, 25141, 66844},
    {"attention", 128, 64, 14865, 43843},   {"attention", 128, 256, 12221, 34284},
};

/* Index into pytorch_cpu at batch 32, or -1. */
static int pytorch_row(const char *mixer, long d, long n, long batch)
{
    if (batch != 32) return -1;
    for (int i = 0; i < (int)(sizeof pytorch_cpu / sizeof *pytorch_cpu); i++)
        if (!strcmp(pytorch_cpu[i].mixer, mixer) && pytorch_cpu[i].d == d && pytorch_cpu[i].n == n)
            return i;
    return -1;
}

/* GFLOP/s of matmul_forward (the gemm every model runs on) at 1024^3: the
 * best of a few products, so MFU is measured against what this machine's
 * gemm does now, under its present load. 0 when out of memory. */
static double gemm_ceiling(void)
{
    const int n = 1024;
    const size_t bytes = (size_t)n * n * sizeof(real);
    real *a = ops_alloc(bytes), *b = ops_alloc(bytes), *out = ops_alloc(bytes);
    double best = 0;
    if (a && b && out) {
        for (int rep = 0; rep < 6; rep++) {
            ops_sync();
            double t0 = now_seconds();
            matmul_forward(out, a, b, NULL, n, n, n);
            ops_sync();
            double gflops = 2.0 * n * n * n / (now_seconds() - t0) / 1e9;
            if (rep > 0 && gflops > best) best = gflops; /* rep 0 warms up */
        }
    }
    ops_free(a);
    ops_free(b);
    ops_free(out);
    return best;
}

/* The 1-minute load average, or -1: timings on a shared machine need it. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    return load;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mixers", required_argument, 0, 'm'}, {"n", required_argument, 0, 'n'},
        {"d", required_argument, 0, 'd'},      {"batch", required_argument, 0, 'b'},
        {"steps", required_argument, 0, 's'},  {"threads", required_argument, 0, 't'},
        {"peak", required_argument, 0, 'p'},   {"device", required_argument, 0, 'D'},
        {"db", required_argument, 0, 'o'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char cpu_mixers[] = "lstm,deltanet,mamba,attention";
    const char *mixers_arg = cpu_mixers, *db_path = "results/bench.db";
    int on_gpu = 0;
    long ns[16] = {64, 256}, ds[16] = {64, 128}, batch = 32, steps = 10, threads = 0;
    int n_count = 2, d_count = 2, c;
    double peak = 0; /* 0: measure */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': mixers_arg = optarg; break;
        case 'n': if ((n_count = cli_parse_long_list("bench", "--n", optarg, 1, 1 << 20, ns, 16)) < 0) return EXIT_USAGE; break;
        case 'd': if ((d_count = cli_parse_long_list("bench", "--d", optarg, 4, 8192, ds, 16)) < 0) return EXIT_USAGE; break;
        case 'b': if (cli_parse_long("bench", "--batch", optarg, 1, 65536, &batch)) return EXIT_USAGE; break;
        case 's': if (cli_parse_long("bench", "--steps", optarg, 1, 100000, &steps)) return EXIT_USAGE; break;
        case 't': if (cli_parse_long("bench", "--threads", optarg, 1, 1024, &threads)) return EXIT_USAGE; break;
        case 'p': if (cli_parse_double("bench", "--peak", optarg, 1e-3, 1e9, &peak)) return EXIT_USAGE; break;
        case 'D':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) {
                fprintf(stderr, "statebench bench: --device: '%s' is not known; allowed: cpu, cuda\n", optarg);
                return EXIT_USAGE;
            }
            on_gpu = !strcmp(optarg, "cuda");
            break;
        case 'o': db_path = optarg; break;
        case 'h': fputs(bench_usage, stdout); return EXIT_OK;
        default: fputs(bench_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "statebench bench: unexpected argument '%s'\n%s", argv[optind], bench_usage);
        return EXIT_USAGE;
    }
    char device[256] = "cpu";
    if (on_gpu && mixers_arg == cpu_mixers) mixers_arg = "lstm,deltanet,linear_attn,attention";
    if (on_gpu) {
        if (ops_set_backend(OPS_CUDA) != 0) {
            char reason[256] = "";
            cuda_device_count(reason, sizeof reason);
            fprintf(stderr, "statebench bench: --device cuda: no CUDA device (%s)\n", reason);
            return EXIT_USAGE;
        }
        cuda_device_describe(0, device, sizeof device);
    }
    int mixers[MIXER__COUNT], n_mixers = 0;
    if (!strcmp(mixers_arg, "all")) {
        mixers_arg = "";
        for (int i = 0; i < MIXER__COUNT; i++)
            if (on_gpu ? mixer_on_cuda(i) : mixer_available(i)) mixers[n_mixers++] = i;
    }
    char *list = strdup(mixers_arg), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int id = mixer_find(tok);
        if (id < 0 || !mixer_available(id) || n_mixers == MIXER__COUNT) {
            fprintf(stderr, "statebench bench: --mixers: '%s' is not a known mixer; allowed:", tok);
            for (int i = 0; i < MIXER__COUNT; i++)
                if (mixer_available(i)) fprintf(stderr, " %s", mixer_name(i));
            fputs(" all", stderr);
            fputc('\n', stderr);
            free(list);
            return EXIT_USAGE;
        }
        mixers[n_mixers++] = id;
    }
    free(list);
    ops_set_threads(threads > 0 ? (int)threads : cli_cores());

    sb_db *db = NULL;
    if (db_path[0]) {
        char err[512];
        db = db_open(db_path, err, sizeof err);
        if (!db) {
            fprintf(stderr, "statebench bench: %s\n", err);
            return EXIT_RUNTIME;
        }
    }
    const double load_before = load_average();
    const int measured = peak <= 0;
    if (measured) peak = gemm_ceiling();
    if (peak <= 0) {
        fprintf(stderr, "statebench bench: cannot measure the gemm ceiling (out of memory); give --peak\n");
        db_close(db);
        return EXIT_RUNTIME;
    }
    printf("gemm ceiling: %.1f GFLOP/s (%s); %d threads; %s; load average %.2f\n\n", peak,
           measured ? "measured: matmul_forward 1024^3, best of 5, again before each shape" : "--peak",
           ops_get_threads(),
           ops_blas_info(), load_before);
    printf("| mixer | d | n | params | train tok/s | infer tok/s | train ms/step | gemm GFLOP/s | MFU "
           "| PyTorch train tok/s | PyTorch infer tok/s | train vs PyTorch |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    int rc = EXIT_OK;
    for (int mi = 0; mi < n_mixers; mi++)
        for (int di = 0; di < d_count; di++)
            for (int ni = 0; ni < n_count; ni++) {
                run_spec s;
                spec_defaults(&s, 0);
                s.model.mixer[0] = mixers[mi];
                s.model.n_mixer = 1;
                s.model.layers = 2;
                s.model.d_model = (int)ds[di];
                s.model.heads = 4;
                model_config cfg = {.spec = s.model, .vocab_in = 2, .vocab_out = 2,
                                    .max_batch = (int)batch, .max_len = (int)ns[ni]};
                char err[256];
                model *m = model_create(&cfg, 0, err, sizeof err);
                if (!m) {
                    fprintf(stderr, "statebench bench: %s d=%ld: %s\n", mixer_name(mixers[mi]), ds[di], err);
                    rc = EXIT_RUNTIME;
                    continue;
                }
                size_t tokens = (size_t)batch * (size_t)ns[ni];
                int *x = malloc(tokens * sizeof *x), *y = malloc(tokens * sizeof *y);
                uint64_t state = 12345;
                for (size_t i = 0, parity = 0; i < tokens; i++) {
                    if (i % (size_t)ns[ni] == 0) parity = 0;
                    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                    x[i] = (int)(state >> 63);
                    parity ^= (size_t)x[i];
                    y[i] = (int)parity;
                }
                /* the ceiling under the load this shape sees (the first
                   shape reuses the one measured above) */
                double shape_peak = peak;
                if (measured && (mi || di || ni)) {
                    double now_peak = gemm_ceiling();
                    if (now_peak > 0) shape_peak = now_peak;
                }
                double train_s = time_steps(m, x, y, (int)batch, (int)ns[ni], (int)steps, 1);
                double infer_s = time_steps(m, x, y, (int)batch, (int)ns[ni], (int)steps, 0);
                double train_tps = (double)tokens / train_s, infer_tps = (double)tokens / infer_s;
                double params = (double)model_num_params(m);
                double mfu = 6 * params * train_tps / (shape_peak * 1e9);
                printf("| %s | %ld | %ld | %.0f | %.0f | %.0f | %.2f | %.1f | %.1f%% |", mixer_name(mixers[mi]),
                       ds[di], ns[ni], params, train_tps, infer_tps, 1e3 * train_s, shape_peak, 100 * mfu);
                int pt = on_gpu ? -1 : pytorch_row(mixer_name(mixers[mi]), ds[di], ns[ni], batch);
                if (pt >= 0)
                    printf(" %.0f | %.0f | %.2fx |\n", pytorch_cpu[pt].train, pytorch_cpu[pt].infer,
                           train_tps / pytorch_cpu[pt].train);
                else
                    printf(" | | |\n");
                fflush(stdout);
                if (db) {
                    char config[256];
                    snprintf(config, sizeof config,
                             "{\"d_model\":%ld,\"heads\":4,\"layers\":2,\"params\":%.0f,\"threads\":%d,"
                             "\"gemm_gflops\":%.1f,\"mfu\":%.4f,\"load\":%.2f}",
                             ds[di], params, ops_get_threads(), shape_peak, mfu, load_average());
                    db_bench_row tr = {.mixer = mixer_name(mixers[mi]), .config = config, .device = device,
                                       .direction = "train", .n = (int)ns[ni], .batch = (int)batch,
                                       .tokens_per_s = train_tps, .ms = 1e3 * train_s};
                    db_bench_row in = tr;
                    in.direction = "infer";
                    in.tokens_per_s = infer_tps;
                    in.ms = 1e3 * infer_s;
                    if (db_add_bench(db, &tr) || db_add_bench(db, &in)) {
                        fprintf(stderr, "statebench bench: cannot record into %s: %s\n", db_path, db_errmsg(db));
                        rc = EXIT_RUNTIME;
                    }
                }
                free(x);
                free(y);
                model_free(m);
            }
    printf("\nload average %.2f before, %.2f after\n", load_before, load_average());
    db_close(db);
    return rc;
}
