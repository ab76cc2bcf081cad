// The task commands end to end through the slm executable.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slm/engine/grammar/json_schema.hpp"

namespace fs = std::filesystem;

namespace {
struct CmdResult {
  int status;
  std::string out;
};

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

CmdResult run_slm(const std::string& args) {
  const std::string cmd = std::string(SLM_EXE) + " " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

std::string temp_file(const std::string& name, const std::string& content) {
  const fs::path path = fs::temp_directory_path() / ("slm_tasks_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}
}  // namespace

TEST(CliRedact, JsonOffsetsSliceTheInput) {
  const std::string text =
      "Dear Zoë, your card 4111 1111 1111 1111 was charged on 2024-03-15. Questions: help@shop.example, "
      "+44 20 7946 0958. Wire to DE89 3704 0044 0532 0130 00.\n";
  const auto path = temp_file("redact.txt", text);
  const CmdResult r = run_slm("redact --json " + path);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  std::u32string wide;
  {
    // Independent UTF-8 decode to code points.
    for (size_t i = 0; i < text.size();) {
      const unsigned char c = text[i];
      int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
      for (int k = 1; k < len; ++k) cp = (cp << 6) | (text[i + size_t(k)] & 0x3F);
      wide.push_back(cp);
      i += size_t(len);
    }
  }
  std::map<std::string, std::u32string> spans;
  for (const auto& e : j["entities"]) {
    const size_t s = e["start"].get<size_t>(), en = e["end"].get<size_t>();
    ASSERT_LE(en, wide.size());
    spans[e["type"].get<std::string>()] = wide.substr(s, en - s);
  }
  EXPECT_EQ(spans["CREDIT_CARD"], U"4111 1111 1111 1111");
  EXPECT_EQ(spans["DATE_TIME"], U"2024-03-15");
  EXPECT_EQ(spans["EMAIL"], U"help@shop.example");
  EXPECT_EQ(spans["PHONE"], U"+44 20 7946 0958");
  EXPECT_EQ(spans["IBAN"], U"DE89 3704 0044 0532 0130 00");
  EXPECT_EQ(j["text"].get<std::string>(),
            "Dear Zoë, your card <CREDIT_CARD> was charged on <DATE_TIME>. Questions: <EMAIL>, <PHONE>. Wire to <IBAN>.\n");
  const CmdResult masked = run_slm("redact --operator mask --entities EMAIL " + path);
  EXPECT_NE(masked.out.find("Questions: " + std::string(17, '*') + ","), std::string::npos) << masked.out;
  EXPECT_NE(masked.out.find("4111 1111 1111 1111"), std::string::npos);
  EXPECT_EQ(run_slm("redact --entities NOPE " + path).status, 2);
  EXPECT_NE(run_slm("redact --entities PERSON " + path).status, 0);  // needs --model
}

TEST(CliClassify, JsonlOutWithProbabilities) {
  const CmdResult r = run_slm("classify --labels urgent,normal,spam -q " + std::string(SLM_SOURCE_DIR) + "/docs/examples/triage.jsonl");
  ASSERT_EQ(r.status, 0) << r.out;
  size_t lines = 0, pos = 0;
  while (pos < r.out.size()) {
    const size_t nl = r.out.find('\n', pos);
    const auto j = nlohmann::json::parse(r.out.substr(pos, nl - pos));
    ++lines;
    EXPECT_EQ(j["id"].get<int>(), int(lines));
    double sum = 0;
    for (const auto& [k, v] : j["probs"].items()) sum += v.get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-6);
    EXPECT_TRUE(j["probs"].contains(j["label"].get<std::string>()));
    EXPECT_TRUE(j["probs"].contains(j["decoded"].get<std::string>()));
    pos = nl + 1;
  }
  EXPECT_EQ(lines, 8u);
}

TEST(CliExtract, OutputsValidateAgainstTheSchema) {
  const std::string schema_path = std::string(SLM_SOURCE_DIR) + "/docs/examples/person.schema.json";
  const auto input = temp_file("people.jsonl",
                               "{\"text\": \"Emma Woodhouse, twenty, of Highbury, was joyful.\"}\n"
                               "\"Captain Ahab of Nantucket was angry.\"\n"
                               "Mr. Collins, a calm clergyman of Hunsford.\n");
  const CmdResult r = run_slm("extract -n 200 --prompt-template '{text} JSON:' --schema " + schema_path + " " + input);
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream sf(schema_path);
  const auto schema = nlohmann::json::parse(sf);
  size_t lines = 0, pos = 0;
  while (pos < r.out.size()) {
    const size_t nl = r.out.find('\n', pos);
    const auto v = nlohmann::json::parse(r.out.substr(pos, nl - pos));
    EXPECT_TRUE(slm::grammar::validate_json(schema, v).empty()) << v.dump();
    ++lines;
    pos = nl + 1;
  }
  EXPECT_EQ(lines, 3u);
}

TEST(CliChunk, JsonlChunksSliceTheInput) {
  const std::string text = "# Café\n\nZoë’s first paragraph. It has two sentences.\n\n```\nint x = 1;\n```\n\n## Next\n\nMore text 🙂 here.\n";
  const auto path = temp_file("chunk.md", text);
  const CmdResult r = run_slm("chunk --max-tokens 24 " + path);
  ASSERT_EQ(r.status, 0) << r.out;
  std::vector<size_t> starts;  // byte offset of each code point
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  starts.push_back(text.size());
  size_t pos = 0, n = 0;
  while (pos < r.out.size()) {
    const size_t nl = r.out.find('\n', pos);
    const auto j = nlohmann::json::parse(r.out.substr(pos, nl - pos));
    const size_t s = starts.at(j["start"].get<size_t>()), e = starts.at(j["end"].get<size_t>());
    EXPECT_EQ(text.substr(s, e - s), j["text"].get<std::string>());
    EXPECT_LE(j["tokens"].get<int>(), 24);
    EXPECT_FALSE(j["section"].empty());
    ++n;
    pos = nl + 1;
  }
  EXPECT_GE(n, 3u);
  EXPECT_EQ(run_slm("chunk --max-tokens 8 --overlap 8 " + path).status, 2);
}

// --titles: every chunk gets a model-written title and keywords that satisfy the metadata schema
// (the grammar holds the demo model to it), next to the same offsets as without --titles.
TEST(CliChunk, TitlesAndKeywordsFollowTheSchema) {
  const std::string text = "# Weather\n\nIt rained all day in the valley. The river rose.\n\n## Harvest\n\nThe farmers brought in the wheat before the storm.\n";
  const auto path = temp_file("titles.md", text);
  const CmdResult plain = run_slm("chunk --no-text --max-tokens 24 " + path);
  const CmdResult r = run_slm("chunk --no-text --titles --max-tokens 24 " + path);
  ASSERT_EQ(plain.status, 0) << plain.out;
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream a(plain.out), b(r.out);
  std::string la, lb;
  size_t n = 0;
  while (std::getline(a, la)) {
    ASSERT_TRUE(std::getline(b, lb));
    const auto ja = nlohmann::json::parse(la), jb = nlohmann::json::parse(lb);
    EXPECT_EQ(ja["start"], jb["start"]);
    EXPECT_EQ(ja["end"], jb["end"]);
    ASSERT_TRUE(jb["title"].is_string()) << lb;
    const auto title = jb["title"].get<std::string>();
    EXPECT_GE(title.size(), 1u);
    EXPECT_LE(code_points(title), 60u);
    ASSERT_TRUE(jb["keywords"].is_array()) << lb;
    EXPECT_LE(jb["keywords"].size(), 5u);
    for (const auto& k : jb["keywords"]) {
      ASSERT_TRUE(k.is_string());
      EXPECT_LE(code_points(k.get<std::string>()), 24u);
    }
    ++n;
  }
  EXPECT_GE(n, 2u);
  EXPECT_FALSE(std::getline(b, lb));
}
