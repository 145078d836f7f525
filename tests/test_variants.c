/* test_variants.c: config variants (`variants:` overrides of the base,
 * `--variant NAME`): what they change, how they are named and hashed, and
 * the errors for unknown variants and bad keys. Also loads every paper
 * config of configs/papers/ with and without its quick variant. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/commands.h"
#include "../harness/config.h"
#include "../harness/spec.h"
#include "../models/model.h"
#include "support_cmd.h"

typedef struct {
    char path[64];
    experiment exp;
    int rc;
    char err[1024];
} loaded;

static void load_variant(loaded *l, const char *text, const char *variant)
{
    memset(l, 0, sizeof *l);
    snprintf(l->path, sizeof l->path, "/tmp/sb_test_variants_XXXXXX.yaml");
    int fd = mkstemps(l->path, 5);
    cr_assert(fd >= 0, "mkstemps failed");
    size_t len = strlen(text);
    cr_assert(write(fd, text, len) == (ssize_t)len);
    close(fd);
    l->rc = config_load_variant(l->path, variant, &l->exp, NULL, l->err, sizeof l->err);
    unlink(l->path);
}

static void unload(loaded *l)
{
    if (l->rc == 0) experiment_free(&l->exp);
}

/* "PATH:LINE:COL: " of the first occurrence of needle in text. */
static void location_of(const loaded *l, const char *text, const char *needle, char *out, size_t outlen)
{
    const char *p = strstr(text, needle);
    cr_assert(p, "test bug: '%s' not in the config", needle);
    int line = 1, col = 1;
    for (const char *q = text; q < p; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(out, outlen, "%s:%d:%d: ", l->path, line, col);
}

static void expect_error_at(const char *text, const char *variant, const char *at, const char *want)
{
    loaded l;
    load_variant(&l, text, variant);
    cr_assert_eq(l.rc, -1, "expected an error (variant %s) for:\n%s", variant ? variant : "(none)", text);
    char prefix[128];
    location_of(&l, text, at, prefix, sizeof prefix);
    cr_expect(strncmp(l.err, prefix, strlen(prefix)) == 0, "error '%s' does not start with '%s'", l.err, prefix);
    cr_expect(strstr(l.err, want), "error '%s' lacks '%s'", l.err, want);
    unload(&l);
}

static const char base_config[] =
    "name: exp\n"
    "seeds: [0, 1, 2]\n"
    "task:  {name: parity, train_len: [3, 40], eval_len: [40, 64, 128, 256]}\n"
    "model: {mixer: deltanet, layers: 2, d_model: 64, heads: 4}\n"
    "train: {steps: 3000, batch: 64, lr: 3.0e-3}\n"
    "sweep:\n"
    "  model.mixer: [deltanet, lstm, attention]\n"
    "  zip:\n"
    "    - {train.lr: [1.0e-3, 3.0e-3], train.warmup: [10, 20]}\n"
    "variants:\n"
    "  quick:\n"
    "    seeds: [5]\n"
    "    train.steps: 200\n"
    "    model.d_model: 32\n"
    "    task.eval_len: [40, 64]\n"
    "    sweep.model.mixer: [lstm]\n"
    "  wide:\n"
    "    sweep: {model.d_model: [16, 32, 48]}\n"
    "  onelr:\n"
    "    sweep.train.lr: [2.0e-3]\n"
    "    sweep.train.warmup: [30]\n";

Test(variants, base_ignores_the_variants)
{
    loaded l;
    load_variant(&l, base_config, NULL);
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_expect_str_eq(l.exp.name, "exp");
    cr_assert_eq(l.exp.count, 3 * 2 * 3, "3 mixers x 2 zip points x 3 seeds");
    for (int i = 0; i < l.exp.count; i++) {
        cr_expect_eq(l.exp.runs[i].train.steps, 3000);
        cr_expect_eq(l.exp.runs[i].model.d_model, 64);
        cr_expect_str_eq(l.exp.runs[i].experiment, "exp");
    }
    unload(&l);
}

Test(variants, quick_overrides_keys_seeds_and_an_axis)
{
    loaded l;
    load_variant(&l, base_config, "quick");
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_expect_str_eq(l.exp.name, "exp/quick");
    char stem[64];
    experiment_file_stem(&l.exp, stem, sizeof stem);
    cr_expect_str_eq(stem, "exp.quick");
    cr_assert_eq(l.exp.count, 1 * 2 * 1, "mixer axis [lstm] x 2 zip points x seeds [5]");
    for (int i = 0; i < l.exp.count; i++) {
        const run_spec *s = &l.exp.runs[i];
        cr_expect_eq(s->seed, 5);
        cr_expect_eq(s->train.steps, 200);
        cr_expect_eq(s->model.d_model, 32);
        cr_expect_eq(s->model.layers, 2, "not overridden: from the base");
        cr_expect_eq(s->model.mixer[0], mixer_find("lstm"));
        cr_expect_eq(s->task.n_eval, 2);
        cr_expect_eq(s->task.eval_len[1], 64);
        cr_expect_str_eq(s->experiment, "exp/quick");
    }
    cr_expect_eq(l.exp.runs[0].train.warmup, 10, "the zip group of the base still applies");
    cr_expect_eq(l.exp.runs[1].train.warmup, 20);
    unload(&l);
}

Test(variants, whole_sweep_replaced)
{
    loaded l;
    load_variant(&l, base_config, "wide");
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.exp.count, 3 * 3, "3 widths x 3 seeds; the base's axes are gone");
    for (int i = 0; i < l.exp.count; i++) {
        cr_expect_eq(l.exp.runs[i].model.d_model, 16 * (i / 3 + 1));
        cr_expect_eq(l.exp.runs[i].model.mixer[0], mixer_find("deltanet"), "the base mixer");
    }
    unload(&l);
}

