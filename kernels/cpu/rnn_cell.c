/* rnn_cell.c: CPU elman, gru, slstm and lstm over a sequence: slices of the batch run through all steps in parallel (per step one gemm per head for R h_{t-1}, then the pointwise cell); the backward gathers dR every DR_CHUNK steps in one gemm per head. */
#include <string.h>

#include "../ops.h"
#include "fast_math.h"
#include "gemm_tiled.h"

/* Sequences per slice: a slice's rows go through each step's gemm together
 * and the slices are spread over the threads. A fixed size (not B over the
 * thread count) keeps every gemm's shape, and so every result bit,
 * independent of the number of threads. */
#define RNN_SLICE 8
/* Below this many (batch x unit) elements the sequence runs on one thread:
 * the work is smaller than waking the team. */
#define RNN_PARALLEL_MIN 2048
/* Steps per dR product in the backward: a slice keeps the gradients of
 * R h_{t-1} (and the h_{t-1} they pair with) for DR_CHUNK steps, then adds
 * their product into its share of dR in one gemm of RNN_SLICE x DR_CHUNK
 * rows: large enough to run near the gemm's peak, small enough that the
 * scratch does not grow with T (lstm_scratch_len has no T). */
#define DR_CHUNK 16

typedef enum { CELL_ELMAN, CELL_GRU, CELL_SLSTM, CELL_LSTM } cell_kind;

static int cell_gates(cell_kind kind)
{
    return kind == CELL_ELMAN ? 1 : kind == CELL_GRU ? 3 : 4;
}

/* One call's tensors and shapes; the per-step functions below read the
 * rows of one sequence b at step t. Unused pointers are NULL. */
typedef struct {
    cell_kind kind;
    int B, T, d, H, G, Dh;
    real *h, *c, *n, *gates;        // (B,T,d) x3, (B,T,cache gates x d)
    const real *gx, *R;             // (B,T,G d) gate-major, (H, G Dh, Dh)
    real *rh;                       // forward (B, G d) head-major: R h_{t-1} of the step
                                    // (lstm: none, R h_{t-1} goes into the gates cache)
    real *m;                        // forward, slstm (B,d): the stabiliser m_{t-1}
    real *dgx, *dR;                 // like gx, R
    const real *dh;                 // (B,T,d)
    int K;                          // carried gradients: 1 (h), slstm 3 (h, c, n), lstm 2 (h, c)
    real *carry;                    // backward (B,K,d): gradients into h_t (c_t, n_t) from step t+1
    real *zeros;                    // (d): h, c and n before the first step
    real *slice_work;               // backward, per slice (slice_work_len): drh and h_{t-1} of
                                    // DR_CHUNK steps, then the slice's share of dR (H, G Dh, Dh)
} cell_call;

/* The stabiliser before the first step: so negative that m_1 = i~ and the
 * first forget gate exp(logsigmoid(f~) + m_0 - m_1) is 0, as c_0 = n_0 = 0
 * need nothing from it. */
#define SLSTM_M_START ((real)-1e30)

static size_t row(const cell_call *a, int b, int t) { return (size_t)b * a->T + t; }

/* The state row (d) of x at step t - 1 of sequence b: zeros before step 0.
 * With it (and R h_{-1} = 0 in rh) the pointwise loops have no branch on
 * t, so they vectorise. */
static const real *prev_row(const cell_call *a, const real *x, int b, int t)
{
    return t > 0 ? x + row(a, b, t - 1) * a->d : a->zeros;
}

/* ---- recurrent products (block-diagonal R: one gemm per head) ---------- */

/* rh (rows, G d; row stride ldr) head-major = h_prev (rows, d; row stride
 * ldh) R_hh^T per head hh. */
static void recur_forward(real *rh, size_t ldr, const real *h_prev, size_t ldh, const cell_call *a,
                          int rows)
{
    const int GD = a->G * a->Dh;
    for (int hh = 0; hh < a->H; hh++)
        gemm_tiled(CblasRowMajor, CblasNoTrans, CblasTrans, rows, GD, a->Dh, 1,
                  h_prev + (size_t)hh * a->Dh, (int)ldh, a->R + (size_t)hh * GD * a->Dh, a->Dh,
                  0, rh + (size_t)hh * GD, (int)ldr);
}

/* carry (rows, d; row stride K d) = beta carry + drh (rows, G d; row
 * stride ldr) R_hh per head hh. */
