// scan_delta_chunk.h: the chunked (WY / UT transform) form of the CUDA
// gated delta rule scan (scan_delta_chunk.cu), with scan_delta's arguments,
// cache layout and K, V range (1 .. 128). cuda_scan_delta_forward /
// cuda_scan_delta_backward (scan_delta.cu) pick it by ops_get_scan_form()
// and, under OPS_SCAN_AUTO, cuda_scan_delta_use_chunked (ops_cuda.h).
// Either backward may follow either forward.
#ifndef SB_CUDA_SCAN_DELTA_CHUNK_H
#define SB_CUDA_SCAN_DELTA_CHUNK_H

#include <stddef.h>
#include "../ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// Bytes of shared memory a block of the chunked form needs at K, V (the
// larger of the forward's and the backward's); under OPS_SCAN_AUTO the
// recurrent form runs where the device gives less (sb_cuda_smem_optin).
size_t cuda_scan_delta_chunked_smem(int K, int V);
// The chunked backward's scratch: two K x V gradients of the state per (b,h).
size_t cuda_scan_delta_chunked_scratch_len(int B, int T, int H, int K, int V);
void cuda_scan_delta_chunked_forward(real *o, real *states, const real *q, const real *k,
                                     const real *v, const real *beta, const real *alpha, int B,
                                     int T, int H, int K, int V, real scale);
void cuda_scan_delta_chunked_backward(real *dq, real *dk, real *dv, real *dbeta, real *dalpha,
                                      real *scratch, const real *dout, const real *states,
                                      const real *q, const real *k, const real *v,
                                      const real *beta, const real *alpha, int B, int T, int H,
                                      int K, int V, real scale);

#ifdef __cplusplus
}
#endif

#endif
