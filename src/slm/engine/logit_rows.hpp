// Rows of logits as sampling reads them: the log-sum-exp, the k largest entries, and the compact form
// a forward hands back when a sampler needs only those (the GPU then copies a few hundred bytes per
// row instead of the whole vocabulary).
#pragma once

#include <cstdint>
#include <vector>

namespace slm {

// log(sum(exp(row))) over the n values that are not NaN (float exponentials summed in double);
// -inf when there are none.
float log_sum_exp(const float* row, int64_t n);

// The min(k, n) largest entries of row with their indices, largest first; equal values: the lower
// index first. NaN entries are never taken. Returns how many were written.
int32_t top_logits(const float* row, int64_t n, int32_t k, int32_t* ids, float* values);

// Per output row of a batch: how many top logits sampling needs (k[i] > 0), or the whole row
// (k[i] == 0). A forward fills lse and the first min(k[i], vocab) entries of ids/values row i
// (rows of k_max entries) for the former, id -1 where a row has fewer numbers (NaN); the latter get
// their logits row.
struct TopLogits {
  std::vector<int32_t> k;       // [outputs], filled by the caller
  int32_t k_max = 0;            // the largest k, filled by the caller
  std::vector<float> lse;       // [outputs]
  std::vector<int32_t> ids;     // [outputs][k_max]
  std::vector<float> values;    // [outputs][k_max]

  void clear() {
    k.clear();
    k_max = 0;
  }
  // Sizes lse/ids/values for k.size() outputs of k_max entries (the forward does, before filling them).
  void resize_outputs();
};

// Fills the summary of every output with k[i] > 0 from its full logits row (logits: [outputs][vocab]).
void summarize_rows(const float* logits, int64_t vocab, TopLogits& top);

}  // namespace slm
