// libFuzzer target: .npy parsing of arbitrary bytes must succeed or throw slm::Error.
#include <cstddef>
#include <cstdint>

#include "slm/util/error.hpp"
#include "slm/util/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const slm::NpyArray array = slm::npy_parse(data, size);
    if (array.f32.size() + array.i32.size() != array.n_elements()) __builtin_trap();
  } catch (const slm::Error&) {
  }
  return 0;
}
