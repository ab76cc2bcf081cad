// Models and inputs the engine-level tests share: the bundled demo model (loaded once per test
// program) and random prompts of token ids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "slm/model/model.hpp"

namespace slm_test {

inline std::shared_ptr<const slm::Model> demo_model() {
  static const auto model =
      slm::Model::load((std::filesystem::path(SLM_SOURCE_DIR) / "models" / "demo" / "demo-q8_0.gguf").string());
  return model;
}

// n token ids drawn from [1, vocab) by a seeded generator (never all the same for n > 1).
inline std::vector<int32_t> random_tokens(size_t n, uint32_t seed, int64_t vocab) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(1, int32_t(vocab - 1));
  std::vector<int32_t> p(n);
  for (auto& t : p) t = d(rng);
  return p;
}

}  // namespace slm_test
