// Quantization recipes (llama.cpp's file types and its per-tensor rules) and `slm quantize`.
#include "slm/model/quantize.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <exception>
#include <set>

#include "slm/format/gguf.hpp"
#include "slm/format/quant.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

// llama.cpp's LLAMA_FTYPE numbers (general.file_type) of the recipes slm writes.
enum FileType : uint32_t {
  kAllF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 7,
  kQ5_0 = 8,
  kQ5_1 = 9,
  kQ2_K = 10,
  kQ3_K_S = 11,
  kQ3_K_M = 12,
  kQ3_K_L = 13,
  kQ4_K_S = 14,
  kQ4_K_M = 15,
  kQ5_K_S = 16,
  kQ5_K_M = 17,
  kQ6_K = 18,
  kIQ4_NL = 25,
  kIQ4_XS = 30,
  kBF16 = 32,
};

constexpr QuantRecipe kRecipes[] = {
    {"F32", kAllF32, DType::F32},     {"F16", kF16, DType::F16},          {"BF16", kBF16, DType::BF16},
    {"Q8_0", kQ8_0, DType::Q8_0},     {"Q4_0", kQ4_0, DType::Q4_0},       {"Q4_1", kQ4_1, DType::Q4_1},
    {"Q5_0", kQ5_0, DType::Q5_0},     {"Q5_1", kQ5_1, DType::Q5_1},       {"Q2_K", kQ2_K, DType::Q2_K},
    {"Q3_K_S", kQ3_K_S, DType::Q3_K}, {"Q3_K_M", kQ3_K_M, DType::Q3_K},   {"Q3_K_L", kQ3_K_L, DType::Q3_K},
    {"Q4_K_S", kQ4_K_S, DType::Q4_K}, {"Q4_K_M", kQ4_K_M, DType::Q4_K},   {"Q5_K_S", kQ5_K_S, DType::Q5_K},
    {"Q5_K_M", kQ5_K_M, DType::Q5_K}, {"Q6_K", kQ6_K, DType::Q6_K},       {"IQ4_NL", kIQ4_NL, DType::IQ4_NL},
    {"IQ4_XS", kIQ4_XS, DType::IQ4_XS},
};

bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

enum class Category { token_embd, output, attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_up, ffn_gate, ffn_down, other };

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Category category_of(std::string_view name) {
  if (name == "output.weight") return Category::output;
  if (name == "token_embd.weight") return Category::token_embd;
  if (contains(name, "attn_qkv.weight")) return Category::attn_qkv;
  if (contains(name, "attn_kv_b.weight") || contains(name, "attn_v.weight")) return Category::attn_v;
  if (contains(name, "attn_k.weight")) return Category::attn_k;
  if (contains(name, "attn_q.weight")) return Category::attn_q;
  if (contains(name, "attn_output.weight")) return Category::attn_output;
  if (contains(name, "ffn_up")) return Category::ffn_up;
  if (contains(name, "ffn_gate")) return Category::ffn_gate;
  if (contains(name, "ffn_down")) return Category::ffn_down;
  return Category::other;
}

// Weights the recipes quantize: 2+ dimensions, a name ending in "weight", no norms, no expert router,
// no position or token-type embeddings, no small convolution kernels.
bool quantizable(const RecipeTensor& t) {
  const std::string_view name = t.name;
  if (t.dims.size() < 2 || !name.ends_with("weight")) return false;
  for (std::string_view excluded : {"_norm.weight", "ffn_gate_inp.weight", "position_embd", "token_types.weight",
                                    "ssm_conv1d", "attn_rel_b.weight"}) {
    if (contains(name, excluded)) return false;
  }
  return true;
}

// Layer number of "blk.N." names; -1 for the others.
int64_t layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return -1;
  int64_t layer = 0;
  size_t i = 4;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) layer = layer * 10 + (name[i] - '0');
  return (i < name.size() && name[i] == '.') ? layer : -1;
}

