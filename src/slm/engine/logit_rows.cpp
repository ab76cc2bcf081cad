#include "slm/engine/logit_rows.hpp"

#include <algorithm>
#include <cmath>

#include "slm/engine/forward.hpp"

namespace slm {

float log_sum_exp(const float* row, int64_t n) {
  float max_v = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    if (row[i] > max_v) max_v = row[i];  // NaN entries are skipped, here and below
  }
  if (max_v == -INFINITY) return -INFINITY;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isnan(row[i])) sum += double(std::exp(row[i] - max_v));
  }
  return float(double(max_v) + std::log(sum));
}

int32_t top_logits(const float* row, int64_t n, int32_t k, int32_t* ids, float* values) {
  if (k <= 0 || n <= 0) return 0;
  struct Entry {
    float value;
    int32_t id;
  };
  // A min-heap of the best so far: its front is the worst kept entry.
  auto worse = [](const Entry& a, const Entry& b) { return a.value > b.value || (a.value == b.value && a.id < b.id); };
  std::vector<Entry> heap;
  heap.reserve(size_t(std::min<int64_t>(k, n)));
  for (int64_t i = 0; i < n; ++i) {
    const float v = row[i];
    if (std::isnan(v)) continue;
    if (int64_t(heap.size()) < k) {
      heap.push_back({v, int32_t(i)});
      std::push_heap(heap.begin(), heap.end(), worse);
    } else if (v > heap.front().value) {  // equal: the kept one has the lower id
      std::pop_heap(heap.begin(), heap.end(), worse);
      heap.back() = {v, int32_t(i)};
      std::push_heap(heap.begin(), heap.end(), worse);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), worse);
  for (size_t i = 0; i < heap.size(); ++i) {
    ids[i] = heap[i].id;
    values[i] = heap[i].value;
  }
  return int32_t(heap.size());
}

void TopLogits::resize_outputs() {
  lse.resize(k.size());
  ids.resize(k.size() * size_t(k_max));
  values.resize(k.size() * size_t(k_max));
}

void summarize_rows(const float* logits, int64_t vocab, TopLogits& top) {
  top.resize_outputs();
  const int64_t n = int64_t(top.k.size());
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    if (top.k[size_t(i)] <= 0) continue;
    const float* row = logits + i * vocab;
    top.lse[size_t(i)] = log_sum_exp(row, vocab);
    int32_t* ids = top.ids.data() + i * top.k_max;
    float* values = top.values.data() + i * top.k_max;
    const int32_t n = top_logits(row, vocab, top.k[size_t(i)], ids, values);
    for (int32_t j = n; j < top.k[size_t(i)]; ++j) {  // fewer numbers than k (NaN): the end, as on the GPU
      ids[j] = -1;
      values[j] = -INFINITY;
    }
  }
}

void BatchForward::logits_top(const ForwardBatch& batch, KvCache& cache, float* logits, TopLogits& top) {
  this->logits(batch, cache, logits);
  summarize_rows(logits, vocab_size(), top);
}

}  // namespace slm
