// Model names, path checks, quantization tags and split parts.
#include <gtest/gtest.h>

#include "slm/hub/names.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {
namespace {

TEST(Names, ParsesTheThreeForms) {
  auto a = parse_model_name("hf:bartowski/Llama-3.2-1B-Instruct-GGUF");
  EXPECT_EQ(a.owner, "bartowski");
  EXPECT_EQ(a.repo, "Llama-3.2-1B-Instruct-GGUF");
  EXPECT_EQ(a.tag, "");
  EXPECT_TRUE(a.has_source);
  EXPECT_EQ(a.canonical(), "hf:bartowski/Llama-3.2-1B-Instruct-GGUF");

  auto b = parse_model_name("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:q4_k_m");
  EXPECT_EQ(b.tag, "Q4_K_M");
  EXPECT_EQ(b.canonical(), "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M");

  auto c = parse_model_name("hf:o/r/sub/model-Q8_0.gguf");
  EXPECT_EQ(c.file, "sub/model-Q8_0.gguf");
  EXPECT_EQ(c.canonical(), "hf:o/r/sub/model-Q8_0.gguf");

  auto d = parse_model_name("o/r:SafeTensors");
  EXPECT_FALSE(d.has_source);
  EXPECT_EQ(d.tag, "safetensors");

  auto e = parse_model_name("r:Q8_0", true);
  EXPECT_EQ(e.owner, "");
  EXPECT_EQ(e.repo, "r");
  EXPECT_EQ(e.tag, "Q8_0");
  EXPECT_THROW(parse_model_name("r:Q8_0"), Error);  // a short name is only for the store
}

TEST(Names, RefusesTraversalAbsoluteBackslashAndControlCharacters) {
  for (const char* bad : {"hf:../r", "hf:o/..", "hf:o/r/../x.gguf", "hf:o/r//etc/passwd.gguf", "hf:/o/r", "hf:o/r/a\\b.gguf",
                          "hf:o/r/a\nb.gguf", "hf:o/r/./x.gguf", "hf:o\x01/r", "hf:o/r:Q4/K", "hf:o/r:..", "hf:o/r:",
                          "hf:o/r/x.bin", "hf:.o/r", "hf:o/r a", "hf:o", "s3:o/r/x.gguf", "hf:o/r:x:y"}) {
    EXPECT_THROW(parse_model_name(bad), Error) << bad;
  }
  try {
    parse_model_name("hf:o/r/../../x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find(".."), std::string::npos) << e.what();
  }
}

TEST(Names, SafeRelativePaths) {
  EXPECT_TRUE(is_safe_relative_path("model.gguf"));
  EXPECT_TRUE(is_safe_relative_path("Q4_K_M/model-00001-of-00002.gguf"));
  EXPECT_TRUE(is_safe_relative_path("mödel.gguf"));  // UTF-8 is fine
  EXPECT_TRUE(is_safe_relative_path("a..b.gguf"));   // ".." inside a name is not a segment
  for (const char* bad : {"", "/abs.gguf", "../x", "a/../x", "a/./x", "a//b", "a/", "a\\b", "a\tb", "a\x7f"}) {
    EXPECT_FALSE(is_safe_relative_path(bad)) << bad;
  }
  EXPECT_FALSE(is_safe_relative_path(std::string(1025, 'a')));
}

TEST(Names, DetectsQuantizationTags) {
  EXPECT_EQ(detect_quant("Llama-3.2-1B-Instruct-Q4_K_M.gguf"), "Q4_K_M");
  EXPECT_EQ(detect_quant("qwen2.5-0.5b-instruct-q8_0.gguf"), "Q8_0");
  EXPECT_EQ(detect_quant("model-IQ4_XS.gguf"), "IQ4_XS");
  EXPECT_EQ(detect_quant("model-bf16.gguf"), "BF16");
  EXPECT_EQ(detect_quant("model.f16.gguf"), "F16");
  EXPECT_EQ(detect_quant("Q4_K_M/model-Q4_K_M-00001-of-00002.gguf"), "Q4_K_M");
  EXPECT_EQ(detect_quant("Qwen3-0.6B.gguf"), "");
  EXPECT_EQ(detect_quant("model-UD-Q4_K_XL.gguf"), "Q4_K_XL");
}

TEST(Names, TagMatchingIsBoundedAndCaseInsensitive) {
  EXPECT_TRUE(name_has_tag("x-Q4_K_M.gguf", "q4_k_m"));
  EXPECT_TRUE(name_has_tag("x.q4_k_m.gguf", "Q4_K_M"));
  EXPECT_FALSE(name_has_tag("x-Q4_K_M.gguf", "Q4_K"));    // a longer tag is another quantization
  EXPECT_FALSE(name_has_tag("x-IQ4_XS.gguf", "Q4_XS"));   // IQ4 is not Q4
  EXPECT_FALSE(name_has_tag("x-bf16.gguf", "F16"));
  EXPECT_TRUE(name_has_tag("x-F16.gguf", "f16"));
  EXPECT_FALSE(name_has_tag("Q4_K_M/x-Q8_0.gguf", "Q4_K_M"));  // only the file's own name counts
  EXPECT_TRUE(name_has_tag("x-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"));
}

TEST(Names, SplitParts) {
  auto p = split_part("sub/model-Q4_K_M-00002-of-00003.gguf");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->prefix, "sub/model-Q4_K_M");
  EXPECT_EQ(p->index, 2);
  EXPECT_EQ(p->count, 3);
  EXPECT_FALSE(split_part("model-Q4_K_M.gguf").has_value());
  EXPECT_FALSE(split_part("model-00004-of-00003.gguf").has_value());
  EXPECT_FALSE(split_part("model-0001-of-00003.gguf").has_value());
  EXPECT_FALSE(split_part("model-00001-of-00003.bin").has_value());
}

}  // namespace
}  // namespace slm::hub