Test(variants, zip_axes_replaced_together)
{
    loaded l;
    load_variant(&l, base_config, "onelr");
    cr_assert_eq(l.rc, 0, "%s", l.err);
    cr_assert_eq(l.exp.count, 3 * 1 * 3);
    for (int i = 0; i < l.exp.count; i++) {
        cr_expect_float_eq(l.exp.runs[i].train.lr, 2.0e-3, 1e-12);
        cr_expect_eq(l.exp.runs[i].train.warmup, 30);
    }
    unload(&l);
}

Test(variants, same_computation_same_hash_other_computation_other_hash)
{
    loaded base, quick;
    load_variant(&base, base_config, NULL);
    load_variant(&quick, base_config, "quick");
    cr_assert_eq(base.rc, 0, "%s", base.err);
    cr_assert_eq(quick.rc, 0, "%s", quick.err);
    for (int i = 0; i < quick.exp.count; i++) {
        char hq[33];
        spec_hash(&quick.exp.runs[i], hq);
        for (int j = 0; j < base.exp.count; j++) {
            char hb[33];
            spec_hash(&base.exp.runs[j], hb);
            cr_expect_str_neq(hq, hb, "quick run %d hashes like base run %d", i, j);
        }
    }
    unload(&base);
    unload(&quick);
    /* a variant that changes nothing computes the base's runs: same hashes, other name */
    static const char same[] = "name: e\ntask: {name: parity}\ntrain: {steps: 10}\nvariants: {again: {train.steps: 10}}\n";
    loaded a, b;
    load_variant(&a, same, NULL);
    load_variant(&b, same, "again");
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(b.rc, 0, "%s", b.err);
    char ha[33], hb[33];
    spec_hash(&a.exp.runs[0], ha);
    spec_hash(&b.exp.runs[0], hb);
    cr_expect_str_eq(ha, hb);
    cr_expect_str_eq(b.exp.name, "e/again");
    unload(&a);
    unload(&b);
}

Test(variants, unknown_variant_lists_the_variants)
{
    loaded l;
    load_variant(&l, base_config, "quik");
    cr_assert_eq(l.rc, -1);
    cr_expect(strstr(l.err, "--variant quik"), "%s", l.err);
    cr_expect(strstr(l.err, "allowed: quick, wide, onelr"), "%s", l.err);
    load_variant(&l, "name: e\ntask: {name: parity}\n", "quick");
    cr_assert_eq(l.rc, -1);
    cr_expect(strstr(l.err, "has no variants"), "%s", l.err);
}

