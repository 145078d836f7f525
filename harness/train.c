/* train.c: the training loop of one run and its evaluation on the length grid. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/ops.h"
#include "../models/model.h"
#include "../tasks/task.h"
#include "checkpoint.h"

volatile sig_atomic_t train_stop_signal = 0;

static int max_eval_len(const run_spec *s)
{
    int m = 0;
    for (int i = 0; i < s->task.n_eval; i++)
        if (s->task.eval_len[i] > m) m = s->task.eval_len[i];
    return m;
}

static void model_config_for(const run_spec *s, const task_def *t, model_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->spec = s->model;
    cfg->vocab_in = t->vocab_in(&s->task);
    cfg->vocab_out = t->vocab_out(&s->task);
    int lmax = t->seq_len(&s->task, s->task.train_max);
    int le = t->seq_len(&s->task, max_eval_len(s));
    cfg->max_len = lmax > le ? lmax : le;
    cfg->max_batch = s->train.batch > s->eval.batch ? s->train.batch : s->eval.batch;
    cfg->bf16 = s->train.precision == PRECISION_BF16;
}

int64_t train_count_params(const run_spec *spec)
{
    const task_def *t = task_get(spec->task.task);
    model_config cfg;
    model_config_for(spec, t, &cfg);
    cfg.max_batch = 1; /* max_len stays: learned positions have max_len rows */
    char err[256];
    model *m = model_create(&cfg, 0, err, sizeof err);
    if (!m) return 0;
    int64_t n = (int64_t)model_num_params(m);
    model_free(m);
    return n;
}

int train_cuda_fits(const run_spec *spec, char *err, size_t errlen)
{
    model_config cfg;
    model_config_for(spec, task_get(spec->task.task), &cfg);
    return model_cuda_fits(&cfg, err, errlen);
}

/* Bytes a run may use, for the fit check before allocating: the value of
 * STATEBENCH_MEMORY_LIMIT when set (bytes, or with a K, M, G or T suffix;
 * the whole of it may be used), else 80% of the physical memory. Writes
 * what the limit is into `what`; returns -1 for a malformed variable, 0 when
 * the size is unknown. */
static double memory_limit(char *what, size_t len)
{
    const char *text = getenv("STATEBENCH_MEMORY_LIMIT");
    if (text && *text) {
        char *end = NULL;
        double v = strtod(text, &end);
        const char *units = "KMGT";
        const char *unit = *end ? strchr(units, *end) : NULL;
        if (unit && end[1] == '\0') v *= pow(1024, (double)(unit - units + 1));
        else if (*end) v = -1;
        snprintf(what, len, "STATEBENCH_MEMORY_LIMIT=%s allows", text);
        return v > 0 && isfinite(v) ? v : -1;
    }
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    snprintf(what, len, "80%% of this machine's memory is");
    return pages > 0 && size > 0 ? 0.8 * (double)pages * (double)size : 0;
}

/* Device memory a run leaves free beyond the model's estimate: cuBLAS's
 * workspace (up to 32 MiB on Hopper) and the allocator's rounding. */
#define DEVICE_RESERVE (256.0 * 1048576)

/* Counts the right predictions over the scored positions of a (B,T) batch,
 * examples first..first+B-1 of split, and the examples whose every scored
 * position is right. pred (B,T) is the argmax of every position
 * (model_predictions). Right: argmax == target, or the task's own rule when
 * it has a scorer (icll's dfa_acc), which gets the argmax of every position.
 * plain_correct (NULL: not counted) counts argmax == target whatever the task's rule. */
