/* mqar.c: multi-query associative recall (TASKS.md "mqar"; Arora et al.
 * 2023, Zoology): N key-value pairs, written num_passes times ("Just read
 * twice", Arora et al. 2024), then each key queried once at a gap drawn
 * without replacement from a power law. */
#include "task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The context (the pairs, num_passes times) takes 2 N P tokens and the
 * queries need N of the (n - 2 N P) / 2 gap slots: n >= 2 N (P + 1). */
static int mqar_length_rule(const task_spec *p, int n, char *err, size_t errlen)
{
    long long per_pair = 2 * ((long long)p->num_passes + 1);
    if ((long long)n >= per_pair * p->kv_pairs) return 0;
    char passes[64] = "", rule[64] = "4 * kv_pairs";
    if (p->num_passes != 1) {
        snprintf(passes, sizeof passes, " with num_passes = %d", p->num_passes);
        snprintf(rule, sizeof rule, "2 * kv_pairs * (num_passes + 1)");
    }
    long long fit = n / per_pair;
    if (fit >= 1)
        snprintf(err, errlen, "mqar: n = %d is too short for kv_pairs = %d%s: need n >= %lld (%s), "
                 "or kv_pairs <= %lld at this n", n, p->kv_pairs, passes, per_pair * p->kv_pairs, rule, fit);
    else
        snprintf(err, errlen, "mqar: n = %d is too short for kv_pairs = %d%s: need n >= %lld (%s); "
                 "no kv_pairs fits below n = %lld", n, p->kv_pairs, passes, per_pair * p->kv_pairs, rule, per_pair);
    return -1;
}

static int mqar_validate(const task_spec *p, char *err, size_t errlen)
{
    if (p->kv_pairs < 1) {
        snprintf(err, errlen, "mqar: kv_pairs = %d; need kv_pairs >= 1", p->kv_pairs);
        return -1;
    }
    /* keys come from [1, V/2): V/2 - 1 >= N */
    if (p->vocab / 2 - 1 < p->kv_pairs) {
        snprintf(err, errlen, "mqar: vocab = %d is too small for kv_pairs = %d: need vocab >= %lld "
                 "(kv_pairs distinct keys from [1, vocab/2))",
                 p->vocab, p->kv_pairs, 2 * (long long)p->kv_pairs + 2);
        return -1;
    }
    if (!isfinite(p->power_a)) {
        snprintf(err, errlen, "mqar: power_a = %g; need a finite number", p->power_a);
        return -1;
    }
    if (p->num_passes < 1) {
        snprintf(err, errlen, "mqar: num_passes = %d; need num_passes >= 1", p->num_passes);
        return -1;
    }
    if (p->random_fill != 0 && p->random_fill != 1) {
        snprintf(err, errlen, "mqar: random_fill = %d; allowed: false, true", p->random_fill);
        return -1;
    }
    return task_validate_lengths("mqar", p, mqar_length_rule, err, errlen);
}

static int mqar_vocab(const task_spec *p) { return p->vocab; }
static double mqar_chance(const task_spec *p) { return 2.0 / p->vocab; }
static int mqar_seq_len(const task_spec *p, int n) { return n; }

/* Inserts v (>= 0) into an open-addressing set of mask + 1 slots (-1 =
 * empty, at most half full). Returns 1 if v was new, 0 if already there. */
