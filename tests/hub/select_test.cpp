// Parsing the hub's listing and choosing the files a name means.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "slm/hub/select.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {
namespace {

RepoInfo repo(const std::vector<std::string>& paths) {
  nlohmann::json siblings = nlohmann::json::array();
  int i = 1;
  for (const auto& p : paths) {
    nlohmann::json s = {{"rfilename", p}, {"size", 100 * i}, {"blobId", std::string(40, 'a')}};
    if (p.ends_with(".gguf") || p.ends_with(".safetensors")) {
      s["lfs"] = {{"sha256", std::string(63, 'b') + char('0' + i % 10)}, {"size", 1000 * i}, {"pointerSize", 134}};
    }
    siblings.push_back(s);
    ++i;
  }
  return parse_repo_info(nlohmann::json{{"id", "o/r"}, {"sha", std::string(40, 'c')}, {"siblings", siblings}}.dump(), "o/r");
}

std::vector<std::string> paths(const Selection& s) {
  std::vector<std::string> out;
  for (const auto& f : s.files) out.push_back(f.path);
  return out;
}

TEST(Listing, ParsesSiblingsWithLfsAndGitIds) {
  const auto info = repo({"config.json", "model-Q4_K_M.gguf"});
  EXPECT_EQ(info.commit, std::string(40, 'c'));
  ASSERT_EQ(info.files.size(), 2u);
  EXPECT_EQ(info.files[0].path, "config.json");
  EXPECT_FALSE(info.files[0].lfs);
  EXPECT_EQ(info.files[0].git_sha1, std::string(40, 'a'));
  EXPECT_EQ(info.files[0].size, 100);
  EXPECT_TRUE(info.files[1].lfs);
  EXPECT_EQ(info.files[1].size, 2000);  // the LFS size is the content's
  EXPECT_EQ(info.files[1].sha256.size(), 64u);
}

TEST(Listing, RefusesUnsafeNamesFromTheHub) {
  for (const char* bad : {"../evil.gguf", "/etc/passwd", "a\\b.gguf", "a/../../b.gguf", "x\r.gguf"}) {
    const std::string json = nlohmann::json{{"id", "o/r"}, {"siblings", {{{"rfilename", bad}}}}}.dump();
    try {
      parse_repo_info(json, "o/r");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::format);
      EXPECT_NE(std::string(e.what()).find("refusing"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_repo_info("{\"id\": \"o/r\"}", "o/r"), Error);
  EXPECT_THROW(parse_repo_info("not json", "o/r"), Error);
}

TEST(Select, QuantTagPicksTheMatchingSingleFile) {
  const auto info = repo({"README.md", "m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "m-Q8_0.gguf", "mmproj-m-Q4_K_M.gguf"});
  const auto s = select_files(info, parse_model_name("hf:o/r:q4_k_m"));
  EXPECT_EQ(paths(s), std::vector<std::string>{"m-Q4_K_M.gguf"});
  EXPECT_EQ(s.canonical, "hf:o/r:Q4_K_M");
  EXPECT_EQ(s.folder, "Q4_K_M");
  EXPECT_EQ(s.quant, "Q4_K_M");
  EXPECT_EQ(s.format, "gguf");
  EXPECT_EQ(s.entry, "m-Q4_K_M.gguf");
}

TEST(Select, SingleFilePreferredToSplitAndSplitBringsAllParts) {
  const auto both = repo({"big/m-Q8_0-00001-of-00002.gguf", "big/m-Q8_0-00002-of-00002.gguf", "m-Q8_0.gguf"});
  EXPECT_EQ(paths(select_files(both, parse_model_name("hf:o/r:Q8_0"))), std::vector<std::string>{"m-Q8_0.gguf"});
  const auto split = repo({"m-Q8_0-00002-of-00003.gguf", "m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf"});
  const auto s = select_files(split, parse_model_name("hf:o/r:Q8_0"));
  EXPECT_EQ(paths(s), (std::vector<std::string>{"m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00002-of-00003.gguf",
                                                "m-Q8_0-00003-of-00003.gguf"}));
  EXPECT_EQ(s.entry, "m-Q8_0-00001-of-00003.gguf");
  const auto missing = repo({"m-Q8_0-00001-of-00003.gguf", "m-Q8_0-00003-of-00003.gguf"});
  EXPECT_THROW(select_files(missing, parse_model_name("hf:o/r:Q8_0")), Error);
}

TEST(Select, DefaultRule) {
  EXPECT_EQ(paths(select_files(repo({"m-Q2_K.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf"}), parse_model_name("hf:o/r"))),
            std::vector<std::string>{"m-Q4_K_M.gguf"});
  EXPECT_EQ(paths(select_files(repo({"m-Q2_K.gguf", "m-Q8_0.gguf"}), parse_model_name("hf:o/r"))),
            std::vector<std::string>{"m-Q8_0.gguf"});
  const auto first = select_files(repo({"b-Q2_K.gguf", "a-Q3_K_S.gguf"}), parse_model_name("hf:o/r"));
  EXPECT_EQ(paths(first), std::vector<std::string>{"a-Q3_K_S.gguf"});
  EXPECT_EQ(first.canonical, "hf:o/r:Q3_K_S");
  const auto untagged = select_files(repo({"model.gguf"}), parse_model_name("hf:o/r"));
  EXPECT_EQ(untagged.canonical, "hf:o/r/model.gguf");
  EXPECT_EQ(untagged.quant, "");
  const auto folder = select_files(repo({"config.json", "model.safetensors", "README.md", "tokenizer.json"}),
                                   parse_model_name("hf:o/r"));
  EXPECT_EQ(folder.format, "safetensors");
  EXPECT_EQ(folder.canonical, "hf:o/r:safetensors");
}

TEST(Select, SafetensorsFolderFiles) {
  const auto info = repo({"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                          "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
                          "tokenizer_config.json", "README.md", "onnx/model.safetensors", "vocab.txt"});
  const auto s = select_files(info, parse_model_name("hf:o/r:safetensors"));
  EXPECT_EQ(paths(s), (std::vector<std::string>{"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                                                "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                                                "tokenizer.json", "tokenizer_config.json"}));
  EXPECT_EQ(s.entry, ".");
  EXPECT_THROW(select_files(repo({"README.md", "model.safetensors"}), parse_model_name("hf:o/r")), Error);
}

TEST(Select, SafetensorsFolderBringsSentenceTransformersFiles) {
  const auto info = repo({"1_Pooling/config.json", "1_Pooling/README.md", "2_Dense/config.json", "README.md",
                          "config.json", "config_sentence_transformers.json", "model.safetensors", "modules.json",
                          "onnx/config.json", "sentence_bert_config.json", "tokenizer.json", "x_Pool/config.json",
                          "1_/config.json", "3_Deep/sub/config.json"});
  const auto s = select_files(info, parse_model_name("hf:o/r"));
  EXPECT_EQ(paths(s), (std::vector<std::string>{"1_Pooling/config.json", "2_Dense/config.json", "config.json",
                                                "config_sentence_transformers.json", "model.safetensors",
                                                "modules.json", "sentence_bert_config.json", "tokenizer.json"}));
  EXPECT_EQ(s.format, "safetensors");
}

TEST(Select, NamedFileAndErrors) {
  const auto info = repo({"m-Q4_K_M.gguf", "sub/m-Q8_0.gguf", "m-IQ4_XS.gguf"});
  const auto s = select_files(info, parse_model_name("hf:o/r/sub/m-Q8_0.gguf"));
  EXPECT_EQ(paths(s), std::vector<std::string>{"sub/m-Q8_0.gguf"});
  EXPECT_EQ(s.canonical, "hf:o/r/sub/m-Q8_0.gguf");
  EXPECT_EQ(s.folder, "sub--m-Q8_0.gguf");
  EXPECT_EQ(s.quant, "Q8_0");
  EXPECT_THROW(select_files(info, parse_model_name("hf:o/r/nope.gguf")), Error);
  try {
    select_files(info, parse_model_name("hf:o/r:Q5_K_S"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
    EXPECT_NE(std::string(e.what()).find("IQ4_XS, Q4_K_M, Q8_0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace slm::hub
