// libFuzzer target: GGUF parsing of arbitrary bytes must succeed or throw slm::Error.
#include <cstddef>
#include <cstdint>

#include "slm/format/gguf.hpp"
#include "slm/util/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const slm::gguf::File file = slm::gguf::File::parse(data, size);
    // Touch what a successful parse hands out: values and every tensor byte.
    volatile uint64_t sum = 0;
    for (const auto& [key, value] : file.metadata()) sum = sum + key.size() + value.to_display(4).size();
    for (const slm::gguf::TensorInfo& t : file.tensors()) {
      const uint8_t* p = file.tensor_data(t);
      const uint64_t n = t.n_bytes();
      if (n > 0) sum = sum + p[0] + p[n - 1];
      sum = sum + t.n_elements();
    }
    (void)file.get_string("general.architecture");
  } catch (const slm::Error&) {
  }
  return 0;
}
