// Where a model runs: the CPU backend or the CUDA one.
#pragma once

namespace slm {

enum class Device { cpu, cuda };

}  // namespace slm
