// libFuzzer target: safetensors parsing of arbitrary bytes must succeed or throw slm::Error.
#include <cstddef>
#include <cstdint>

#include "slm/format/safetensors.hpp"
#include "slm/util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const slm::safetensors::Archive archive = slm::safetensors::Archive::parse(data, size);
    volatile uint64_t sum = 0;
    for (const auto& t : archive.tensors()) {
      if (t.n_bytes > 0) sum = sum + t.data[0] + t.data[t.n_bytes - 1];
      if (archive.find(t.name) != &t) __builtin_trap();
    }
    for (const auto& [key, value] : archive.metadata()) sum = sum + key.size() + value.size();
  } catch (const slm::Error&) {
  }
  return 0;
}