static void recur_backward(real *carry, const real *drh, size_t ldr, const cell_call *a, int rows,
                           real beta)
{
    const int GD = a->G * a->Dh;
    for (int hh = 0; hh < a->H; hh++)
        gemm_tiled(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, a->Dh, GD, 1,
                  drh + (size_t)hh * GD, (int)ldr, a->R + (size_t)hh * GD * a->Dh, a->Dh, beta,
                  carry + (size_t)hh * a->Dh, a->K * a->d);
}

/* ---- pointwise steps ---------------------------------------------------- */
/* Unit u = hh Dh + j: gate g of u is at g d + u in gx / dgx / the caches
 * (gate-major) and at hh G Dh + g Dh + j in rh / drh (head-major). */

/* The backward steps write drh[b,t] (the row given) times live = (t > 0):
 * at t = 0 there is no R h_{-1}, and slice_dR relies on those rows being 0. */
static void elman_step(const cell_call *a, const real *rh, int b, int t)
{
    const real *gx = a->gx + row(a, b, t) * a->d;
    real *h = a->h + row(a, b, t) * a->d;
    for (int u = 0; u < a->d; u++) h[u] = fm_tanh(gx[u] + rh[u]);
}

static void elman_step_back(const cell_call *a, real *drh, int b, int t)
{
    const int d = a->d;
    const real live = t > 0;
    const real *h = a->h + row(a, b, t) * d, *dh = a->dh + row(a, b, t) * d;
    real *dgx = a->dgx + row(a, b, t) * d;
    const real *carry = a->carry + (size_t)b * d; // K = 1
    for (int u = 0; u < d; u++) {
        const real dpre = (dh[u] + carry[u]) * (1 - h[u] * h[u]);
        dgx[u] += dpre;
        drh[u] = dpre * live;
    }
}

/* The per-head loops below run over the Dh units j of one head, every
 * tensor addressed from the head's base (unit u = hh Dh + j; gates of the
 * gate-major tensors d apart, of the head-major rh / drh Dh apart).
 * FM_SIMD (`omp simd`) says what restrict cannot: the gate rows of one
 * tensor, d apart, do not overlap within a head's Dh units; so the loops
 * vectorise (gcc would otherwise need more run-time alias checks than it
 * allows). */

/* gates cache (4d): z, r, n, and R_n h_{t-1} (the reset gate's operand) */
static void gru_head(real *restrict h, real *restrict cache, const real *restrict gx,
                     const real *restrict rh, const real *restrict hp, int d, int Dh)
{
    FM_SIMD
    for (int j = 0; j < Dh; j++) {
        const real rn = rh[2 * Dh + j];
        const real z = fm_sigmoid(gx[j] + rh[j]), r = fm_sigmoid(gx[d + j] + rh[Dh + j]);
        const real nn = fm_tanh(gx[2 * d + j] + r * rn);
        h[j] = (1 - z) * nn + z * hp[j];
        cache[j] = z;
        cache[d + j] = r;
        cache[2 * d + j] = nn;
        cache[3 * d + j] = rn;
    }
}

static void gru_head_back(real *restrict dgx, real *restrict drh, real *restrict carry,
                          const real *restrict dh, const real *restrict cache,
                          const real *restrict hp, real live, int d, int Dh)
{
    FM_SIMD
    for (int j = 0; j < Dh; j++) {
        const real z = cache[j], r = cache[d + j], nn = cache[2 * d + j], rn = cache[3 * d + j];
        const real dht = dh[j] + carry[j];
        const real dpz = dht * (hp[j] - nn) * z * (1 - z);
        const real dpn = dht * (1 - z) * (1 - nn * nn);
        const real dpr = dpn * rn * r * (1 - r);
        dgx[j] += dpz;
        dgx[d + j] += dpr;
        dgx[2 * d + j] += dpn;
        drh[j] = dpz * live;
        drh[Dh + j] = dpr * live;
        drh[2 * Dh + j] = dpn * r * live;
        carry[j] = dht * z;
    }
}

static void gru_step(const cell_call *a, const real *rh, int b, int t)
{
    const size_t d = (size_t)a->d, r = row(a, b, t);
    for (int hh = 0; hh < a->H; hh++) {
        const size_t u0 = (size_t)hh * a->Dh;
        gru_head(a->h + r * d + u0, a->gates + r * 4 * d + u0, a->gx + r * 3 * d + u0,
                 rh + 3 * u0, prev_row(a, a->h, b, t) + u0, a->d, a->Dh);
    }
}