static void score_batch(const task_def *task, const run_spec *s, int split, uint64_t first,
                        const int *x, const int *pred, const int *y, int B, int T,
                        int64_t *correct, int64_t *scored, int64_t *seq_correct,
                        int64_t *seq_scored, int64_t *plain_correct)
{
    unsigned char *right = malloc((size_t)T);      /* (T) the task scorer's verdicts */
    if (!right) {
        fprintf(stderr, "statebench: out of memory scoring a batch of length %d\n", T);
        exit(EXIT_FAILURE);
    }
    for (int b = 0; b < B; b++) {
        const int *yb = y + (size_t)b * T, *pb = pred + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            right[t] = pb[t] == yb[t];
            if (plain_correct && yb[t] >= 0) *plain_correct += right[t];
        }
        if (task->score)
            task->score(&s->task, s->seed, split, first + (uint64_t)b, T, x + (size_t)b * T, yb, pb,
                        right);
        int any = 0, all = 1;
        for (int t = 0; t < T; t++) {
            if (yb[t] < 0) continue;
            any = 1;
            (*scored)++;
            if (right[t]) (*correct)++;
            else all = 0;
        }
        if (any) {
            (*seq_scored)++;
            if (all) (*seq_correct)++;
        }
    }
    free(right);
}

/* The metrics of the eval examples at length n; *plain_token_acc gets the
 * share of scored positions where argmax == y (token_acc by the default rule). */
static void evaluate_length(model *m, const task_def *t, const run_spec *s, int n,
                            int *x, int *y, int vocab_out, eval_metrics *em, double *plain_token_acc)
{
    int64_t correct = 0, scored = 0, seq_correct = 0, seq_scored = 0, plain_correct = 0;
    double loss_sum = 0;
    for (int first = 0; first < s->eval.count; first += s->eval.batch) {
        int B = s->eval.count - first < s->eval.batch ? s->eval.count - first : s->eval.batch;
        int L = task_eval_batch(t, &s->task, s->seed, n, (uint64_t)first, B, x, y);
        int count = 0;
        double loss = model_forward(m, x, y, B, L, &count);
        loss_sum += loss * count;
        score_batch(t, s, SPLIT_EVAL, (uint64_t)first, x, model_predictions(m), y, B, L, &correct,
                    &scored, &seq_correct, &seq_scored, &plain_correct);
    }
    *plain_token_acc = scored ? (double)plain_correct / (double)scored : 0;
    double chance = t->chance(&s->task);
    em->count = scored;
    em->token_acc = scored ? (double)correct / (double)scored : 0;
    em->seq_acc = seq_scored ? (double)seq_correct / (double)seq_scored : 0;
    em->loss = scored ? loss_sum / (double)scored : 0;
    em->scaled_acc = (em->token_acc - chance) / (1 - chance);
}

/* Evaluates at every grid length, records the rows, and returns 1 when
 * every length reaches the early-stop target. */
static int evaluate_grid(model *m, const task_def *t, const run_spec *s, int step,
                         int *x, int *y, int vocab_out, sb_db *db, int64_t run_id,
                         progress *prog, int *db_failed)
{
    db_eval_row rows[SB_MAX_EVAL];
    db_eval_metric metrics[SB_MAX_EVAL];
    int reached = s->eval.target > 0;
    char line[1024];
    int pos = snprintf(line, sizeof line, "  eval step %d:", step);
    for (int i = 0; i < s->task.n_eval; i++) {
        eval_metrics em;
        double plain;
        evaluate_length(m, t, s, s->task.eval_len[i], x, y, vocab_out, &em, &plain);
        metrics[i] = (db_eval_metric){.step = step, .n = s->task.eval_len[i], .name = "plain_token_acc",
                                      .value = plain};
        rows[i] = (db_eval_row){.step = step, .n = s->task.eval_len[i], .token_acc = em.token_acc,
                                .seq_acc = em.seq_acc, .scaled_acc = em.scaled_acc,
                                .loss = em.loss, .count = em.count};
        if (em.scaled_acc < s->eval.target) reached = 0;
        if (pos < (int)sizeof line)
            pos += snprintf(line + pos, sizeof line - (size_t)pos, " n=%d %.3f",
                            s->task.eval_len[i], em.scaled_acc);
    }
    progress_log(prog, "%s (scaled accuracy)", line);
    if (db_add_evals_metrics(db, run_id, rows, s->task.n_eval, metrics, s->task.n_eval) != 0) *db_failed = 1;
    return reached;
}

static int eval_due(const run_spec *s, int step)
{
    return step == s->train.steps || (s->eval.every > 0 && step % s->eval.every == 0);
}