static int set_insert(int *table, size_t mask, int v)
{
    size_t h = (size_t)(((uint64_t)v * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
    while (table[h] != -1) {
        if (table[h] == v) return 0;
        h = (h + 1) & mask;
    }
    table[h] = v;
    return 1;
}

/* Writes `count` distinct ids from [lo, lo + range) to out[0], out[stride],
 * ..., every ordered tuple equally likely: Floyd's algorithm picks a uniform
 * set, a Fisher-Yates shuffle a uniform order. table has mask + 1 >= 2 count
 * slots of scratch. */
static void draw_distinct(task_rng *r, int lo, int range, int count, int *out, int stride,
                          int *table, size_t mask)
{
    for (size_t i = 0; i <= mask; i++) table[i] = -1;
    for (int i = 0, j = range - count; j < range; i++, j++) {
        int v = (int)task_rng_below(r, (uint64_t)j + 1);
        if (!set_insert(table, mask, v)) {
            v = j; /* Floyd: j itself cannot be in the set yet */
            set_insert(table, mask, v);
        }
        out[(size_t)i * stride] = lo + v;
    }
    for (int i = count - 1; i > 0; i--) {
        int k = (int)task_rng_below(r, (uint64_t)i + 1);
        int tmp = out[(size_t)i * stride];
        out[(size_t)i * stride] = out[(size_t)k * stride];
        out[(size_t)k * stride] = tmp;
    }
}

typedef struct { double time; int gap; } arrival;

/* Sifts heap[i] down in a max-heap (by time) of `size` arrivals. */
static void sift_down(arrival *heap, int size, int i)
{
    for (;;) {
        int largest = i, l = 2 * i + 1, rgt = l + 1;
        if (l < size && heap[l].time > heap[largest].time) largest = l;
        if (rgt < size && heap[rgt].time > heap[largest].time) largest = rgt;
        if (largest == i) return;
        arrival tmp = heap[i];
        heap[i] = heap[largest];
        heap[largest] = tmp;
        i = largest;
    }
}

/* Draws `count` gaps without replacement from [0, n_gaps) with P(g) prop. to
 * (g+1)^(power_a - 1), in the order of sequential draws, into gaps[].
 * Exponential race (Efraimidis and Spirakis 2006): gap g arrives at E_g / w_g
 * with E_g ~ Exp(1); the order of the first `count` arrivals has exactly the
 * law of drawing one gap at a time with probability w_g / (sum of the weights
 * left). Times are compared as logs, so any finite power_a is safe.
 * O(n_gaps log count); heap is scratch for `count` arrivals. */
static void draw_gaps(task_rng *r, int n_gaps, int count, double power_a, arrival *heap,
                      int *gaps)
{
    int size = 0;
    for (int g = 0; g < n_gaps; g++) {
        /* u in (0, 1): 53 random bits, centred, so log(u) and log(E) are finite */
        double u = ((double)(task_rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
        double time = log(-log(u)) + (1.0 - power_a) * log((double)g + 1.0);
        if (size < count) {
            heap[size++] = (arrival){time, g};
            if (size == count)
                for (int i = count / 2 - 1; i >= 0; i--) sift_down(heap, count, i);
        } else if (time < heap[0].time) {
            heap[0] = (arrival){time, g};
            sift_down(heap, count, 0);
        }
    }
    /* heap sort: the latest arrival goes last */
    for (int end = count - 1; end >= 0; end--) {
        gaps[end] = heap[0].gap;
        heap[0] = heap[end];
        sift_down(heap, end, 0);
    }
}

/* x = the pairs k1 v1 ... kN vN, num_passes times in the same order (so
 * the context is C = 2 N num_passes tokens), then zeros (or uniform ids)
 * where key i reappears at C + 2 g_i with y = v_i there. Random draws, in
 * this order (part of the generator version): keys, values, fillers
 * (random_fill only), gaps; num_passes = 1 is the single-pass task. */
static void mqar_generate(const task_spec *p, uint64_t seed, int split, int n, uint64_t index,
                          int *x, int *y)
{
    int N = p->kv_pairs, V = p->vocab, context = 2 * p->kv_pairs * p->num_passes;
    size_t slots = 1;
    while (slots < 2 * (size_t)N) slots *= 2;
    int *table = malloc(slots * sizeof *table);
    arrival *heap = malloc((size_t)N * sizeof *heap);
    int *gaps = malloc((size_t)N * sizeof *gaps);
    if (!table || !heap || !gaps) {
        fprintf(stderr, "statebench: out of memory generating mqar (kv_pairs = %d)\n", N);
        exit(EXIT_FAILURE);
    }
    task_rng r;
    task_rng_init(&r, task_seed(seed, split, n, index, TASK_STREAM_EXAMPLE));
    draw_distinct(&r, 1, V / 2 - 1, N, x, 2, table, slots - 1);
    draw_distinct(&r, V / 2, V - V / 2, N, x + 1, 2, table, slots - 1);
    for (int t = 2 * N; t < context; t++) x[t] = x[t - 2 * N];
    for (int t = context; t < n; t++)
        x[t] = p->random_fill ? (int)task_rng_below(&r, (uint64_t)V) : 0;
    for (int t = 0; t < n; t++) y[t] = -1;
    draw_gaps(&r, (n - context) / 2, N, p->power_a, heap, gaps);
    for (int i = 0; i < N; i++) {
        int pos = context + 2 * gaps[i];
        x[pos] = x[2 * i];
        y[pos] = x[2 * i + 1];
    }
    free(table);
    free(heap);
    free(gaps);
}

/* Zoology's grid pairs (n, N) = (64, 4), (128, 8), ...; we keep the default
 * N = 8 and train at its shortest length, n = 64 (24 candidate gaps for 8
 * queries), then test the same 8 pairs at 2x and 4x the length, where the
 * queries can sit up to 4x farther from their pairs. */
static void mqar_default_protocol(task_spec *p)
{
    static const int eval[] = {64, 128, 256};
    p->train_min = 64;
    p->train_max = 64;
    p->n_eval = (int)(sizeof eval / sizeof eval[0]);
    for (int i = 0; i < p->n_eval; i++) p->eval_len[i] = eval[i];
}

/* The pairs in order (and how often they are written), then each query:
 * position, key -> expected value. */
static void mqar_print_text(FILE *out, const task_spec *p, int n, const int *x, const int *y)
{
    fputs("pairs:  ", out);
    for (int i = 0; i < p->kv_pairs; i++) fprintf(out, " %d->%d", x[2 * i], x[2 * i + 1]);
    fprintf(out, "\npasses:  %d (the pairs fill x[0..%d])", p->num_passes, 2 * p->kv_pairs * p->num_passes - 1);
    fputs("\nqueries:", out);
    for (int t = 0; t < n; t++)
        if (y[t] >= 0) fprintf(out, " @%d %d->%d", t, x[t], y[t]);
    fprintf(out, "\nfiller: %s\n", p->random_fill ? "uniform ids in [0, vocab)" : "0");
}

const task_def task_mqar = {
    .name = "mqar",
    .summary = "multi-query associative recall: kv_pairs key-value pairs, then each key queried once",
    .version = 1,
    .validate = mqar_validate,
    .vocab_in = mqar_vocab,
    .vocab_out = mqar_vocab,
    .chance = mqar_chance,
    .seq_len = mqar_seq_len,
    .generate = mqar_generate,
    .default_protocol = mqar_default_protocol,
    .print_text = mqar_print_text,
};