static void gru_step_back(const cell_call *a, real *drh, int b, int t)
{
    const size_t d = (size_t)a->d, r = row(a, b, t);
    for (int hh = 0; hh < a->H; hh++) {
        const size_t u0 = (size_t)hh * a->Dh;
        gru_head_back(a->dgx + r * 3 * d + u0, drh + 3 * u0,
                      a->carry + (size_t)b * d + u0, a->dh + r * d + u0,
                      a->gates + r * 4 * d + u0, prev_row(a, a->h, b, t) + u0, t > 0, a->d,
                      a->Dh);
    }
}

/* gates cache (5d): i, f (stabilised exponentials), tanh(z~), s(o~), and
 * s(-f~), the slope of log s at the forget pre-activation. The first step
 * starts from m = i~ (SLSTM_M_START): then n_t >= 1 at every step, and
 * h = s(o) c / n is independent of m, so the backward treats m as a
 * constant. state: h, c, n of the step (d apart), prev: c, n of the step
 * before (d apart). */
static void slstm_head(real *restrict h, real *restrict c, real *restrict nt,
                       real *restrict cache, real *restrict m, const real *restrict gx,
                       const real *restrict rh, const real *restrict cp,
                       const real *restrict np, int d, int Dh)
{
    FM_SIMD
    for (int j = 0; j < Dh; j++) {
        const real pi = gx[j] + rh[j], pf = gx[d + j] + rh[Dh + j];
        const real pz = gx[2 * d + j] + rh[2 * Dh + j], po = gx[3 * d + j] + rh[3 * Dh + j];
        const real lf = fm_log_sigmoid(pf);
        const real mnew = fm_max(lf + m[j], pi);
        const real ig = fm_exp(pi - mnew), fg = fm_exp(lf + m[j] - mnew);
        const real g = fm_tanh(pz), o = fm_sigmoid(po);
        const real cj = ig * g + fg * cp[j], nj = ig + fg * np[j];
        c[j] = cj;
        nt[j] = nj;
        h[j] = o * cj / nj;
        m[j] = mnew;
        cache[j] = ig;
        cache[d + j] = fg;
        cache[2 * d + j] = g;
        cache[3 * d + j] = o;
        cache[4 * d + j] = fm_sigmoid(-pf);
    }
}

/* ch, cc, cn: the gradients into h, c, n from the step after */
static void slstm_head_back(real *restrict dgx, real *restrict drh, real *restrict ch,
                            real *restrict cc, real *restrict cn,
                            const real *restrict dh, const real *restrict cache,
                            const real *restrict c, const real *restrict nt,
                            const real *restrict cp, const real *restrict np, real live, int d,
                            int Dh)
{
    FM_SIMD
    for (int j = 0; j < Dh; j++) {
        const real ig = cache[j], fg = cache[d + j], g = cache[2 * d + j];
        const real o = cache[3 * d + j], sf = cache[4 * d + j];
        const real dht = dh[j] + ch[j];
        const real dc = cc[j] + dht * o / nt[j];
        const real dn = cn[j] - dht * o * c[j] / (nt[j] * nt[j]);
        const real df = dc * cp[j] + dn * np[j];
        const real dpi = (dc * g + dn) * ig, dpf = df * fg * sf;
        const real dpz = dc * ig * (1 - g * g), dpo = dht * c[j] / nt[j] * o * (1 - o);
        dgx[j] += dpi;
        dgx[d + j] += dpf;
        dgx[2 * d + j] += dpz;
        dgx[3 * d + j] += dpo;
        drh[j] = dpi * live;
        drh[Dh + j] = dpf * live;
        drh[2 * Dh + j] = dpz * live;
        drh[3 * Dh + j] = dpo * live;
        cc[j] = dc * fg;
        cn[j] = dn * fg;
    }
}

