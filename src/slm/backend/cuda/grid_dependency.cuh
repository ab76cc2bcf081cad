// Programmatic dependent launch (Hopper and newer). The decode step's graph lets each kernel start
// while the previous one still runs (LlamaDecoder marks its kernel-to-kernel edges programmatic), so
// that launching and scheduling the next kernel's blocks overlaps the current kernel's tail. Every
// kernel therefore begins with wait_for_previous_kernel(): it waits until the previous kernel has
// finished and its writes are visible, then lets the next kernel start launching. Outside such an
// edge (ordinary launches, older devices) the wait returns at once.
#pragma once

namespace slm::cuda {

__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace slm::cuda
