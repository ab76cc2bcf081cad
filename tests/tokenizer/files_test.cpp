// Loading tokenizers from tokenizer.json (+ tokenizer_config.json) and from GGUF metadata, and the
// errors malformed files raise.
#include <gtest/gtest.h>
#include <unistd.h>

#include "slm/format/gguf.hpp"
#include "slm/tokenizer/byte_level.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"
#include "tokenizer_test_util.hpp"

namespace slm {
namespace {

using nlohmann::json;

// A small byte-level tokenizer.json: 256 byte tokens, "he", "hello", merges, two added tokens.
json small_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[std::string(byte_level::text_of(uint8_t(b)))] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  json tok = {
      {"version", "1.0"},
      {"added_tokens",
       json::array({{{"id", 260}, {"content", "<|begin|>"}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"single_word", false}},
                    {{"id", 261}, {"content", "<|im_end|>"}, {"special", true}},
                    {{"id", 262}, {"content", "<think>"}, {"special", false}, {"rstrip", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"},
                       {"pattern", {{"Regex", "\\p{N}{1,3}| ?\\p{L}+|\\s+|[^\\s\\p{L}\\p{N}]+"}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<|begin|>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", json::array({"h e", json::array({"l", "l"}), "he ll", "hell o"})},
        {"ignore_merges", false}}},
  };
  return tok;
}

std::string write_json(const std::filesystem::path& dir, const json& j, const std::string& name = "tokenizer.json") {
  const auto path = dir / name;
  test::write_text(path, j.dump());
  return path.string();
}

ErrorKind load_error(const std::string& path) {
  try {
    Tokenizer::load(path);
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::internal;  // no error
}

TEST(TokenizerJson, LoadsASmallFile) {
  const auto dir = test::scratch_dir("small_json");
  const Tokenizer tok = Tokenizer::load(write_json(dir, small_tokenizer_json()));
  const TokenizerData& d = tok.data();
  EXPECT_EQ(d.model, "gpt2");
  EXPECT_EQ(d.pre, "default");  // the regex is not one of the table's
  EXPECT_EQ(d.pattern, "\\p{N}{1,3}| ?\\p{L}+|\\s+|[^\\s\\p{L}\\p{N}]+");
  EXPECT_EQ(tok.vocab_size(), 263u);
  EXPECT_EQ(d.types[260], TokenType::control);
  EXPECT_EQ(d.types[262], TokenType::user_defined);
  EXPECT_EQ(d.types[259], TokenType::normal);
  EXPECT_EQ(d.merges[1], "l l");
  EXPECT_EQ(d.bos_id, 260);
  EXPECT_TRUE(d.add_bos);
  EXPECT_FALSE(d.add_eos);
  EXPECT_EQ(d.eog_ids, (std::vector<int32_t>{261}));  // <|im_end|> by its text
  ASSERT_EQ(d.added_options.size(), 1u);
  EXPECT_TRUE(d.added_options[0].rstrip);
  EXPECT_EQ(tok.encode("hello12345"), (std::vector<int32_t>{260, 259, '1', '2', '3', '4', '5'}));
  EXPECT_EQ(tok.encode("<think>  hello", false), (std::vector<int32_t>{262, 259}));
  EXPECT_EQ(tok.decode(tok.encode("hello world")), "<|begin|>hello world");
  // The folder form finds tokenizer.json.
  EXPECT_EQ(Tokenizer::load(dir.string()).vocab_size(), 263u);
}

TEST(TokenizerJson, ReadsTokenizerConfigBesideIt) {
  const auto dir = test::scratch_dir("with_config");
  json tok = small_tokenizer_json();
  tok["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  write_json(dir, tok);
  write_json(dir,
             {{"add_bos_token", true},
              {"add_eos_token", false},
              {"bos_token", {{"content", "<|begin|>"}, {"lstrip", false}}},
              {"eos_token", "<|im_end|>"},
              {"pad_token", "<|im_end|>"},
              {"unk_token", nullptr},
              {"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                             {{"name", "default"}, {"template", "{{ messages }}"}}})}},
             "tokenizer_config.json");
  const Tokenizer t = Tokenizer::load(dir.string());
  EXPECT_EQ(t.data().bos_id, 260);
  EXPECT_EQ(t.data().eos_id, 261);
  EXPECT_EQ(t.data().pad_id, 261);
  EXPECT_EQ(t.data().unk_id, -1);
  EXPECT_TRUE(t.data().add_bos);
  EXPECT_EQ(t.data().chat_template, "{{ messages }}");
  EXPECT_TRUE(t.is_eog(261));
  EXPECT_EQ(t.encode("he").front(), 260);
}

TEST(TokenizerJson, ChatTemplateFileIsAFallback) {
  const auto dir = test::scratch_dir("jinja");
  write_json(dir, small_tokenizer_json());
  test::write_text(dir / "chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_EQ(Tokenizer::load(dir.string()).data().chat_template, "{% for m in messages %}{{ m.content }}{% endfor %}");
}

TEST(TokenizerJson, RecognizesKnownPreTokenizers) {
  const auto dir = test::scratch_dir("known_pre");
  json tok = small_tokenizer_json();
  tok["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                                         {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                                          {"trim_offsets", true}, {"use_regex", true}}})}};
  EXPECT_EQ(Tokenizer::data_from_tokenizer_json(write_json(dir, tok)).pre, "smollm");
  tok["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(Tokenizer::data_from_tokenizer_json(write_json(dir, tok)).pre, "gpt-2");
  tok["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  const TokenizerData prefixed = Tokenizer::data_from_tokenizer_json(write_json(dir, tok));
  EXPECT_TRUE(prefixed.add_prefix_space);
  EXPECT_EQ(Tokenizer(prefixed).encode("hello", false), (std::vector<int32_t>{' ', 259}));
}

TEST(TokenizerJson, MalformedFilesAreErrors) {
  const auto dir = test::scratch_dir("malformed");
  test::write_text(dir / "broken.json", "{\"model\": {");
  EXPECT_EQ(load_error((dir / "broken.json").string()), ErrorKind::format);

  json tok = small_tokenizer_json();
  tok.erase("model");
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::format);

  tok = small_tokenizer_json();
  tok["model"]["type"] = "Unigram";
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::unsupported);
  tok["model"]["type"] = "WordPiece";
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::unsupported);

  tok = small_tokenizer_json();
  tok["model"]["merges"].push_back("hello q\xC3\xBF");  // right side is no token
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::format);

  tok = small_tokenizer_json();
  tok["model"]["merges"].push_back(json::array({"h", 3}));
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::format);

  tok = small_tokenizer_json();
  tok["model"]["vocab"]["dup"] = 5;  // id 5 is a byte token already
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::format);

  tok = small_tokenizer_json();
  tok["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::unsupported);

  tok = small_tokenizer_json();
  tok["pre_tokenizer"] = nullptr;  // SentencePiece-style BPE: not byte-level
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::unsupported);

  tok = small_tokenizer_json();
  tok["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::unsupported);

  tok = small_tokenizer_json();
  tok["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::unsupported);

  tok = small_tokenizer_json();
  tok["post_processor"]["single"][0]["SpecialToken"]["id"] = "<|nope|>";
  EXPECT_EQ(load_error(write_json(dir, tok)), ErrorKind::format);

  EXPECT_EQ(load_error((dir / "missing.json").string()), ErrorKind::not_found);
  const auto empty = test::scratch_dir("empty_folder");
  EXPECT_EQ(load_error(empty.string()), ErrorKind::not_found);
}

TokenizerData small_data() {
  const auto dir = test::scratch_dir("small_for_gguf");
  TokenizerData data = Tokenizer::data_from_tokenizer_json(write_json(dir, small_tokenizer_json()));
  data.eos_id = 261;
  data.pad_id = 261;
  data.chat_template = "{{ bos_token }}";
  return data;
}

std::string write_gguf_file(const TokenizerData& data, const std::string& name) {
  gguf::Writer writer;
  writer.set("general.architecture", gguf::Value::of_string("qwen2"));
  Tokenizer::write_gguf(data, writer);
  const auto path = test::scratch_dir(name) / "model.gguf";
  writer.write(path.string());
  return path.string();
}

TEST(TokenizerGguf, RoundTripsThroughLlamaCppKeys) {
  TokenizerData data = small_data();
  data.pre = "qwen2";
  data.pattern.clear();  // the table's regex
  data.normalizer = "NFC";
  const std::string path = write_gguf_file(data, "gguf_round_trip");
  const gguf::File file = gguf::File::open(path);
  EXPECT_EQ(file.get_string("tokenizer.ggml.model").value_or(""), "gpt2");
  EXPECT_EQ(file.get_string("tokenizer.ggml.pre").value_or(""), "qwen2");
  EXPECT_EQ(file.get_int("tokenizer.ggml.bos_token_id").value_or(-1), 260);
  EXPECT_EQ(file.get_int("tokenizer.ggml.eos_token_id").value_or(-1), 261);
  EXPECT_EQ(file.get_int("tokenizer.ggml.padding_token_id").value_or(-1), 261);
  EXPECT_EQ(file.find("tokenizer.ggml.unknown_token_id"), nullptr);
  EXPECT_EQ(file.get_bool("tokenizer.ggml.add_bos_token").value_or(false), true);
  EXPECT_EQ(file.get_string("tokenizer.chat_template").value_or(""), "{{ bos_token }}");
  ASSERT_NE(file.find("tokenizer.ggml.token_type"), nullptr);
  EXPECT_EQ(file.find("tokenizer.ggml.token_type")->as_ints()[260], 3);
  EXPECT_EQ(file.find("tokenizer.ggml.token_type")->as_ints()[262], 4);
  for (const char* key : {"tokenizer.slm.pre_pattern", "tokenizer.slm.normalizer", "tokenizer.slm.ignore_merges",
                          "tokenizer.slm.add_prefix_space"}) {
    EXPECT_EQ(file.find(key), nullptr) << key << " is written although the table says the same";
  }
  const TokenizerData back = Tokenizer::data_from_gguf(file);
  EXPECT_EQ(back.tokens, data.tokens);
  EXPECT_EQ(back.types, data.types);
  EXPECT_EQ(back.merges, data.merges);
  EXPECT_EQ(back.pre, "qwen2");
  EXPECT_EQ(back.normalizer, "NFC");
  EXPECT_FALSE(back.ignore_merges);
  EXPECT_EQ(back.bos_id, 260);
  EXPECT_EQ(back.eos_id, 261);
  EXPECT_EQ(back.pad_id, 261);
  EXPECT_EQ(back.unk_id, -1);
  EXPECT_TRUE(back.add_bos);
  EXPECT_FALSE(back.add_eos);
  EXPECT_EQ(back.eog_ids, (std::vector<int32_t>{261}));
  EXPECT_EQ(back.chat_template, data.chat_template);
  const Tokenizer a(data);
  const Tokenizer b = Tokenizer::load(path);
  for (const char* text : {"hello 123 world", "<think>x<|im_end|>", "e\xCC\x81"}) EXPECT_EQ(a.encode(text), b.encode(text));
}

TEST(TokenizerGguf, CustomPipelinesUseSlmKeys) {
  TokenizerData data = small_data();  // pre "default" with its own regex
  data.ignore_merges = true;
  const std::string path = write_gguf_file(data, "gguf_custom");
  const gguf::File file = gguf::File::open(path);
  EXPECT_EQ(file.get_string("tokenizer.slm.pre_pattern").value_or(""), data.pattern);
  EXPECT_EQ(file.get_bool("tokenizer.slm.ignore_merges").value_or(false), true);
  const TokenizerData back = Tokenizer::data_from_gguf(file);
  EXPECT_EQ(back.pattern, data.pattern);
  EXPECT_TRUE(back.ignore_merges);
  EXPECT_EQ(Tokenizer(back).encode("hello12345"), Tokenizer(data).encode("hello12345"));
}

TEST(TokenizerGguf, UnsupportedOrMissingTokenizersAreErrors) {
  auto error_of = [](const gguf::Writer& writer, const std::string& name) {
    const auto path = test::scratch_dir(name) / "x.gguf";
    writer.write(path.string());
    return load_error(path.string());
  };
  gguf::Writer none;
  none.set("general.architecture", gguf::Value::of_string("llama"));
  EXPECT_EQ(error_of(none, "gguf_none"), ErrorKind::not_found);

  gguf::Writer spm;
  Tokenizer::write_gguf(small_data(), spm);
  spm.set("tokenizer.ggml.model", gguf::Value::of_string("llama"));  // SentencePiece BPE needs scores
  EXPECT_EQ(error_of(spm, "gguf_spm"), ErrorKind::not_found);
  spm.set("tokenizer.ggml.scores", gguf::Value::of_f32s({1.0f, 2.0f}));
  EXPECT_EQ(error_of(spm, "gguf_spm_scores"), ErrorKind::format);
  spm.set("tokenizer.ggml.model", gguf::Value::of_string("bert"));
  EXPECT_EQ(error_of(spm, "gguf_wordpiece"), ErrorKind::unsupported);

  TokenizerData unknown = small_data();
  unknown.pre = "qwen2";
  unknown.pattern.clear();
  gguf::Writer unknown_pre;
  Tokenizer::write_gguf(unknown, unknown_pre);
  unknown_pre.set("tokenizer.ggml.pre", gguf::Value::of_string("some-future-model"));
  EXPECT_EQ(error_of(unknown_pre, "gguf_unknown_pre"), ErrorKind::unsupported);

  gguf::Writer short_types;
  Tokenizer::write_gguf(small_data(), short_types);
  short_types.set("tokenizer.ggml.token_type", gguf::Value::of_i32s({1, 1, 1}));
  EXPECT_EQ(error_of(short_types, "gguf_types"), ErrorKind::format);

  gguf::Writer bad_merges;
  Tokenizer::write_gguf(small_data(), bad_merges);
  bad_merges.set("tokenizer.ggml.merges", gguf::Value::of_strings({"h e", "zz qq"}));
  EXPECT_EQ(error_of(bad_merges, "gguf_merges"), ErrorKind::format);
}

}  // namespace
}  // namespace slm