static void slstm_step(const cell_call *a, const real *rh, int b, int t)
{
    const size_t d = (size_t)a->d, r = row(a, b, t);
    for (int hh = 0; hh < a->H; hh++) {
        const size_t u0 = (size_t)hh * a->Dh;
        slstm_head(a->h + r * d + u0, a->c + r * d + u0, a->n + r * d + u0,
                   a->gates + r * 5 * d + u0, a->m + (size_t)b * d + u0, a->gx + r * 4 * d + u0,
                   rh + 4 * u0, prev_row(a, a->c, b, t) + u0,
                   prev_row(a, a->n, b, t) + u0, a->d, a->Dh);
    }
}

static void slstm_step_back(const cell_call *a, real *drh, int b, int t)
{
    const size_t d = (size_t)a->d, r = row(a, b, t);
    for (int hh = 0; hh < a->H; hh++) {
        const size_t u0 = (size_t)hh * a->Dh;
        real *carry = a->carry + (size_t)b * 3 * d + u0; // K = 3: h, c, n
        slstm_head_back(a->dgx + r * 4 * d + u0, drh + 4 * u0, carry, carry + d,
                        carry + 2 * d, a->dh + r * d + u0,
                        a->gates + r * 5 * d + u0, a->c + r * d + u0, a->n + r * d + u0,
                        prev_row(a, a->c, b, t) + u0, prev_row(a, a->n, b, t) + u0, t > 0, a->d,
                        a->Dh);
    }
}

/* lstm (H = 1, so head-major is gate-major): g holds R h_{t-1} on entry
 * and the activated gates s(i), s(f), tanh(g), s(o) on return (the gates
 * cache); cp is c_{t-1}, and may be c itself (then zero) at the first
 * step. Each iteration reads and writes only its own unit, so the loop
 * vectorises although g and c are read and written. */
static void lstm_head(real *restrict h, real *c, real *g, const real *restrict gx, const real *cp,
                      int d)
{
    FM_SIMD
    for (int j = 0; j < d; j++) {
        const real ig = fm_sigmoid(gx[j] + g[j]), fg = fm_sigmoid(gx[d + j] + g[d + j]);
        const real gg = fm_tanh(gx[2 * d + j] + g[2 * d + j]);
        const real og = fm_sigmoid(gx[3 * d + j] + g[3 * d + j]);
        const real cj = fg * cp[j] + ig * gg;
        g[j] = ig;
        g[d + j] = fg;
        g[2 * d + j] = gg;
        g[3 * d + j] = og;
        c[j] = cj;
        h[j] = og * fm_tanh(cj);
    }
}

/* ch, cc: the gradients into h, c from the step after */
static void lstm_head_back(real *restrict dgx, real *restrict drh, real *restrict ch,
                           real *restrict cc, const real *restrict dh, const real *restrict g,
                           const real *restrict c, const real *restrict cp, real live, int d)
{
    FM_SIMD
    for (int j = 0; j < d; j++) {
        const real ig = g[j], fg = g[d + j], gg = g[2 * d + j], og = g[3 * d + j];
        const real tc = fm_tanh(c[j]);
        const real dht = dh[j] + ch[j];
        const real dc = cc[j] + dht * og * (1 - tc * tc);
        const real dpi = dc * gg * ig * (1 - ig), dpf = dc * cp[j] * fg * (1 - fg);
        const real dpg = dc * ig * (1 - gg * gg), dpo = dht * tc * og * (1 - og);
        dgx[j] += dpi;
        dgx[d + j] += dpf;
        dgx[2 * d + j] += dpg;
        dgx[3 * d + j] += dpo;
        drh[j] = dpi * live;
        drh[d + j] = dpf * live;
        drh[2 * d + j] = dpg * live;
        drh[3 * d + j] = dpo * live;
        cc[j] = dc * fg;
    }
}

static void lstm_step(const cell_call *a, int b, int t)
{
    const size_t d = (size_t)a->d, r = row(a, b, t);
    real *c = a->c + r * d;
    lstm_head(a->h + r * d, c, a->gates + r * 4 * d, a->gx + r * 4 * d,
              t > 0 ? a->c + (r - 1) * d : c, a->d);
}

static void lstm_step_back(const cell_call *a, real *drh, int b, int t)
{
    const size_t d = (size_t)a->d, r = row(a, b, t);
    real *carry = a->carry + (size_t)b * 2 * d; // K = 2: h, c
    lstm_head_back(a->dgx + r * 4 * d, drh, carry, carry + d, a->dh + r * d, a->gates + r * 4 * d,
                   a->c + r * d, prev_row(a, a->c, b, t), t > 0, a->d);
}

