// cuda.h of the CPU emulator (tools/cuda_emu): see ../cuda_emu.h.
#include "../cuda_emu.h"
