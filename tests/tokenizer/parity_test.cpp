// Token-for-token parity with Hugging Face `tokenizers` on the hard-strings corpus, for real
// vocabularies (Qwen3, Llama 3.1, Llama 2 / Mistral, Gemma 3) and small trained ones (a Unigram and
// an o200k-pattern byte-level BPE, in tests/data/tokenizer), loaded from tokenizer.json and from a
// GGUF written by slm. Expected ids: tests/data/tokenizer/expected_*.jsonl, made by
// tools/ref/tokenizer_ref.py and tools/ref/make_tokenizer_fixtures.py.
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

// Llama 2's tokenizer.json as newer transformers writes it (legacy false): no normalizer, a
// Metaspace pre-tokenizer that puts "▁" only before the start of the input and does not split,
// and a Metaspace decoder (tools/ref/make_tokenizer_fixtures.py --variants makes the same change).
std::string llama2_metaspace_json() {
  const std::string base = test::lenml_tokenizer_json("llama2");
  if (base.empty()) return {};
  nlohmann::json j = nlohmann::json::parse(std::ifstream(base));
  const nlohmann::json metaspace = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = metaspace;
  j["decoder"] = metaspace;
  const auto path = test::scratch_dir("llama2_metaspace") / "tokenizer.json";
  test::write_text(path, j.dump());
  return path.string();
}

// An @lenml package's tokenizer.json, else tests/data/tokenizer/tokenizer_<name>.json.
const Tokenizer* from_json(const std::string& name) {
  std::string path = name == "llama2_metaspace" ? llama2_metaspace_json() : test::lenml_tokenizer_json(name);
  if (path.empty() && std::filesystem::exists(test::test_data("tokenizer_" + name + ".json"))) {
    path = test::test_data("tokenizer_" + name + ".json").string();
  }
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
    if (row.contains("decoded_skip")) {
      const std::string skipped = utf8::to_valid(tok->decode(ids, true));
      if (skipped != row["decoded_skip"].get<std::string>()) {
        ok = false;
        no_parse_note += "\n  decoded (skip special): " + nlohmann::json(skipped).dump() + "\n  expected: " + row["decoded_skip"].dump();
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

TEST(RealVocabularies, SpecialTokensAndNames) {
  const Tokenizer* qwen = from_json("qwen3");
  const Tokenizer* llama = from_json("llama3_1");
  SKIP_WITHOUT_ASSETS(qwen != nullptr && llama != nullptr ? qwen : nullptr);

  const TokenizerData& q = qwen->data();
  EXPECT_EQ(q.pre, "qwen2");
  EXPECT_EQ(q.normalizer, "NFC");
  EXPECT_FALSE(q.ignore_merges);
  EXPECT_EQ(q.tokens.size(), 151669u);
  EXPECT_EQ(q.bos_id, -1);
  EXPECT_FALSE(q.add_bos);
  EXPECT_EQ(q.tokens[q.eos_id], "<|im_end|>");
  EXPECT_EQ(q.tokens[q.pad_id], "<|endoftext|>");
  EXPECT_TRUE(qwen->is_eog(qwen->token_id("<|im_end|>")));
  EXPECT_TRUE(qwen->is_eog(qwen->token_id("<|endoftext|>")));
  EXPECT_FALSE(qwen->is_eog(qwen->token_id("<|im_start|>")));
  EXPECT_TRUE(qwen->is_control(qwen->token_id("<|im_start|>")));
  EXPECT_FALSE(qwen->is_control(qwen->token_id("<think>")));  // an added token, but not special
  EXPECT_NE(q.chat_template.find("<|im_start|>"), std::string::npos);

  const TokenizerData& l = llama->data();
  EXPECT_EQ(l.pre, "llama-bpe");
  EXPECT_EQ(l.normalizer, "");
  EXPECT_TRUE(l.ignore_merges);
  EXPECT_EQ(l.tokens.size(), 128256u);
  EXPECT_EQ(l.bos_id, 128000);
  EXPECT_TRUE(l.add_bos);
  EXPECT_FALSE(l.add_eos);
  EXPECT_EQ(l.tokens[l.eos_id], "<|eot_id|>");
  // This file numbers its special tokens as Llama 3 does (128008 is reserved, no <|eom_id|>).
  EXPECT_EQ(l.eog_ids, (std::vector<int32_t>{128001, 128009}));
  EXPECT_NE(l.chat_template.find("<|start_header_id|>"), std::string::npos);

  // Both match table entries, so their GGUF metadata is what llama.cpp writes: no slm keys.
  for (const Tokenizer* tok : {qwen, llama}) {
    gguf::Writer writer;
    Tokenizer::write_gguf(tok->data(), writer);
    const auto path = test::scratch_dir("keys") / "t.gguf";
    writer.write(path.string());
    const gguf::File file = gguf::File::open(path.string());
    for (const auto& [key, value] : file.metadata()) {
      EXPECT_EQ(key.rfind("tokenizer.slm.", 0), std::string::npos) << key;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, Parity,
                         ::testing::Values(Case{"qwen3", false}, Case{"llama3_1", false}, Case{"qwen3", true},
                                           Case{"llama3_1", true}, Case{"llama2", false}, Case{"llama2", true},
                                           Case{"gemma3", false}, Case{"gemma3", true}, Case{"unigram_small", false},
                                           Case{"unigram_small", true}, Case{"o200k_small", false},
                                           Case{"o200k_small", true}, Case{"llama2_metaspace", false},
                                           Case{"llama2_metaspace", true}),
                         [](const auto& info) { return info.param.name + (info.param.gguf ? "_gguf" : "_json"); });

}  // namespace
}  // namespace slm