/* ---- drivers ------------------------------------------------------------ */

/* lstm keeps R h_{t-1} in its gates cache (lstm_forward has no scratch);
 * the others in rh. */
static void forward_slice(const cell_call *a, int b0, int b1)
{
    const size_t ldh = (size_t)a->T * a->d; // row stride of h across the batch
    const size_t rows = (size_t)(b1 - b0), Gd = (size_t)a->G * a->d;
    real *rh = a->kind == CELL_LSTM ? a->gates + row(a, b0, 0) * Gd : a->rh + (size_t)b0 * Gd;
    const size_t ldr = a->kind == CELL_LSTM ? (size_t)a->T * Gd : Gd;
    if (a->kind == CELL_LSTM) {
        for (int b = b0; b < b1; b++) { // R h_{-1} = 0, c_{-1} = 0 (lstm_head reads c_0 as c_{-1})
            memset(a->gates + row(a, b, 0) * Gd, 0, Gd * sizeof *a->gates);
            memset(a->c + row(a, b, 0) * a->d, 0, (size_t)a->d * sizeof *a->c);
        }
    } else {
        memset(rh, 0, rows * Gd * sizeof *rh); // R h_{-1} = 0
    }
    if (a->kind == CELL_SLSTM)
        for (size_t i = 0; i < rows * a->d; i++) a->m[(size_t)b0 * a->d + i] = SLSTM_M_START;
    for (int t = 0; t < a->T; t++) {
        real *rh_t = a->kind == CELL_LSTM ? rh + (size_t)t * Gd : rh;
        if (t > 0) recur_forward(rh_t, ldr, a->h + row(a, b0, t - 1) * a->d, ldh, a, b1 - b0);
        for (int b = b0; b < b1; b++) {
            const real *rh_b = rh_t + (size_t)(b - b0) * ldr;
            switch (a->kind) {
            case CELL_ELMAN: elman_step(a, rh_b, b, t); break;
            case CELL_GRU: gru_step(a, rh_b, b, t); break;
            case CELL_SLSTM: slstm_step(a, rh_b, b, t); break;
            case CELL_LSTM: lstm_step(a, b, t); break;
            }
        }
    }
}

static int slice_end(const cell_call *a, int slice)
{
    return (slice + 1) * RNN_SLICE < a->B ? (slice + 1) * RNN_SLICE : a->B;
}

static void run_forward(const cell_call *a)
{
    if (a->T < 1) return; // nothing to do, and lstm's first-step rows do not exist
    if (a->zeros) memset(a->zeros, 0, (size_t)a->d * sizeof *a->zeros);
    const int slices = (a->B + RNN_SLICE - 1) / RNN_SLICE;
#pragma omp parallel for schedule(static) if ((size_t)a->B * a->d >= RNN_PARALLEL_MIN)
    for (int s = 0; s < slices; s++) forward_slice(a, s * RNN_SLICE, slice_end(a, s));
}

/* A slice's backward work: drh (DR_CHUNK, RNN_SLICE, G d) head-major, the
 * gradients of R h_{t-1} of its steps, row (t - t0) RNN_SLICE + (b - b0);
 * hp (DR_CHUNK, RNN_SLICE, d), the h_{t-1} of the same rows; and its share
 * of dR (H, G Dh, Dh). */
static size_t slice_work_len(cell_kind kind, int d, int H)
{
    const size_t G = (size_t)cell_gates(kind);
    return (size_t)DR_CHUNK * RNN_SLICE * (G + 1) * d + G * d * (d / H);
}

/* The slice's share of dR from the steps t0 .. t0 + steps - 1 of its
 * rows: dR_hh (G Dh, Dh) += drh_hh^T hp_hh over those rows (the first
 * product of a slice sets it). The rows of t = 0 have drh = 0 (and hp 0). */
static void slice_dR(real *partial, const real *drh, const real *hp, const cell_call *a, int rows,
                     real beta)
{
    const int GD = a->G * a->Dh, Gd = a->G * a->d;
    for (int hh = 0; hh < a->H; hh++)
        gemm_tiled(CblasRowMajor, CblasTrans, CblasNoTrans, GD, a->Dh, rows, 1,
                   drh + (size_t)hh * GD, Gd, hp + (size_t)hh * a->Dh, a->d, beta,
                   partial + (size_t)hh * GD * a->Dh, a->Dh);
}

