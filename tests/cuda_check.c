/* cuda_check.c: the cross-backend test kit (see cuda_check.h). */
#include "cuda_check.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/ops_cuda.h"
#include "../kernels/device.h"
#include "support.h"

#define GUARD 64 /* elements of guard on each side of every tensor */

int xt_side;

static const unsigned char guard_byte = 0xA5; /* float 0xA5A5A5A5: no op writes it */

/* Criterion reports a fatal assertion in a suite's .init as a crash, not
 * a failure: the check is non-fatal, and the test's first use of the GPU
 * (cuda_backend) ends it. */
void xt_require_gpu(void)
{
    if (ops_set_backend(OPS_CUDA) == 0) {
        ops_set_backend(OPS_CPU);
        return;
    }
    char reason[256] = "";
    cuda_device_count(reason, sizeof reason);
    cr_expect_fail("no CUDA device (%s): the cross-backend tests need a GPU", reason);
}

void xt_cuda_backend(void)
{
    if (ops_set_backend(OPS_CUDA) != 0) cr_assert_fail("no CUDA device: the CUDA backend cannot start");
}

int xt_emulated(void)
{
    static int emulated = -1;
    if (emulated < 0) {
        char name[512] = "";
        emulated = cuda_device_count(NULL, 0) > 0 &&
                   (cuda_device_describe(0, name, sizeof name), strstr(name, "emulat") != NULL);
    }
    return emulated;
}

double xt_tol_gemm(double tol)
{
    return cuda_ops_tf32() && tol < XT_TOL_TF32 ? XT_TOL_TF32 : tol;
}

void xt_use_side(void)
{
    if (xt_side) xt_cuda_backend();
    else ops_set_backend(OPS_CPU);
}

/* Allocates both sides, guards set, elements from values (n * elem bytes). */
static xt make(size_t n, size_t elem, const void *values)
{
    xt t = {.n = n, .elem = elem};
    const size_t bytes = (n + 2 * GUARD) * elem;
    t.host = malloc(bytes);
    cr_assert_not_null(t.host);
    memset(t.host, guard_byte, bytes);
    memcpy(t.host + GUARD * elem, values, n * elem);
    xt_cuda_backend();
    t.dev = ops_alloc(bytes);
    cr_assert_not_null(t.dev, "out of device memory for %zu bytes", bytes);
    ops_upload(t.dev, t.host, bytes);
    ops_set_backend(xt_side ? OPS_CUDA : OPS_CPU);
    return t;
}

static xt make_floats(size_t n, float *values)
{
    xt t = make(n, sizeof(float), values);
    free(values);
    return t;
}

static float *floats(size_t n)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    cr_assert_not_null(v);
    return v;
}

xt xt_rand(size_t n, double lo, double hi, uint64_t seed)
{
    float *v = floats(n);
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * rand_uniform(&state));
    return make_floats(n, v);
}

xt xt_fill(size_t n, float value)
{
    float *v = floats(n);
    for (size_t i = 0; i < n; i++) v[i] = value;
    return make_floats(n, v);
}

xt xt_poison(size_t n)
{
    return xt_fill(n, NAN);
}

xt xt_ints(const int *values, size_t n)
{
    return make(n, sizeof(int), values);
}

void xt_free(xt *t)
{
    free(t->host);
    ops_set_backend(OPS_CUDA);
    ops_free(t->dev);
    ops_set_backend(xt_side ? OPS_CUDA : OPS_CPU);
    memset(t, 0, sizeof *t);
}

void *xt_ptr(const xt *t)
{
    return (xt_side ? t->dev : t->host) + GUARD * t->elem;
}

static void expect_guards(const char *what, const char *side, const unsigned char *buf, const xt *t)
{
    const size_t g = GUARD * t->elem, body = t->n * t->elem;
    for (size_t i = 0; i < g; i++) {
        cr_assert_eq(buf[i], guard_byte, "%s (%s): the op wrote before the tensor (byte %zd)", what, side,
                     (ptrdiff_t)i - (ptrdiff_t)g);
        cr_assert_eq(buf[g + body + i], guard_byte, "%s (%s): the op wrote past the tensor (byte %zu after it)",
                     what, side, i);
    }
}

void xt_expect_close(const char *what, const float *gpu, const float *cpu, size_t n, double tol)
{
    double err = 0, ref = 0, worst = 0;
    size_t worst_at = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(cpu[i]), "%s: CPU element %zu is %f (the test's inputs or the CPU op are wrong)",
                  what, i, (double)cpu[i]);
        if (!isfinite(gpu[i])) {
            cr_assert_fail("%s: GPU element %zu is %f (unwritten elements stay NaN), CPU %.9g", what, i,
                           (double)gpu[i], (double)cpu[i]);
        }
        const double d = (double)gpu[i] - cpu[i];
        err += d * d;
        ref += (double)cpu[i] * cpu[i];
        if (fabs(d) > worst) {
            worst = fabs(d);
            worst_at = i;
        }
    }
    const double nmse = ref > 0 ? err / ref : err;
    if (nmse <= tol) return;
    for (size_t i = 0; i < n && shown < 5; i++) {
        const double d = fabs((double)gpu[i] - cpu[i]);
        if (d * d * (double)n > tol * (ref > 0 ? ref : 1)) {
            fprintf(stderr, "  %s[%zu]: GPU %.9g CPU %.9g\n", what, i, (double)gpu[i], (double)cpu[i]);
            shown++;
        }
    }
    cr_assert_fail("%s: normalised MSE %.3g > tolerance %.3g over %zu elements; max |error| %.3g at %zu "
                   "(GPU %.9g, CPU %.9g)", what, nmse, tol, n, worst, worst_at, (double)gpu[worst_at],
                   (double)cpu[worst_at]);
}

void xt_expect(const char *what, const xt *t, double tol)
{
    const size_t bytes = (t->n + 2 * GUARD) * t->elem;
    unsigned char *gpu = malloc(bytes);
    cr_assert_not_null(gpu);
    xt_cuda_backend();
    ops_download(gpu, t->dev, bytes);
    ops_set_backend(xt_side ? OPS_CUDA : OPS_CPU);
    expect_guards(what, "CPU", t->host, t);
    expect_guards(what, "GPU", gpu, t);
    xt_expect_close(what, (const float *)(gpu + GUARD * t->elem), (const float *)(t->host + GUARD * t->elem), t->n,
                 tol);
    free(gpu);
}