/* 1, with the run marked diverged, when st reports a step whose loss or
 * gradient norm was not finite (its update was skipped, and on the GPU
 * the steps queued after it do not count). */
static int diverged(const model_step_stats *st, run_outcome *out)
{
    if (!st->first_bad_step) return 0;
    const int bad_loss = st->first_bad_what == STEP_BAD_LOSS;
    out->status = "diverged";
    out->steps_done = bad_loss ? st->first_bad_step - 1 : st->first_bad_step;
    snprintf(out->error, sizeof out->error, "%s became %s at step %d", bad_loss ? "loss" : "gradient norm",
             isnan(st->first_bad_value) ? "nan" : "inf", st->first_bad_step);
    return 1;
}

/* 1 when the host reads the step's metrics even on the GPU: a curve row,
 * an evaluation, a checkpoint or a stop follows the step. */
static int metrics_due(const run_spec *s, int step)
{
    return step % s->train.log_every == 0 || eval_due(s, step) || train_stop_signal ||
           (s->train.checkpoint_every > 0 && step % s->train.checkpoint_every == 0);
}

/* Evaluates at `step`; returns 1 when the run stops early there (every
 * length reached the target before the last step). */
static int eval_and_check_stop(model *m, const task_def *t, const run_spec *s, int step, int *x, int *y,
                               int vocab_out, sb_db *db, int64_t run_id, progress *prog, int *db_failed)
{
    if (!evaluate_grid(m, t, s, step, x, y, vocab_out, db, run_id, prog, db_failed) || step == s->train.steps)
        return 0;
    progress_log(prog, "  early stop at step %d: every length reached scaled accuracy %.3f", step, s->eval.target);
    return 1;
}

/* The checkpoint of the run at `step`, after its buffered curve rows went
 * to the database (the checkpoint carries the rows up to its step).
 * Returns 0, or -1 with the reason in err. */
static int save_checkpoint(const char *path, const char *hash, model *m, int step, int eval_pending,
                           double train_seconds, sb_db *db, int64_t run_id, db_curve_row *curves,
                           int *ncurves, char *err, size_t errlen)
{
    if (db_add_curves(db, run_id, curves, *ncurves) != 0) {
        snprintf(err, errlen, "writing results failed: %s", db_errmsg(db));
        return -1;
    }
    *ncurves = 0;
    checkpoint_state st = {.step = step, .eval_pending = eval_pending, .train_seconds = train_seconds};
    int rc = checkpoint_rows_read(db, run_id, &st, err, errlen);
    if (rc == 0) rc = checkpoint_save(path, hash, m, &st, err, errlen);
    checkpoint_state_free(&st);
    return rc;
}

/* Puts m and st where the run's checkpoint left them, if it has a usable
 * one (else notes why not and leaves both fresh), and makes the database
 * rows of the run those of the checkpoint (none for a fresh start).
 * Returns 0, or -1 with the reason in err. */
static int resume(const char *path, const char *hash, model *m, checkpoint_state *st, sb_db *db, int64_t run_id,
                  progress *prog, char *err, size_t errlen)
{
    int rc = path ? checkpoint_load(path, hash, m, st, err, errlen) : CKPT_NONE;
    if (rc == CKPT_READ_FAILED) return -1;
    if (rc == CKPT_UNUSABLE) {
        progress_log(prog, "  ignoring checkpoint %s: %s; starting at step 0", path, err);
        err[0] = '\0';
    }
    if (rc == CKPT_LOADED)
        progress_log(prog, "  resuming at step %lld from checkpoint %s", (long long)st->step, path);
    if (checkpoint_rows_restore(db, run_id, st, err, errlen) != 0) return -1;
    if (db_prune_eval_metrics(db, run_id) != 0) {
        snprintf(err, errlen, "%s", db_errmsg(db));
        return -1;
    }
    return 0;
}