/* Steps run backwards; after step t's pointwise part, one gemm per head
 * carries its drh into h_{t-1} (gru's carry into h_{t-1} has a direct term,
 * z dh, that its step writes first, so the gemm adds; the others' carry is
 * the gemm's). At the first step of each DR_CHUNK-aligned chunk the
 * chunk's rows go into the slice's share of dR. */
static void backward_slice(const cell_call *a, int slice)
{
    const int b0 = slice * RNN_SLICE, b1 = slice_end(a, slice);
    const int d = a->d, rows = b1 - b0;
    const size_t Gd = (size_t)a->G * d;
    real *work = a->slice_work + (size_t)slice * slice_work_len(a->kind, d, a->H);
    real *drh = work, *hp = drh + (size_t)DR_CHUNK * RNN_SLICE * Gd;
    real *partial = hp + (size_t)DR_CHUNK * RNN_SLICE * d;
    real *carry = a->carry + (size_t)b0 * a->K * d;
    int first_product = 1;
    memset(carry, 0, (size_t)rows * a->K * d * sizeof *carry);
    for (int t = a->T - 1; t >= 0; t--) {
        const int t0 = t / DR_CHUNK * DR_CHUNK;
        real *drh_t = drh + (size_t)(t - t0) * rows * Gd;
        for (int b = b0; b < b1; b++) {
            real *drh_b = drh_t + (size_t)(b - b0) * Gd;
            switch (a->kind) {
            case CELL_ELMAN: elman_step_back(a, drh_b, b, t); break;
            case CELL_GRU: gru_step_back(a, drh_b, b, t); break;
            case CELL_SLSTM: slstm_step_back(a, drh_b, b, t); break;
            case CELL_LSTM: lstm_step_back(a, drh_b, b, t); break;
            }
            memcpy(hp + ((size_t)(t - t0) * rows + (b - b0)) * d, prev_row(a, a->h, b, t),
                   (size_t)d * sizeof *hp);
        }
        if (t > 0) recur_backward(carry, drh_t, Gd, a, rows, a->kind == CELL_GRU ? 1 : 0);
        if (t == t0) {
            const int steps = (t0 + DR_CHUNK < a->T ? DR_CHUNK : a->T - t0);
            slice_dR(partial, drh, hp, a, steps * rows, first_product ? 0 : 1);
            first_product = 0;
        }
    }
}

/* The slices' shares of dR are added in slice order: the same sums
 * whatever the number of threads. */
static void run_backward(const cell_call *a)
{
    memset(a->zeros, 0, (size_t)a->d * sizeof *a->zeros);
    const int slices = (a->B + RNN_SLICE - 1) / RNN_SLICE;
    const size_t nR = (size_t)a->G * a->d * a->Dh, work = slice_work_len(a->kind, a->d, a->H);
#pragma omp parallel for schedule(static) if ((size_t)a->B * a->d >= RNN_PARALLEL_MIN)
    for (int s = 0; s < slices; s++) backward_slice(a, s);
    if (a->T < 1) return;
    for (int s = 0; s < slices; s++) {
        const real *p = a->slice_work + (size_t)s * work + (work - nR);
        for (size_t i = 0; i < nR; i++) a->dR[i] += p[i];
    }
}

/* Scratch: forward rh (B, G d) (+ m (B, d) for slstm; lstm needs neither)
 * or backward carries (B, K, d) (h; slstm also c, n; lstm also c); then
 * the zero state (d); then the backward's slice work, slice_work_len per
 * slice. Independent of T. */
static int cell_carries(cell_kind kind)
{
    return kind == CELL_SLSTM ? 3 : kind == CELL_LSTM ? 2 : 1;
}

static size_t scratch_shared(cell_kind kind, int B, int d)
{
    const size_t G = (size_t)cell_gates(kind), Bd = (size_t)B * d;
    const size_t fwd = kind == CELL_LSTM ? 0 : G * Bd + (kind == CELL_SLSTM ? Bd : 0);
    const size_t bwd = (size_t)cell_carries(kind) * Bd;
    return fwd > bwd ? fwd : bwd;
}

static size_t scratch_len(cell_kind kind, int B, int d, int H)
{
    const size_t slices = (size_t)(B + RNN_SLICE - 1) / RNN_SLICE;
    return scratch_shared(kind, B, d) + (size_t)d + slices * slice_work_len(kind, d, H);
}

