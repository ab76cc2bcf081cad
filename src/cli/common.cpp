#include "common.hpp"

#include <omp.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "slm/engine/kv_cache.hpp"
#include "slm/hub/names.hpp"
#include "slm/hub/store.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string cleaned;
  for (char ch : text) cleaned += (ch == '[' || ch == ']' || ch == ',') ? ' ' : ch;
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX) {
      fail(ErrorKind::invalid_argument, "expected token ids like 1,2,3; found '{}'", word);
    }
    ids.push_back(int32_t(v));
  }
  return ids;
}

std::string ids_to_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(ids[i]);
  }
  return s + "]";
}

void add_cache_type_options(CLI::App* cmd, CacheTypeArgs& args) {
  cmd->add_option("--cache-type-k", args.k, "KV cache type of the keys: f32, f16 or q8_0")->capture_default_str();
  cmd->add_option("--cache-type-v", args.v, "KV cache type of the values: f32, f16 or q8_0")->capture_default_str();
}

std::pair<DType, DType> cache_types(const CacheTypeArgs& args) {
  return {parse_kv_type(args.k, "--cache-type-k"), parse_kv_type(args.v, "--cache-type-v")};
}

void add_sampling_options(CLI::App* cmd, SamplerOptions& sampling, int64_t& seed) {
  cmd->add_option("--temp", sampling.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", sampling.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", sampling.top_p, "Top-p (1: off)")->capture_default_str();
  cmd->add_option("--min-p", sampling.min_p, "Min-p (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", sampling.repeat_penalty, "Repetition penalty (1: off)")->capture_default_str();
  cmd->add_option("--repeat-last-n", sampling.repeat_last_n, "Tokens the penalties look back over")->capture_default_str();
  cmd->add_option("--presence-penalty", sampling.presence_penalty, "Presence penalty")->capture_default_str();
  cmd->add_option("--frequency-penalty", sampling.frequency_penalty, "Frequency penalty")->capture_default_str();
  cmd->add_option("-s,--seed", seed, "Random seed (-1: random)");
}

SamplerOptions with_seed(SamplerOptions sampling, int64_t seed) {
  sampling.seed = seed < 0 ? 0xFFFFFFFFu : uint64_t(seed);
  return sampling;
}

void set_threads(int threads) {
  if (threads < 0) fail(ErrorKind::invalid_argument, "--threads must be >= 0, found {}", threads);
  if (threads > 0) omp_set_num_threads(threads);
}

std::string resolve_model_path(const std::string& path_or_name) {
  if (path_or_name.empty()) return demo_model_path();
  std::error_code ec;
  if (std::filesystem::exists(path_or_name, ec) || !hub::looks_like_model_name(path_or_name)) return path_or_name;
  const bool hf = path_or_name.rfind("hf:", 0) == 0;
  try {
    hub::parse_model_name(path_or_name, true);
  } catch (const Error&) {
    if (hf) throw;
    return path_or_name;  // not a name: the loader reports the missing path
  }
  const hub::Store store = hub::Store::from_env();
  if (auto m = store.find(path_or_name)) return m->model_path().string();
  fail(ErrorKind::not_found, "'{}' does not exist as a file or folder, and the model store ({}) has no model of that name; {}",
       path_or_name, store.root().string(),
       hf ? "download it with `slm pull " + path_or_name + "`" : std::string("download it with `slm pull hf:OWNER/REPO[:QUANT]`"));
}

std::shared_ptr<const Model> load_model(const std::string& path_or_name) {
  return Model::load(resolve_model_path(path_or_name));
}

std::string demo_model_path() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path dir = exe.parent_path(); !ec && !dir.empty(); dir = dir.parent_path()) {
    const fs::path candidate = dir / "models" / "demo" / "demo-q8_0.gguf";
    if (fs::exists(candidate, ec)) return candidate.string();
    if (dir == dir.parent_path()) break;
  }
#ifdef SLM_SOURCE_DIR
  const fs::path built_from = fs::path(SLM_SOURCE_DIR) / "models" / "demo" / "demo-q8_0.gguf";
  if (fs::exists(built_from, ec)) return built_from.string();
#endif
  fail(ErrorKind::not_found,
       "no MODEL given and the demo model (models/demo/demo-q8_0.gguf) is not in a folder above this slm; name a GGUF "
       "file, a Hugging Face folder or a stored model");
}

const Tokenizer& require_tokenizer(const Model& model) {
  if (!model.tokenizer()) {
    fail(ErrorKind::invalid_argument, "model '{}' carries no tokenizer; pass token ids instead (--tokens)", model.path());
  }
  return *model.tokenizer();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::io, "cannot open '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_stdin() {
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

}  // namespace slm::cli