void train_run(const run_spec *s, sb_db *db, int64_t run_id, progress *prog, run_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->status = "failed";
    const task_def *t = task_get(s->task.task);
    model_config cfg;
    model_config_for(s, t, &cfg);

    double need = (double)model_memory_estimate(&cfg);
    char what[128];
    double have = memory_limit(what, sizeof what);
    if (have < 0) {
        snprintf(out->error, sizeof out->error,
                 "STATEBENCH_MEMORY_LIMIT: '%s' is not a positive byte count; allowed: bytes or a number with a "
                 "K, M, G or T suffix, e.g. 512M", getenv("STATEBENCH_MEMORY_LIMIT"));
        return;
    }
    if (have > 0 && need > have) {
        snprintf(out->error, sizeof out->error,
                 "refused before starting: the model needs an estimated %.3f GiB (batch %d, length %d) but %s "
                 "%.3f GiB; lower train.batch, eval.batch or the lengths",
                 need / 1073741824.0, cfg.max_batch, cfg.max_len, what, have / 1073741824.0);
        return;
    }
    size_t device_free = 0, device_total = 0;
    if (ops_memory_info(&device_free, &device_total) == 0 && need + DEVICE_RESERVE > (double)device_free) {
        snprintf(out->error, sizeof out->error,
                 "refused before starting: the model needs an estimated %.3f GiB of GPU memory (batch %d, length "
                 "%d) and %.3f GiB of headroom, but GPU 0 has %.3f GiB free of %.3f GiB; lower train.batch, "
                 "eval.batch or the lengths, or run it with --device cpu",
                 need / 1073741824.0, cfg.max_batch, cfg.max_len, DEVICE_RESERVE / 1073741824.0,
                 (double)device_free / 1073741824.0, (double)device_total / 1073741824.0);
        return;
    }
    ops_set_precision(s->train.precision == PRECISION_TF32   ? OPS_TF32
                      : s->train.precision == PRECISION_BF16 ? OPS_BF16
                                                             : OPS_FP32);
    model *m = model_create(&cfg, s->seed, out->error, sizeof out->error);
    if (!m) return;
    size_t tokens = (size_t)cfg.max_batch * (size_t)cfg.max_len;
    int *x = malloc(tokens * sizeof *x), *y = malloc(tokens * sizeof *y);
    int cap = 256, ncurves = 0;
    db_curve_row *curves = malloc((size_t)cap * sizeof *curves);
    char hash[33];
    spec_hash(s, hash);
    char *ckpt = checkpoint_path(db, hash);
    checkpoint_state resumed = {0};
    if (!x || !y || !curves) {
        snprintf(out->error, sizeof out->error, "out of memory for the batch buffers");
        goto cleanup;
    }
    if (resume(ckpt, hash, m, &resumed, db, run_id, prog, out->error, sizeof out->error) != 0) goto cleanup;
    char note[1024];
    if (t->run_note && t->run_note(&s->task, note, sizeof note)) progress_log(prog, "  note: %s", note);
    if (s->train.precision == PRECISION_TF32 && ops_get_backend() != OPS_CUDA)
        progress_log(prog, "  note: train.precision tf32 asks for TF32 gemms on the GPU; the CPU computes fp32");

    int db_failed = 0, stopped_early = 0;
    double train_time = resumed.train_seconds;
    int step = (int)resumed.step;
    out->steps_done = step;
    if (resumed.eval_pending)
        stopped_early = eval_and_check_stop(m, t, s, step, x, y, cfg.vocab_out, db, run_id, prog, &db_failed);
    /* On the GPU the step only queues work (replaying the step's CUDA graph
     * once captured: model_train_step); the host waits for the device
     * where it reads the step's metrics: on curve rows, evaluations,
     * checkpoints, a stop signal and the last step (metrics_due). The CPU
     * reads them at every step. Between reads the progress line shows the
     * last ones read; tokens/s is over the steps since the last read. */
    const int read_every_step = ops_get_backend() != OPS_CUDA;
    double loss = 0, acc = 0, gnorm = 0, tps = 0, span_seconds = 0, span_tokens = 0;
    for (step++; step <= s->train.steps && !stopped_early && !db_failed; step++) {
        double ts = now_seconds();
        int L = task_train_batch(t, &s->task, s->seed, (uint64_t)(step - 1), s->train.batch, x, y);
        double lr = lr_schedule(s->train.lr, s->train.warmup, s->train.steps, s->train.min_lr_ratio, step);
        model_train_step(m, x, y, s->train.batch, L, lr, s->train.beta1, s->train.beta2, s->train.eps,
                         s->train.weight_decay, s->train.grad_clip, step);
        const char *no_graph = model_graph_failure(m);
        if (no_graph) progress_log(prog, "  note: the training step runs uncaptured (no CUDA graph): %s", no_graph);
        const int read = read_every_step || metrics_due(s, step);
        model_step_stats st = {0};
        if (read) model_step_read(m, &st);
        if (diverged(&st, out)) {
            train_time += now_seconds() - ts;
            break;
        }
        if (read) {
            int64_t correct = 0, scored = 0, sc = 0, ss = 0;
            score_batch(t, s, SPLIT_TRAIN, (uint64_t)(step - 1) * (uint64_t)s->train.batch, x,
                        model_predictions(m), y, s->train.batch, L, &correct, &scored, &sc, &ss, NULL);
            loss = st.loss;
            gnorm = st.grad_norm;
            acc = scored ? (double)correct / (double)scored : 0;
        }
        double dt = now_seconds() - ts;
        train_time += dt;
        span_seconds += dt;
        span_tokens += (double)s->train.batch * L;
        if (read) {
            tps = span_seconds > 0 ? span_tokens / span_seconds : 0;
            span_seconds = span_tokens = 0;
        }
        out->steps_done = step;
        if (read && (step % s->train.log_every == 0 || step == s->train.steps)) {
            if (ncurves == cap) {
                if (db_add_curves(db, run_id, curves, ncurves) != 0) db_failed = 1;
                ncurves = 0;
            }
            curves[ncurves++] = (db_curve_row){.step = step, .loss = loss, .acc = acc, .lr = lr,
                                               .grad_norm = gnorm, .tokens_per_s = tps};
        }
        progress_step(prog, step, loss, acc, tps);
        if (train_stop_signal) {
            if (!read) { /* the signal came after metrics_due looked */
                model_step_read(m, &st);
                if (diverged(&st, out)) break;
            }
            /* the step's evaluation, when due, is left to the resumed run */
            char why[400] = "";
            if (ckpt && save_checkpoint(ckpt, hash, m, step, eval_due(s, step), train_time, db, run_id, curves,
                                        &ncurves, why, sizeof why) != 0)
                progress_log(prog, "  warning: no checkpoint at step %d: %s", step, why);
            out->status = "interrupted";
            snprintf(out->error, sizeof out->error, "stopped by signal %d at step %d%s%s", (int)train_stop_signal,
                     step, why[0] ? "; no checkpoint: " : "", why);
            break;
        }
        if (eval_due(s, step)) {
            if (db_add_curves(db, run_id, curves, ncurves) != 0) db_failed = 1;
            ncurves = 0;
            if (eval_and_check_stop(m, t, s, step, x, y, cfg.vocab_out, db, run_id, prog, &db_failed)) {
                stopped_early = 1;
                break;
            }
        }
        if (ckpt && s->train.checkpoint_every > 0 && step % s->train.checkpoint_every == 0 &&
            step < s->train.steps && !db_failed) {
            char why[512];
            if (save_checkpoint(ckpt, hash, m, step, 0, train_time, db, run_id, curves, &ncurves, why,
                                sizeof why) != 0)
                progress_log(prog, "  warning: no checkpoint at step %d: %s", step, why);
        }
    }
    if (ncurves && db_add_curves(db, run_id, curves, ncurves) != 0) db_failed = 1;
    out->train_seconds = train_time;
    if (db_failed) {
        out->status = "failed";
        snprintf(out->error, sizeof out->error, "writing results failed: %s", db_errmsg(db));
    } else if (step > s->train.steps || stopped_early) {
        out->status = "done";
        char *weights = weights_path(db, hash), *json = spec_to_json(s);
        if (weights && weights_save(weights, hash, json, out->steps_done, m, out->error, sizeof out->error) != 0)
            out->status = "failed";
        free(weights);
        free(json);
    }
cleanup:
    checkpoint_state_free(&resumed);
    free(ckpt);
    free(x);
    free(y);
    free(curves);
    model_free(m);
}