static cell_call call_of(cell_kind kind, real *scratch, int B, int T, int d, int H)
{
    const int G = cell_gates(kind);
    const size_t Bd = (size_t)B * d;
    cell_call a = {.kind = kind, .B = B, .T = T, .d = d, .H = H, .G = G, .Dh = d / H};
    a.K = cell_carries(kind);
    if (!scratch) return a; // lstm's forward
    a.rh = scratch;
    a.m = scratch + G * Bd;
    a.carry = scratch;
    a.zeros = scratch + scratch_shared(kind, B, d);
    a.slice_work = a.zeros + d;
    return a;
}

/* ---- API ---------------------------------------------------------------- */

size_t elman_scratch_len(int B, int T, int d, int H) { return scratch_len(CELL_ELMAN, B, d, H); }

size_t gru_scratch_len(int B, int T, int d, int H) { return scratch_len(CELL_GRU, B, d, H); }

size_t slstm_scratch_len(int B, int T, int d, int H) { return scratch_len(CELL_SLSTM, B, d, H); }

void elman_forward(real *h, real *scratch, const real *gx, const real *R, int B, int T, int d,
                   int H)
{
    cell_call a = call_of(CELL_ELMAN, scratch, B, T, d, H);
    a.h = h;
    a.gx = gx;
    a.R = R;
    run_forward(&a);
}

void elman_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                    const real *R, int B, int T, int d, int H)
{
    cell_call a = call_of(CELL_ELMAN, scratch, B, T, d, H);
    a.dgx = dgx;
    a.dR = dR;
    a.dh = dh;
    a.h = (real *)h; // read only in the backward
    a.R = R;
    run_backward(&a);
}

void gru_forward(real *h, real *gates, real *scratch, const real *gx, const real *R, int B, int T,
                 int d, int H)
{
    cell_call a = call_of(CELL_GRU, scratch, B, T, d, H);
    a.h = h;
    a.gates = gates;
    a.gx = gx;
    a.R = R;
    run_forward(&a);
}

void gru_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                  const real *gates, const real *R, int B, int T, int d, int H)
{
    cell_call a = call_of(CELL_GRU, scratch, B, T, d, H);
    a.dgx = dgx;
    a.dR = dR;
    a.dh = dh;
    a.h = (real *)h; // the cell's caches are read only in the backward
    a.gates = (real *)gates;
    a.R = R;
    run_backward(&a);
}

void slstm_forward(real *h, real *c, real *n, real *gates, real *scratch, const real *gx,
                   const real *R, int B, int T, int d, int H)
{
    cell_call a = call_of(CELL_SLSTM, scratch, B, T, d, H);
    a.h = h;
    a.c = c;
    a.n = n;
    a.gates = gates;
    a.gx = gx;
    a.R = R;
    run_forward(&a);
}

void slstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                    const real *c, const real *n, const real *gates, const real *R, int B, int T,
                    int d, int H)
{
    cell_call a = call_of(CELL_SLSTM, scratch, B, T, d, H);
    a.dgx = dgx;
    a.dR = dR;
    a.dh = dh;
    a.h = (real *)h; // the cell's caches are read only in the backward
    a.c = (real *)c;
    a.n = (real *)n;
    a.gates = (real *)gates;
    a.R = R;
    run_backward(&a);
}

/* lstm (kernels/ops.h's rnn_cell: LSTM): the cell with H = 1, whose R
 * (4d, d) is then the one block. */
size_t lstm_scratch_len(int B, int d) { return scratch_len(CELL_LSTM, B, d, 1); }

void lstm_forward(real *h, real *c, real *gates, const real *gx, const real *R, int B, int T,
                  int d)
{
    cell_call a = call_of(CELL_LSTM, NULL, B, T, d, 1);
    a.h = h;
    a.c = c;
    a.gates = gates;
    a.gx = gx;
    a.R = R;
    run_forward(&a);
}

void lstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                   const real *c, const real *gates, const real *R, int B, int T, int d)
{
    cell_call a = call_of(CELL_LSTM, scratch, B, T, d, 1);
    a.dgx = dgx;
    a.dR = dR;
    a.dh = dh;
    a.h = (real *)h; // the cell's caches are read only in the backward
    a.c = (real *)c;
    a.gates = (real *)gates;
    a.R = R;
    run_backward(&a);
}
