// Scale searches behind the quantizers: for a group of values, try a small grid of candidate
// scales, give each candidate its weighted least-squares fit, keep the best. This is the idea of
// llama.cpp's reference quantizers (a handful of candidate scales around the one that maps the
// extreme value to the extreme level, each refined by least squares); the grids are the ones each
// format's reference quantizer uses, so errors match llama.cpp's on the same data.
#include <cmath>

#include "slm/format/quant_internal.hpp"

namespace slm::quant_detail {
namespace {

constexpr float kAllZero = 1e-15f;  // groups whose largest magnitude is below this quantize to 0

// The value of largest magnitude (the first one on ties), and that magnitude.
void signed_extreme(int n, const float* x, float* extreme, float* magnitude) {
  float best = 0.0f, value = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > best) {
      best = a;
      value = x[i];
    }
  }
  *extreme = value;
  *magnitude = best;
}

// Levels of x at inverse scale `inverse`, clamped to [-nmax, nmax - 1], with the weighted sums
// sum(w x l) and sum(w l^2).
void symmetric_levels(int n, int nmax, const float* x, const float* w, float inverse, int* l, float* sum_xl,
                      float* sum_ll) {
  float xl = 0.0f, ll = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int q = clamp_int(round_even(inverse * x[i]), -nmax, nmax - 1);
    l[i] = q;
    xl += w[i] * x[i] * float(q);
    ll += w[i] * float(q) * float(q);
  }
  *sum_xl = xl;
  *sum_ll = ll;
}

}  // namespace

float fit_symmetric(int n, int nmax, const float* x, const float* w, uint8_t* levels) {
  float extreme, magnitude;
  signed_extreme(n, x, &extreme, &magnitude);
  if (magnitude < kAllZero) {
    for (int i = 0; i < n; ++i) levels[i] = uint8_t(nmax);
    return 0.0f;
  }
  int best_l[kSuperBlock], trial[kSuperBlock];
  float sum_xl, sum_ll;
  symmetric_levels(n, nmax, x, w, -float(nmax) / extreme, best_l, &sum_xl, &sum_ll);
  float scale = sum_ll != 0.0f ? sum_xl / sum_ll : 0.0f;
  float best = scale * sum_xl;  // = sum_xl^2 / sum_ll: larger is a smaller weighted error
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    const float inverse = -(float(nmax) + 0.1f * float(k)) / extreme;
    symmetric_levels(n, nmax, x, w, inverse, trial, &sum_xl, &sum_ll);
    if (sum_ll > 0.0f && sum_xl * sum_xl > best * sum_ll) {
      scale = sum_xl / sum_ll;
      best = scale * sum_xl;
      for (int i = 0; i < n; ++i) best_l[i] = trial[i];
    }
  }
  for (int i = 0; i < n; ++i) levels[i] = uint8_t(best_l[i] + nmax);
  return scale;
}

float fit_symmetric_refined(int n, int nmax, const float* x, uint8_t* levels) {
  float extreme, magnitude;
  signed_extreme(n, x, &extreme, &magnitude);
  if (magnitude < kAllZero) {
    for (int i = 0; i < n; ++i) levels[i] = uint8_t(nmax);
    return 0.0f;
  }
  const float inverse = -float(nmax) / extreme;
  int l[kSuperBlock];
  float sum_xl = 0.0f, sum_ll = 0.0f;
  for (int i = 0; i < n; ++i) {
    l[i] = clamp_int(round_even(inverse * x[i]), -nmax, nmax - 1);
    const float w = x[i] * x[i];
    sum_xl += w * x[i] * float(l[i]);
    sum_ll += w * float(l[i]) * float(l[i]);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      // The sums without element i; its best level given the others is x * sum_ll / sum_xl.
      float xl = sum_xl - w * x[i] * float(l[i]);
      if (!(xl > 0.0f)) continue;
      float ll = sum_ll - w * float(l[i]) * float(l[i]);
      const int candidate = clamp_int(round_even(x[i] * ll / xl), -nmax, nmax - 1);
      if (candidate == l[i]) continue;
      xl += w * x[i] * float(candidate);
      ll += w * float(candidate) * float(candidate);
      // Keep the move when it raises sum_xl^2 / sum_ll.
      if (ll > 0.0f && xl * xl * sum_ll > sum_xl * sum_xl * ll) {
        l[i] = candidate;
        sum_xl = xl;
        sum_ll = ll;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) levels[i] = uint8_t(l[i] + nmax);
  return sum_ll > 0.0f ? sum_xl / sum_ll : 0.0f;
}

float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* levels, float* offset,
                 const AffineGrid& grid) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0.0f) lo = 0.0f;  // the minimum the format subtracts is never positive
  if (!(hi > lo)) {
    for (int i = 0; i < n; ++i) levels[i] = 0;
    *offset = -lo;
    return 0.0f;
  }
  auto error_of = [&](float diff) { return grid.absolute_error ? std::fabs(diff) : diff * diff; };

  float inverse = float(nmax) / (hi - lo);
  float scale = 1.0f / inverse;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int q = clamp_int(round_even(inverse * (x[i] - lo)), 0, nmax);
    levels[i] = uint8_t(q);
    best_error += w[i] * error_of(scale * float(q) + lo - x[i]);
  }
  uint8_t trial[kSuperBlock];
  for (int k = 0; k <= grid.steps; ++k) {
    // The range is measured from the best minimum found so far (as the reference quantizers do).
    inverse = (grid.first + grid.step * float(k) + float(nmax)) / (hi - lo);
    float sum_l = 0.0f, sum_ll = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float v = inverse * (x[i] - lo);
      const int q = v > 0.0f ? round_even(v < float(nmax) ? v : float(nmax)) : 0;
      trial[i] = uint8_t(q);
      sum_l += w[i] * float(q);
      sum_ll += w[i] * float(q) * float(q);
      sum_xl += w[i] * float(q) * x[i];
    }
    // Weighted least squares of x ~ a l + b: the normal equations' determinant and solution.
    const float det = sum_w * sum_ll - sum_l * sum_l;
    if (!(det > 0.0f)) continue;
    float a = (sum_w * sum_xl - sum_x * sum_l) / det;
    float b = (sum_ll * sum_x - sum_l * sum_xl) / det;
    if (b > 0.0f) {  // a positive minimum is not allowed: fit the scale alone
      b = 0.0f;
      a = sum_xl / sum_ll;
    }
    float error = 0.0f;
    for (int i = 0; i < n; ++i) error += w[i] * error_of(a * float(trial[i]) + b - x[i]);
    if (error < best_error) {
      for (int i = 0; i < n; ++i) levels[i] = trial[i];
      best_error = error;
      scale = a;
      lo = b;
    }
  }
  *offset = -lo;
  return scale;
}

int nearest_index16(const int8_t* table, float x) {
  // Entry k is chosen once x reaches the midpoint of entries k-1 and k (compared doubled, exact).
  const float twice = x + x;
  int index = 0;
  for (int k = 1; k < 16; ++k) {
    if (twice >= float(int(table[k - 1]) + int(table[k]))) index = k;
  }
  return index;
}

}  // namespace slm::quant_detail
