/* test_tasks_mqar_passes.c: mqar's num_passes (the "Just read twice"
 * repeat, Arora et al. 2024; Zoology's multiquery_ar num_passes) checked
 * by structure written here: the pairs block k1 v1 .. kN vN written P
 * times in the same order, then the queries at C + 2g (C = 2 N P) with g
 * below (n - C) / 2, each key once with its value as target; its bounds
 * and length rule; and what `tasks show` prints. Seeds are fixed and
 * printed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/options.h"
#include "support_tasks.h"

/* Every invariant of one example with P passes. */
static void check_passes(const task_spec *p, int n, const int *x, const int *y, const char *where)
{
    int N = p->kv_pairs, V = p->vocab, P = p->num_passes, C = 2 * N * P, slots = (n - C) / 2;
    for (int i = 0; i < N; i++) {
        cr_assert(x[2 * i] >= 1 && x[2 * i] < V / 2, "%s: key %d = %d", where, i, x[2 * i]);
        cr_assert(x[2 * i + 1] >= V / 2 && x[2 * i + 1] < V, "%s: value %d = %d", where, i, x[2 * i + 1]);
        for (int j = 0; j < i; j++)
            cr_assert(x[2 * i] != x[2 * j] && x[2 * i + 1] != x[2 * j + 1], "%s: pairs %d and %d repeat an id",
                      where, j, i);
    }
    for (int pass = 1; pass < P; pass++)
        for (int j = 0; j < 2 * N; j++)
            cr_assert_eq(x[pass * 2 * N + j], x[j], "%s: pass %d differs from pass 0 at offset %d (x[%d] = %d, want %d)",
                         where, pass, j, pass * 2 * N + j, x[pass * 2 * N + j], x[j]);
    for (int t = 0; t < C; t++) cr_assert_eq(y[t], -1, "%s: y[%d] scored inside the context", where, t);
    char seen[64] = {0};
    int queries = 0;
    for (int t = C; t < n; t++) {
        if (y[t] < 0) {
            if (p->random_fill) cr_assert(x[t] >= 0 && x[t] < V, "%s: filler x[%d] = %d", where, t, x[t]);
            else cr_assert_eq(x[t], 0, "%s: filler x[%d] = %d, want 0", where, t, x[t]);
            continue;
        }
        cr_assert((t - C) % 2 == 0 && (t - C) / 2 < slots, "%s: query at %d is not C + 2g with g < %d (C = %d)",
                  where, t, slots, C);
        int key = -1;
        for (int i = 0; i < N; i++)
            if (x[2 * i] == x[t]) key = i;
        cr_assert_geq(key, 0, "%s: query x[%d] = %d is no key", where, t, x[t]);
        cr_assert(!seen[key], "%s: key %d queried twice", where, key);
        seen[key] = 1;
        cr_assert_eq(y[t], x[2 * key + 1], "%s: y[%d] = %d, want value %d", where, t, y[t], x[2 * key + 1]);
        queries++;
    }
    cr_assert_eq(queries, N, "%s: %d queries, want %d", where, queries, N);
}

Test(tasks_mqar_passes, pairs_repeated_then_queried)
{
    /* (vocab, kv_pairs, num_passes, n, random_fill): the tightest n =
     * 2N(P+1) (every slot a query), odd n, random fill, many passes. */
    static const int cases[][5] = {
        {64, 4, 2, 24, 0}, {64, 4, 2, 25, 1}, {64, 4, 3, 64, 0}, {8192, 8, 2, 128, 1},
        {16, 1, 7, 16, 0}, {32, 8, 1, 32, 0}, {256, 16, 4, 257, 1},
    };
    const task_def *t = tt_task("mqar");
    int *x = tt_ints(512), *y = tt_ints(512);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        task_spec p = tt_defaults("mqar");
        p.vocab = cases[c][0];
        p.kv_pairs = cases[c][1];
        p.num_passes = cases[c][2];
        int n = cases[c][3];
        p.random_fill = cases[c][4];
        tt_at_length(&p, n);
        tt_expect_valid(t, &p);
        for (int split = 0; split < 2; split++)
            for (uint64_t i = 0; i < 100; i++) {
                char where[160];
                snprintf(where, sizeof where, "mqar V=%d N=%d P=%d n=%d fill=%d seed 9 split %d index %llu", p.vocab,
                         p.kv_pairs, p.num_passes, n, p.random_fill, split, (unsigned long long)i);
                t->generate(&p, 9, split, n, i, x, y);
                check_passes(&p, n, x, y, where);
            }
    }
    free(x);
    free(y);
}

