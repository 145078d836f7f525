/* cuda_limits.h: the sizes the CUDA kernels cover, in one place. The
 * kernels (kernels/cuda/) refuse other sizes when they are called (exit 1
 * through sb_cuda_fail), and static_assert that their own bounds are these;
 * the harness checks a run's shapes against them before the run starts
 * (exit 2: model_cuda_fits in models/model.h), so a sweep never fails
 * halfway on a size. Plain C, included by both sides. */
#ifndef SB_CUDA_LIMITS_H
#define SB_CUDA_LIMITS_H

/* scan_delta (kernels/cuda/scan_delta.cu): head sizes K, V. The state
 * column block lives in registers, at most 128 rows. */
#define CUDA_SCAN_DELTA_MAX_KV 128
/* scan_delta_vec, gla's scan (kernels/cuda/scan_delta_vec.cu): K, V. */
#define CUDA_SCAN_VEC_MAX_KV 128
/* attention (kernels/cuda/attention.cu): the head size D, held by 32 lanes
 * in at most 4 registers each; T up to 65535 tiles of 16 query rows (the
 * grid's y limit). */
#define CUDA_ATTENTION_MAX_D 128
#define CUDA_ATTENTION_MAX_T (65535 * 16)
/* selective_scan, mamba (kernels/cuda/selective_scan.cu): the state size N,
 * at most 8 states on each of 32 lanes. */
#define CUDA_SELECTIVE_MAX_N 256
/* s4d_scan (kernels/cuda/scan_diag.cu): M = d_state / 2 complex modes, at
 * most 16 on each of 32 lanes. */
#define CUDA_S4D_MAX_MODES 512

#endif
