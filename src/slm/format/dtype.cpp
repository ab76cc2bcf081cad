#include "slm/format/dtype.hpp"

#include <array>

#include "slm/util/error.hpp"

namespace slm {
namespace {

struct Entry {
  uint32_t number;
  DTypeTraits traits;
};

// Block layouts as GGUF files store them (ggml's type table); K-quants and most IQ types use
// super-blocks of 256 elements.
constexpr std::array<Entry, 31> kTable = {{
    {0, {"f32", 1, 4}},
    {1, {"f16", 1, 2}},
    {2, {"q4_0", 32, 18}},
    {3, {"q4_1", 32, 20}},
    {6, {"q5_0", 32, 22}},
    {7, {"q5_1", 32, 24}},
    {8, {"q8_0", 32, 34}},
    {9, {"q8_1", 32, 36}},
    {10, {"q2_K", 256, 84}},
    {11, {"q3_K", 256, 110}},
    {12, {"q4_K", 256, 144}},
    {13, {"q5_K", 256, 176}},
    {14, {"q6_K", 256, 210}},
    {15, {"q8_K", 256, 292}},
    {16, {"iq2_xxs", 256, 66}},
    {17, {"iq2_xs", 256, 74}},
    {18, {"iq3_xxs", 256, 98}},
    {19, {"iq1_s", 256, 50}},
    {20, {"iq4_nl", 32, 18}},
    {21, {"iq3_s", 256, 110}},
    {22, {"iq2_s", 256, 82}},
    {23, {"iq4_xs", 256, 136}},
    {24, {"i8", 1, 1}},
    {25, {"i16", 1, 2}},
    {26, {"i32", 1, 4}},
    {27, {"i64", 1, 8}},
    {28, {"f64", 1, 8}},
    {29, {"iq1_m", 256, 56}},
    {30, {"bf16", 1, 2}},
    {34, {"tq1_0", 256, 54}},
    {35, {"tq2_0", 256, 66}},
}};

const Entry* find_entry(uint32_t number) {
  for (const Entry& entry : kTable) {
    if (entry.number == number) return &entry;
  }
  return nullptr;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<DTypeTraits> dtype_traits(uint32_t type) {
  const Entry* entry = find_entry(type);
  if (entry == nullptr) return std::nullopt;
  return entry->traits;
}

const DTypeTraits& dtype_traits(DType type) {
  const Entry* entry = find_entry(uint32_t(type));
  if (entry == nullptr) fail(ErrorKind::internal, "expected a known tensor type, found number {}", uint32_t(type));
  return entry->traits;
}

std::string_view dtype_name(DType type) { return dtype_traits(type).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const Entry& entry : kTable) {
    if (equal_ignoring_case(entry.traits.name, name)) return DType(entry.number);
  }
  return std::nullopt;
}

size_t dtype_row_bytes(DType type, uint64_t n) {
  const DTypeTraits& traits = dtype_traits(type);
  if (n % traits.block_size != 0) {
    fail(ErrorKind::format, "expected a row length that is a multiple of {} (the block size of {}), found {}",
         traits.block_size, traits.name, n);
  }
  const uint64_t blocks = n / traits.block_size;
  if (blocks > SIZE_MAX / traits.block_bytes) {
    fail(ErrorKind::out_of_range, "a row of {} {} elements does not fit in memory sizes", n, traits.name);
  }
  return size_t(blocks * traits.block_bytes);
}

}  // namespace slm