Test(tasks_mqar_passes, every_gap_slot_is_reachable)
{
    /* N = 2, P = 2, n = 20: C = 8 and 6 gap slots; over 3000 examples
     * every slot holds a query (at power_a 0.01 the rarest slot has
     * probability ~0.15 per example). */
    const task_def *t = tt_task("mqar");
    task_spec p = tt_defaults("mqar");
    p.vocab = 64;
    p.kv_pairs = 2;
    p.num_passes = 2;
    tt_at_length(&p, 20);
    int x[20], y[20];
    long hits[6] = {0};
    for (uint64_t i = 0; i < 3000; i++) {
        t->generate(&p, 12, SPLIT_TRAIN, 20, i, x, y);
        for (int g = 0; g < 6; g++) hits[g] += y[8 + 2 * g] >= 0;
    }
    for (int g = 0; g < 6; g++) cr_expect_gt(hits[g], 100, "seed 12: gap slot %d held %ld queries of 3000", g, hits[g]);
}

Test(tasks_mqar_passes, bounds_and_length_rule)
{
    run_spec s;
    spec_defaults(&s, task_index("mqar"));
    cr_expect_eq(s.task.num_passes, 1, "the default is one pass, the task of Zoology");
    char err[512];
    cr_expect_eq(options_set(&s, "task.num_passes", "0", err, sizeof err), -1);
    cr_expect(strstr(err, "1..256") != NULL, "%s", err);
    cr_expect_eq(options_set(&s, "task.num_passes", "257", err, sizeof err), -1);
    cr_expect_eq(options_set(&s, "task.num_passes", "3", err, sizeof err), 0, "%s", err);

    const task_def *t = tt_task("mqar");
    task_spec p = s.task;
    p.kv_pairs = 4;
    tt_at_length(&p, 32); /* 2 * 4 * (3 + 1) */
    tt_expect_valid(t, &p);
    tt_at_length(&p, 31);
    tt_expect_invalid(t, &p, "need n >= 32 (2 * kv_pairs * (num_passes + 1))", "kv_pairs <= 3 at this n");
    p.kv_pairs = 1;
    tt_at_length(&p, 7);
    tt_expect_invalid(t, &p, "need n >= 8", "no kv_pairs fits below n = 8");
}

Test(tasks_mqar_passes, show_text_says_how_often_the_pairs_are_written)
{
    char *argv[] = {"tasks", "show", "mqar", "--n", "24", "--count", "1", "--set", "vocab=64",
                    "--set", "kv_pairs=2", "--set", "num_passes=3", "--format", "text"};
    tt_captured c = tt_run_tasks(15, argv);
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect(strstr(c.out, "passes:  3 (the pairs fill x[0..11])") != NULL, "%s", c.out);
    tt_captured_free(&c);
    char *bad[] = {"tasks", "show", "mqar", "--n", "23", "--set", "vocab=64", "--set", "kv_pairs=2",
                   "--set", "num_passes=5"};
    c = tt_run_tasks(11, bad);
    cr_expect_eq(c.rc, 2);
    cr_expect(strstr(c.err, "need n >= 24") != NULL, "%s", c.err);
    tt_captured_free(&c);
}