// The first and last eighth of the layers and every third layer in between get more bits.
bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// llama.cpp's per-tensor adjustments of the recipe's type (non-MoE models, no importance matrix).
DType recipe_type(uint32_t ftype, DType type, Category category, bool tied, int64_t rank, int64_t count,
                  int64_t n_layers, int64_t n_gqa, uint64_t row_length) {
  if (category == Category::output || (tied && category == Category::token_embd)) {
    if (row_length % dtype_traits(type).block_size != 0) return DType::Q8_0;
    return type == DType::Q8_0 ? type : DType::Q6_K;
  }
  switch (category) {
    case Category::attn_v:
      if (ftype == kQ2_K) return n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
      if (ftype == kQ3_K_M) return rank < 2 ? DType::Q5_K : DType::Q4_K;
      if (ftype == kQ3_K_L) return DType::Q5_K;
      if ((ftype == kIQ4_NL || ftype == kIQ4_XS) && n_gqa >= 4) return DType::Q5_K;
      if ((ftype == kQ4_K_M || ftype == kQ5_K_M) && more_bits(rank, count)) return DType::Q6_K;
      if (ftype == kQ4_K_S && rank < 4) return DType::Q5_K;
      return type;
    case Category::ffn_down:
      if (ftype == kQ2_K) return DType::Q3_K;
      if (ftype == kQ3_K_M) return rank < n_layers / 16 ? DType::Q5_K : DType::Q4_K;
      if (ftype == kQ3_K_L) return DType::Q5_K;
      if (ftype == kQ4_K_M) return more_bits(rank, n_layers) ? DType::Q6_K : type;
      if ((ftype == kIQ4_NL || ftype == kIQ4_XS) && rank < n_layers / 8) return DType::Q5_K;
      if (ftype == kQ5_K_M && more_bits(rank, n_layers)) return DType::Q6_K;
      if (ftype == kQ4_K_S && rank < n_layers / 8) return DType::Q5_K;
      return type;
    case Category::attn_output:
      if (ftype == kQ2_K) return DType::Q3_K;
      if (ftype == kQ3_K_M) return DType::Q4_K;
      if (ftype == kQ3_K_L) return DType::Q5_K;
      return type;
    case Category::attn_qkv:
      if (ftype == kQ3_K_M || ftype == kQ3_K_L) return DType::Q4_K;
      if (ftype == kQ4_K_M) return DType::Q5_K;
      if (ftype == kQ5_K_M) return DType::Q6_K;
      return type;
    default:
      return type;
  }
}

// A type whose blocks fit rows of `row_length`, when `type`'s do not.
DType fallback_type(DType type, uint64_t row_length) {
  DType next = DType::F16;
  switch (type) {
    case DType::IQ4_XS: next = DType::IQ4_NL; break;
    case DType::Q2_K:
    case DType::Q3_K: next = DType::Q4_0; break;
    case DType::Q4_K: next = DType::Q5_0; break;
    case DType::Q5_K: next = DType::Q5_1; break;
    case DType::Q6_K: next = DType::Q8_0; break;
    default: break;
  }
  return row_length % dtype_traits(next).block_size == 0 ? next : DType::F16;
}

// Rank of each tensor of a category in llama.cpp's visiting order (by layer, then by name).
std::vector<int64_t> ranks(const std::vector<RecipeTensor>& tensors, const std::vector<Category>& categories,
                           Category wanted, int64_t* count) {
  std::vector<size_t> members;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (categories[i] == wanted) members.push_back(i);
  }
  std::sort(members.begin(), members.end(), [&](size_t a, size_t b) {
    const int64_t la = layer_of(tensors[a].name), lb = layer_of(tensors[b].name);
    return la != lb ? la < lb : tensors[a].name < tensors[b].name;
  });
  std::vector<int64_t> rank(tensors.size(), -1);
  for (size_t r = 0; r < members.size(); ++r) rank[members[r]] = int64_t(r);
  *count = int64_t(members.size());
  return rank;
}

