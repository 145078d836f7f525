/* cpu_names.h: force-included (-include) into every kernels/cpu/ source file by the
 * Makefile, so the CPU backend defines cpu_<op> for every op of ops.h that
 * kernels/dispatch.c routes by backend, and the public name is the
 * dispatcher's. The CPU kernels still call each other directly (their calls
 * are renamed too). The helper forms (scan_delta_recurrent_*,
 * scan_delta_chunked_*, scan_delta_use_chunked, gemm_tiled) and
 * ops_set_threads / ops_get_threads / ops_blas_info keep their names.
 * Keep this list and dispatch.c's in step: a name missing from either is a
 * link error. */
#ifndef SB_CPU_NAMES_H
#define SB_CPU_NAMES_H

#define matmul_forward cpu_matmul_forward
#define matmul_backward cpu_matmul_backward
#define embedding_forward cpu_embedding_forward
#define embedding_backward cpu_embedding_backward
#define rmsnorm_forward cpu_rmsnorm_forward
#define rmsnorm_backward cpu_rmsnorm_backward
#define l2norm_forward cpu_l2norm_forward
#define l2norm_backward cpu_l2norm_backward
#define act_forward cpu_act_forward
#define act_backward cpu_act_backward
#define swiglu_forward cpu_swiglu_forward
#define swiglu_backward cpu_swiglu_backward
#define conv4_silu_forward cpu_conv4_silu_forward
#define conv4_silu_backward cpu_conv4_silu_backward
#define residual_add cpu_residual_add
#define scale_inplace cpu_scale_inplace
#define sum_squares cpu_sum_squares
#define rowdiv_forward cpu_rowdiv_forward
#define rowdiv_backward cpu_rowdiv_backward
#define crossentropy_forward cpu_crossentropy_forward
#define crossentropy_backward cpu_crossentropy_backward
#define adamw_update cpu_adamw_update
#define crossentropy_rows_forward cpu_crossentropy_rows_forward
#define argmax_rows cpu_argmax_rows
#define sum_squares_into cpu_sum_squares_into
#define step_guard_update cpu_step_guard_update
#define crossentropy_backward_step cpu_crossentropy_backward_step
#define adamw_update_guarded cpu_adamw_update_guarded
#define rope_forward cpu_rope_forward
#define rope_backward cpu_rope_backward
#define attention_cache_len cpu_attention_cache_len
#define attention_forward cpu_attention_forward
#define attention_scratch_len cpu_attention_scratch_len
#define attention_backward cpu_attention_backward
#define scan_delta_cache_len cpu_scan_delta_cache_len
#define scan_delta_forward cpu_scan_delta_forward
#define scan_delta_scratch_len cpu_scan_delta_scratch_len
#define scan_delta_backward cpu_scan_delta_backward
#define lstm_forward cpu_lstm_forward
#define lstm_scratch_len cpu_lstm_scratch_len
#define lstm_backward cpu_lstm_backward
#define elman_scratch_len cpu_elman_scratch_len
#define elman_forward cpu_elman_forward
#define elman_backward cpu_elman_backward
#define gru_scratch_len cpu_gru_scratch_len
#define gru_forward cpu_gru_forward
#define gru_backward cpu_gru_backward
#define slstm_scratch_len cpu_slstm_scratch_len
#define slstm_forward cpu_slstm_forward
#define slstm_backward cpu_slstm_backward
#define mingru_gates_forward cpu_mingru_gates_forward
#define mingru_gates_backward cpu_mingru_gates_backward
#define minlstm_gates_forward cpu_minlstm_gates_forward
#define minlstm_gates_backward cpu_minlstm_gates_backward
#define hgrn_gates_forward cpu_hgrn_gates_forward
#define hgrn_gates_backward cpu_hgrn_gates_backward
#define silu_gate_forward cpu_silu_gate_forward
#define silu_gate_backward cpu_silu_gate_backward
#define scan_diag_forward cpu_scan_diag_forward
#define scan_diag_backward cpu_scan_diag_backward
#define scan_diag_complex_forward cpu_scan_diag_complex_forward
#define scan_diag_complex_backward cpu_scan_diag_complex_backward
#define lru_params_forward cpu_lru_params_forward
#define lru_params_backward cpu_lru_params_backward
#define s4d_scan_cache_len cpu_s4d_scan_cache_len
#define s4d_scan_forward cpu_s4d_scan_forward
#define s4d_scan_scratch_len cpu_s4d_scan_scratch_len
#define s4d_scan_backward cpu_s4d_scan_backward
#define selective_scan_cache_len cpu_selective_scan_cache_len
#define selective_scan_forward cpu_selective_scan_forward
#define selective_scan_scratch_len cpu_selective_scan_scratch_len
#define selective_scan_backward cpu_selective_scan_backward
#define ssd_decay_forward cpu_ssd_decay_forward
#define ssd_decay_backward cpu_ssd_decay_backward
#define head_repeat_forward cpu_head_repeat_forward
#define head_repeat_backward cpu_head_repeat_backward
#define head_scale_forward cpu_head_scale_forward
#define head_scale_backward cpu_head_scale_backward
#define skip_add_forward cpu_skip_add_forward
#define skip_add_backward cpu_skip_add_backward
#define scan_delta_vec_forward cpu_scan_delta_vec_forward
#define scan_delta_vec_backward cpu_scan_delta_vec_backward
#define sigmoid_pow_forward cpu_sigmoid_pow_forward
#define sigmoid_pow_backward cpu_sigmoid_pow_backward
#define mlstm_gates_forward cpu_mlstm_gates_forward
#define mlstm_gates_backward cpu_mlstm_gates_backward
#define mlstm_den_forward cpu_mlstm_den_forward
#define mlstm_den_backward cpu_mlstm_den_backward
#define fill_rows cpu_fill_rows

#endif
