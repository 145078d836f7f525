// rnn_persist.h: the persistent recurrent kernels of rnn_persist.cu, for
// lstm.cu and rnn_cell.cu (internal to the CUDA backend).
//
// Each call runs the whole sequence in one launch when the head's R fits in
// shared memory and returns true; it returns false, having launched
// nothing, when it does not fit: the caller then runs its per-step path.
#ifndef SB_RNN_PERSIST_H
#define SB_RNN_PERSIST_H

typedef enum { RP_ELMAN, RP_GRU, RP_SLSTM, RP_LSTM } rp_kind;

// Forward of elman (c, nst, gates unused), gru (gates (B,T,4d)), slstm (c,
// nst (B,T,d), gates (B,T,5d)) with R (H, G Dh, Dh), or lstm (H = 1: R
// (4d,d), c (B,T,d), gates (B,T,4d)); the caches are those of the per-step
// kernels. h (B,T,d), gx (B,T,G d).
bool rnn_persist_forward(rp_kind k, float *h, float *c, float *nst, float *gates,
                         const float *gx, const float *R, int B, int T, int d, int H);

// Backward of elman, gru, slstm: adds into dgx (B,T,G d) and writes drh
// (B,T,G d) head-major, the gradient of every step's R h_{t-1} (0 at t = 0),
// as the per-step path does; dR stays with the caller (one gemm per head).
bool rnn_persist_backward(rp_kind k, float *dgx, float *drh, const float *dh, const float *h,
                          const float *c, const float *nst, const float *gates, const float *R,
                          int B, int T, int d, int H);

// Backward of lstm (R (4d,d)): adds into dgx (B,T,4d) and dR, in one block
// for all B rows, R and dR in shared memory (8 d^2 + 10 B d floats: d = 64
// up to B 39 with 227 KiB).
bool rnn_persist_lstm_backward(float *dgx, float *dR, const float *dh, const float *h,
                               const float *c, const float *gates, const float *R, int B, int T,
                               int d);

#endif