std::string type_name(DType t) { return std::string(dtype_name(t)); }

int64_t metadata_int(const gguf::File& file, const std::string& key, int64_t fallback) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr || !v->is_integer()) return fallback;  // absent, or per-layer arrays: not used here
  return v->as_int();
}

}  // namespace

std::optional<QuantRecipe> quant_recipe(std::string_view name) {
  for (const auto& [alias, target] : {std::pair<std::string_view, std::string_view>{"Q3_K", "Q3_K_M"},
                                      {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}}) {
    if (same_ignoring_case(name, alias)) name = target;
  }
  for (const QuantRecipe& r : kRecipes) {
    if (same_ignoring_case(r.name, name)) return r;
  }
  return std::nullopt;
}

std::string quant_recipe_names() {
  std::string names;
  for (const QuantRecipe& r : kRecipes) names += (names.empty() ? "" : ", ") + std::string(r.name);
  return names;
}

std::vector<TensorTypeChoice> choose_tensor_types(const QuantRecipe& recipe, const std::vector<RecipeTensor>& tensors,
                                                  const RecipeModel& model) {
  std::vector<Category> categories;
  bool tied = true;  // until an output.weight shows up
  for (const auto& t : tensors) {
    categories.push_back(category_of(t.name));
    if (categories.back() == Category::output) tied = false;
  }
  int64_t n_attn_v = 0, n_ffn_down = 0;
  const auto attn_v_rank = ranks(tensors, categories, Category::attn_v, &n_attn_v);
  const auto ffn_down_rank = ranks(tensors, categories, Category::ffn_down, &n_ffn_down);
  const int64_t n_gqa = model.n_kv_heads > 0 ? model.n_heads / model.n_kv_heads : 1;
  const int64_t n_layers = model.n_layers > 0 ? model.n_layers : n_ffn_down;

  std::vector<TensorTypeChoice> choices(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const RecipeTensor& t = tensors[i];
    TensorTypeChoice& c = choices[i];
    if (!quantizable(t)) {
      c.type = t.type;
      continue;
    }
    c.quantize = true;
    c.type = recipe.default_type;
    if (!is_block_quantized(recipe.default_type)) continue;  // F32/F16/BF16 recipes: every weight alike
    const uint64_t row_length = t.dims[0];
    const Category cat = categories[i];
    const int64_t rank = cat == Category::attn_v ? attn_v_rank[i] : ffn_down_rank[i];
    const int64_t count = cat == Category::attn_v ? n_attn_v : n_ffn_down;
    c.type = recipe_type(recipe.file_type, recipe.default_type, cat, tied, rank, count, n_layers, n_gqa, row_length);
    if (row_length % dtype_traits(c.type).block_size != 0) {
      c.type = fallback_type(c.type, row_length);
      c.fallback = true;
    }
  }
  return choices;
}

