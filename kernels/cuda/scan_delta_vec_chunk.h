// scan_delta_vec_chunk.h: the chunked form of the CUDA scan with a decay per
// key dimension (gla; scan_delta_vec_chunk.cu), with scan_delta_vec's
// arguments, cache layout and K, V range (1 .. 128). It needs no scratch.
// cuda_scan_delta_vec_forward / cuda_scan_delta_vec_backward
// (scan_delta_vec.cu) run it when cuda_scan_delta_vec_chunked_chosen says
// so. Either backward may follow either forward.
#ifndef SB_CUDA_SCAN_DELTA_VEC_CHUNK_H
#define SB_CUDA_SCAN_DELTA_VEC_CHUNK_H

#include <stddef.h>
#include "../real.h"

#ifdef __cplusplus
extern "C" {
#endif

// 1 when the chunked form is to run: ops_get_scan_form() forces a form;
// under OPS_SCAN_AUTO, cuda_scan_delta_vec_use_chunked(T, K, V) (ops_cuda.h).
int cuda_scan_delta_vec_chunked_chosen(int T, int K, int V);
// Bytes of dynamic shared memory the chunked backward needs at K, V (the
// forward's 44.5 KiB are static); under OPS_SCAN_AUTO the recurrent form
// runs where the device gives less (sb_cuda_smem_optin).
size_t cuda_scan_delta_vec_chunked_smem(int K, int V);
void cuda_scan_delta_vec_chunked_forward(real *o, real *states, const real *q, const real *k,
                                         const real *v, const real *alpha, int B, int T, int H,
                                         int K, int V, real scale);
void cuda_scan_delta_vec_chunked_backward(real *dq, real *dk, real *dv, real *dalpha,
                                          const real *dout, const real *states, const real *q,
                                          const real *k, const real *v, const real *alpha, int B,
                                          int T, int H, int K, int V, real scale);

#ifdef __cplusplus
}
#endif

#endif
