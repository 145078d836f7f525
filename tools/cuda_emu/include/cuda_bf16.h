// cuda_bf16.h of the CPU emulator (tools/cuda_emu): the bf16 type and the
// conversions kernels/cuda uses. bf16 is the top half of a float (8 bits
// of exponent, 7 of mantissa); __float2bfloat16_rn rounds to nearest, ties
// to even, as the GPU's cvt.rn.bf16.f32 does: overflow rounds to infinity,
// subnormals are kept, and every NaN becomes the canonical NaN 0x7fff.
#ifndef SB_CUDA_BF16_EMU_H
#define SB_CUDA_BF16_EMU_H
#include <stdint.h>
#include <string.h>

#include "../cuda_emu.h"

struct __nv_bfloat16 {
    unsigned short __x; // the bits, as in CUDA's __nv_bfloat16_raw
};
typedef __nv_bfloat16 nv_bfloat16;

static inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.__x = 0x7fffu;
    else r.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return r;
}

static inline float __bfloat162float(__nv_bfloat16 b)
{
    const uint32_t u = (uint32_t)b.__x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
#endif