std::vector<uint8_t> convert_tensor_data(DType from, const void* data, int64_t rows, int64_t cols, DType to) {
  if (!quant_supported(from)) {
    fail(ErrorKind::unsupported, "convert: cannot read tensors of type {} (expected f32, f16, bf16 or a block format slm decodes)",
         dtype_name(from));
  }
  if (rows < 0 || cols <= 0) fail(ErrorKind::invalid_argument, "convert: expected rows >= 0 and cols > 0, found {} x {}", rows, cols);
  const size_t in_row = dtype_row_bytes(from, uint64_t(cols));
  const size_t out_row = quantized_row_bytes(to, cols);
  std::vector<uint8_t> out(size_t(rows) * out_row);
  const auto* src = static_cast<const uint8_t*>(data);
  if (from == to) {
    std::memcpy(out.data(), src, out.size());
    return out;
  }
  const int n_threads = std::max(1, omp_get_max_threads());
  std::vector<float> scratch(size_t(n_threads) * size_t(cols));
  std::exception_ptr error;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 16)
  for (int64_t r = 0; r < rows; ++r) {
    float* values = scratch.data() + size_t(omp_get_thread_num()) * size_t(cols);
    try {
      dequantize_row(from, src + size_t(r) * in_row, values, cols);
      quantize_row(to, values, out.data() + size_t(r) * out_row, cols);
    } catch (...) {
#pragma omp critical(slm_convert_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

QuantizeReport quantize_gguf(const std::string& in, const std::string& out, const QuantizeOptions& options,
                             const std::function<void(const QuantizedTensor&)>& on_tensor) {
  const auto recipe = quant_recipe(options.recipe);
  if (!recipe) {
    fail(ErrorKind::invalid_argument, "unknown quantization type '{}': expected one of {}", options.recipe,
         quant_recipe_names());
  }
  const gguf::File file = gguf::File::open(in);
  const std::string arch = file.get_string("general.architecture").value_or("");
  std::vector<RecipeTensor> tensors;
  std::set<int64_t> layers;
  for (const auto& t : file.tensors()) {
    tensors.push_back({t.name, t.dims, t.type});
    if (layer_of(t.name) >= 0) layers.insert(layer_of(t.name));
  }
  RecipeModel model;
  model.n_layers = metadata_int(file, arch + ".block_count", int64_t(layers.size()));
  model.n_heads = metadata_int(file, arch + ".attention.head_count", 1);
  model.n_kv_heads = metadata_int(file, arch + ".attention.head_count_kv", model.n_heads);
  const auto choices = choose_tensor_types(*recipe, tensors, model);

  gguf::Writer writer(file.alignment());
  for (const auto& [key, value] : file.metadata()) {
    if (key == "general.alignment" || key.starts_with("split.")) continue;  // the writer sets the alignment
    writer.set(key, value);
  }
  writer.set("general.file_type", gguf::Value::of_u32(recipe->file_type));
  writer.set("general.quantization_version", gguf::Value::of_u32(2));

  QuantizeReport report;
  report.file_type = recipe->file_type;
  std::deque<std::vector<uint8_t>> buffers;  // converted data, alive until the file is written
  for (size_t i = 0; i < tensors.size(); ++i) {
    const gguf::TensorInfo& info = file.tensors()[i];
    const TensorTypeChoice& choice = choices[i];
    QuantizedTensor q;
    q.name = info.name;
    q.shape.assign(info.dims.rbegin(), info.dims.rend());
    q.from = info.type;
    q.to = choice.type;
    q.bytes_from = info.n_bytes();
    q.fallback = choice.fallback;
    const void* data = file.tensor_data(info);
    if (q.to != q.from) {
      if (is_block_quantized(q.from) && !options.allow_requantize) {
        fail(ErrorKind::invalid_argument,
             "tensor '{}' is already {}: quantizing it again to {} loses more precision than quantizing the original "
             "(pass --allow-requantize to do it anyway)",
             q.name, type_name(q.from), type_name(q.to));
      }
      const int64_t cols = int64_t(info.dims[0]);
      const int64_t rows = cols > 0 ? int64_t(info.n_elements() / info.dims[0]) : 0;
      data = buffers.emplace_back(convert_tensor_data(q.from, data, rows, cols, q.to)).data();
    }
    writer.add_tensor(info.name, q.to, info.dims, data);
    q.bytes_to = gguf::TensorInfo{info.name, info.dims, q.to, 0}.n_bytes();
    report.bytes_from += q.bytes_from;
    report.bytes_to += q.bytes_to;
    report.n_elements += info.n_elements();
    report.n_fallbacks += q.fallback ? 1 : 0;
    if (on_tensor) on_tensor(q);
    report.tensors.push_back(std::move(q));
  }
  writer.write(out);
  return report;
}

}  // namespace slm
