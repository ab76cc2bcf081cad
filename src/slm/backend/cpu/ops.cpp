#include "slm/backend/cpu/ops.hpp"

#include "slm/backend/cpu/matmul.hpp"
#include "slm/format/dtype.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#define SLM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace slm::cpu {

namespace {

SLM_CLONES void axpy(float* y, float a, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

SLM_CLONES void rms_norm_row(const float* x, const float* weight, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  const float inv = float(1.0 / std::sqrt(sum / double(n) + double(eps)));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * weight[i];
}

}  // namespace

void rms_norm(const float* x, const float* weight, float* y, int64_t n_rows, int64_t n, float eps) {
#pragma omp parallel for if (n_rows > 4)
  for (int64_t t = 0; t < n_rows; ++t) rms_norm_row(x + t * n, weight, y + t * n, n, eps);
}

void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n) {
  for (int64_t t = 0; t < n_rows; ++t) axpy(x + t * n, 1.0f, bias, n);
}

void add(float* x, const float* y, int64_t n) { axpy(x, 1.0f, y, n); }

SLM_CLONES void silu_mul(float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void scale(float* x, float factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

SLM_CLONES void gelu_tanh_mul(float* gate, const float* up, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = 0.5f * g * (1.0f + std::tanh(k * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void rope(float* x, int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t rope_dim, const int32_t* positions,
          const float* inv_freq, bool interleaved, float scale) {
  const int64_t half = rope_dim / 2;
#pragma omp parallel for if (n_rows > 4)
  for (int64_t t = 0; t < n_rows; ++t) {
    std::vector<float> cos_v(static_cast<size_t>(half)), sin_v(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(positions[t]) * double(inv_freq[i]);
      cos_v[size_t(i)] = float(std::cos(angle)) * scale;
      sin_v[size_t(i)] = float(std::sin(angle)) * scale;
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = interleaved ? 2 * i : i;
        const int64_t b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cos_v[size_t(i)] - x1 * sin_v[size_t(i)];
        v[b] = x0 * sin_v[size_t(i)] + x1 * cos_v[size_t(i)];
      }
    }
  }
}

namespace {

// Head `kvh` (head_dim values) of a cache row of `type` as floats: the row itself for F32, else
// converted into `buffer`.
const float* cache_head(DType type, const uint8_t* row, int64_t kvh, int64_t hd, float* buffer) {
  const uint8_t* head = row + dtype_row_bytes(type, uint64_t(kvh * hd));
  if (type == DType::F32) return reinterpret_cast<const float*>(head);
  to_f32(type, head, buffer, hd);
  return buffer;
}

// Many queries (prompt processing): per kv head, the scores of all its query heads' rows against
// every key are one matrix product, and so is the weighted sum of values.
void attention_matrix(const float* q, const KvBlocks& kv, const int32_t* positions, int64_t n_rows,
                      const AttentionShape& s, float* out) {
  const int64_t group = s.n_heads / s.n_kv_heads;
  const int64_t hd = s.head_dim;
  int64_t n_keys = 0;
  for (int64_t t = 0; t < n_rows; ++t) n_keys = std::max<int64_t>(n_keys, positions[t] + 1);
  const int64_t m = group * n_rows;  // query rows per kv head: row (g * n_rows + t)
  std::vector<float> qg(static_cast<size_t>(m * hd)), kh(static_cast<size_t>(n_keys * hd));
  std::vector<float> vt(static_cast<size_t>(hd * n_keys)), scores(static_cast<size_t>(m * n_keys));
  std::vector<float> og(static_cast<size_t>(m * hd));
  for (int64_t kvh = 0; kvh < s.n_kv_heads; ++kvh) {
    for (int64_t g = 0; g < group; ++g)
      for (int64_t t = 0; t < n_rows; ++t)
        std::copy_n(q + (t * s.n_heads + kvh * group + g) * hd, hd, qg.data() + (g * n_rows + t) * hd);
    for (int64_t j = 0; j < n_keys; ++j) {
      const float* kj = cache_head(kv.k_type, kv.k(j), kvh, hd, kh.data() + j * hd);  // kh[n_keys][hd]
      if (kj != kh.data() + j * hd) std::copy_n(kj, hd, kh.data() + j * hd);
      const float* vj = cache_head(kv.v_type, kv.v(j), kvh, hd, og.data());
      for (int64_t i = 0; i < hd; ++i) vt[size_t(i * n_keys + j)] = vj[i];  // vt[hd][n_keys]
    }
    matmul(DType::F32, kh.data(), n_keys, hd, qg.data(), m, scores.data());  // scores[m][n_keys]
#pragma omp parallel for
    for (int64_t r = 0; r < m; ++r) {
      const int64_t pos = positions[r % n_rows];
      const int64_t start = s.sliding_window > 0 ? std::max<int64_t>(0, pos - s.sliding_window + 1) : 0;
      float* row = scores.data() + r * n_keys;
      float max_score = -INFINITY;
      for (int64_t j = start; j <= pos; ++j) max_score = std::max(max_score, row[j] * s.scale);
      double sum = 0.0;
      for (int64_t j = 0; j < n_keys; ++j) {
        if (j < start || j > pos) {
          row[j] = 0.0f;
          continue;
        }
        row[j] = std::exp(row[j] * s.scale - max_score);
        sum += row[j];
      }
      const float inv = float(1.0 / sum);
      for (int64_t j = start; j <= pos; ++j) row[j] *= inv;
    }
    matmul(DType::F32, vt.data(), hd, n_keys, scores.data(), m, og.data());  // og[m][hd]
    for (int64_t g = 0; g < group; ++g)
      for (int64_t t = 0; t < n_rows; ++t)
        std::copy_n(og.data() + (g * n_rows + t) * hd, hd, out + (t * s.n_heads + kvh * group + g) * hd);
  }
}

// The query heads of one kv head for one row (a GQA group), so each key and value row is read
// once for all of them: out_g[hd] = softmax_j(q_g . k_j * scale) . v_j over the visible keys j.
// q and out: the row's [n_heads][hd]; scores: room for group * (visible keys) floats; buffer: hd
// floats for a converted key or value row.
SLM_CLONES void attend_group(const float* q, const KvBlocks& kv, int64_t pos, int64_t kvh, const AttentionShape& s,
                             float* scores, float* buffer, float* out) {
  const int64_t hd = s.head_dim;
  const int64_t group = s.n_heads / s.n_kv_heads;
  const int64_t start = s.sliding_window > 0 ? std::max<int64_t>(0, pos - s.sliding_window + 1) : 0;
  const int64_t n_keys = pos - start + 1;
  const float* qh = q + kvh * group * hd;
  float* oh = out + kvh * group * hd;
  // scores[g][j] = q_g . k_j * scale
  for (int64_t p = start; p <= pos; ++p) {
    const float* k = cache_head(kv.k_type, kv.k(p), kvh, hd, buffer);
    for (int64_t g = 0; g < group; ++g) {
      const float* qg = qh + g * hd;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < hd; ++i) sum += qg[i] * k[i];
      scores[g * n_keys + p - start] = sum * s.scale;
    }
  }
  // scores[g][j] = softmax over j
  for (int64_t g = 0; g < group; ++g) {
    float* sc = scores + g * n_keys;
    float max_score = -INFINITY;
    for (int64_t j = 0; j < n_keys; ++j) max_score = std::max(max_score, sc[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < n_keys; ++j) {
      sc[j] = std::exp(sc[j] - max_score);
      sum += sc[j];
    }
    const float inv = float(1.0 / sum);
    for (int64_t j = 0; j < n_keys; ++j) sc[j] *= inv;
  }
  // out_g[hd] = sum_j scores[g][j] * v_j
  std::fill(oh, oh + group * hd, 0.0f);
  for (int64_t p = start; p <= pos; ++p) {
    const float* v = cache_head(kv.v_type, kv.v(p), kvh, hd, buffer);
    for (int64_t g = 0; g < group; ++g) {
      float* og = oh + g * hd;
      const float w = scores[g * n_keys + p - start];
#pragma omp simd
      for (int64_t i = 0; i < hd; ++i) og[i] += w * v[i];
    }
  }
}

// Few queries per sequence (decoding): every (row, kv head) of every listed sequence is one task.
void attention_rows(const float* q, const AttentionSequence* seqs, const std::vector<int64_t>& which,
                    const int32_t* positions, const AttentionShape& s, float* out) {
  std::vector<std::pair<int64_t, int64_t>> rows;  // (sequence, row)
  int64_t max_keys = 0;
  for (int64_t i : which) {
    for (int64_t t = 0; t < seqs[i].n_rows; ++t) {
      rows.emplace_back(i, seqs[i].row_begin + t);
      max_keys = std::max<int64_t>(max_keys, positions[seqs[i].row_begin + t] + 1);
    }
  }
  const auto n_tasks = int64_t(rows.size()) * s.n_kv_heads;
  const int64_t group = s.n_heads / s.n_kv_heads;
  const int64_t row_floats = s.n_heads * s.head_dim;
#pragma omp parallel if (n_tasks > 1)
  {
    std::vector<float> scores(size_t(group * max_keys)), buffer(size_t(s.head_dim));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const auto [seq, t] = rows[size_t(task / s.n_kv_heads)];
      attend_group(q + t * row_floats, seqs[seq].kv, positions[t], task % s.n_kv_heads, s, scores.data(),
                   buffer.data(), out + t * row_floats);
    }
  }
}

constexpr int64_t kMatrixRows = 16;  // from this many rows of one sequence on, scores are a matmul

}  // namespace

void attention_paged(const float* q, const AttentionSequence* sequences, int64_t n_sequences, const int32_t* positions,
                     const AttentionShape& shape, float* out) {
  std::vector<int64_t> few;
  for (int64_t i = 0; i < n_sequences; ++i) {
    const AttentionSequence& sq = sequences[i];
    if (sq.n_rows >= kMatrixRows) {
      const int64_t r = sq.row_begin;
      attention_matrix(q + r * shape.n_heads * shape.head_dim, sq.kv, positions + r, sq.n_rows, shape,
                       out + r * shape.n_heads * shape.head_dim);
    } else if (sq.n_rows > 0) {
      few.push_back(i);
    }
  }
  if (!few.empty()) attention_rows(q, sequences, few, positions, shape, out);
}

void attention(const float* q, const float* k_cache, const float* v_cache, int64_t kv_stride, const int32_t* positions,
               int64_t n_rows, const AttentionShape& shape, float* out) {
  // One block holding every position.
  AttentionSequence seq;
  seq.n_rows = n_rows;
  const auto* k_bytes = reinterpret_cast<const uint8_t*>(k_cache);
  const auto* v_bytes = reinterpret_cast<const uint8_t*>(v_cache);
  seq.kv.k_blocks = &k_bytes;
  seq.kv.v_blocks = &v_bytes;
  seq.kv.block_size = std::numeric_limits<int64_t>::max();
  seq.kv.k_row_bytes = seq.kv.v_row_bytes = size_t(kv_stride) * sizeof(float);
  attention_paged(q, &seq, 1, positions, shape, out);
}

void log_softmax(const float* x, float* out, int64_t n) {
  float max_v = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max_v = std::max(max_v, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - double(max_v));
  const float log_z = float(double(max_v) + std::log(sum));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - log_z;
}

}  // namespace slm::cpu