/* A bad key is reported at its line whichever variant is asked for. */
Test(variants, bad_keys_reported_at_their_line)
{
    static const char bad_key[] =
        "name: e\ntask: {name: parity}\nvariants:\n  quick: {train.steps: 10}\n  other:\n    train.stpes: 5\n";
    expect_error_at(bad_key, NULL, "train.stpes", "did you mean 'train.steps'");
    expect_error_at(bad_key, "quick", "train.stpes", "variant other: unknown key 'train.stpes'");
    static const char bad_value[] = "name: e\ntask: {name: parity}\nvariants:\n  quick: {train.steps: -4}\n";
    expect_error_at(bad_value, "quick", "-4", "train.steps");
    static const char no_axis[] =
        "name: e\ntask: {name: parity}\nsweep: {model.mixer: [lstm]}\nvariants:\n  quick: {sweep.model.d_model: [8]}\n";
    expect_error_at(no_axis, "quick", "sweep.model.d_model", "allowed: sweep.model.mixer");
    static const char axis_as_key[] =
        "name: e\ntask: {name: parity}\nsweep: {model.mixer: [lstm]}\nvariants:\n  quick: {model.mixer: gru}\n";
    expect_error_at(axis_as_key, "quick", "model.mixer: gru", "sweep.model.mixer: [values]");
    static const char zip_len[] =
        "name: e\ntask: {name: parity}\nsweep:\n  zip: [{train.lr: [0.1, 0.2], train.warmup: [1, 2]}]\n"
        "variants:\n  quick: {sweep.train.lr: [0.3]}\n";
    expect_error_at(zip_len, "quick", "train.warmup", "zip group");
    static const char not_map[] = "name: e\ntask: {name: parity}\nvariants:\n  quick: [train.steps]\n";
    expect_error_at(not_map, NULL, "[train.steps]", "must be a mapping");
    static const char rename[] = "name: e\ntask: {name: parity}\nvariants:\n  quick: {name: other}\n";
    expect_error_at(rename, NULL, "name: other", "cannot be changed");
    static const char bad_name[] = "name: e\ntask: {name: parity}\nvariants:\n  \"a/b\": {train.steps: 5}\n";
    expect_error_at(bad_name, NULL, "\"a/b\"", "is not a word");
    static const char dup[] = "name: e\ntask: {name: parity}\nvariants:\n  q: {train.steps: 5, train.steps: 6}\n";
    expect_error_at(dup, NULL, "train.steps: 6", "duplicate key");
}

/* `statebench run --variant`: the dry run lists the variant's runs under its name; an unknown one exits 2. */
Test(variants, run_command_takes_variant)
{
    char dir[128], path[256], log[256];
    make_temp_dir(dir, sizeof dir, "sb_variants");
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    write_text(path, base_config);
    const char *ok[] = {"run", path, "--variant", "quick", "--dry-run", "--db", "x.db", NULL};
    snprintf(log, sizeof log, "%s/log", dir);
    char db[256];
    snprintf(db, sizeof db, "%s/x.db", dir);
    ok[6] = db;
    cr_assert_eq(run_command(log, cmd_run, ok), 0);
    char *out = read_text(log);
    cr_expect(strstr(out, "exp/quick: 2 runs"), "%s", out);
    free(out);
    const char *bad[] = {"run", path, "--variant", "nope", "--dry-run", "--db", db, NULL};
    cr_expect_eq(run_command(log, cmd_run, bad), 2);
    out = read_text(log);
    cr_expect(strstr(out, "allowed: quick, wide, onelr"), "%s", out);
    free(out);
    remove_temp_dir(dir);
}

/* Every paper config loads, with a quick variant much smaller than its full protocol. */
Test(variants, paper_configs_have_quick_variants)
{
    DIR *d = opendir("configs/papers");
    cr_assert(d, "configs/papers/ not found (run the tests from the repository root)");
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml")) continue;
        char path[512], err[1024];
        snprintf(path, sizeof path, "configs/papers/%s", e->d_name);
        experiment full, quick;
        cr_assert_eq(config_load_variant(path, NULL, &full, NULL, err, sizeof err), 0, "%s", err);
        cr_assert_eq(config_load_variant(path, "quick", &quick, NULL, err, sizeof err), 0, "%s", err);
        long long full_steps = 0, quick_steps = 0;
        for (int i = 0; i < full.count; i++) full_steps += full.runs[i].train.steps;
        for (int i = 0; i < quick.count; i++) quick_steps += quick.runs[i].train.steps;
        cr_expect_lt(quick_steps * 10, full_steps, "%s: quick (%lld steps) is not much smaller than the full "
                     "protocol (%lld)", path, quick_steps, full_steps);
        char want[300];
        snprintf(want, sizeof want, "%s/quick", full.name);
        cr_expect_str_eq(quick.name, want);
        experiment_free(&full);
        experiment_free(&quick);
        seen++;
    }
    closedir(d);
    cr_expect_geq(seen, 7, "expected the seven paper configs, found %d", seen);
}
