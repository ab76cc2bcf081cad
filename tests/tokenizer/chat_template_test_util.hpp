// Helpers shared by the chat-template tests: the reference data and a readable diff.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace slm::test {

inline std::filesystem::path chat_data(const std::string& name) {
  return std::filesystem::path(SLM_TEST_DATA) / "chat_templates" / name;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// JSON lines with object keys in file order (templates print tool schemas in that order).
inline std::vector<nlohmann::ordered_json> read_ordered_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<nlohmann::ordered_json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::ordered_json::parse(line));
  }
  return rows;
}

// The text with control characters and backslashes escaped, so that whitespace shows.
inline std::string visible(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

// Empty when equal; else where the texts first differ, with some context around it.
inline std::string difference(const std::string& expected, const std::string& actual) {
  if (expected == actual) return {};
  size_t at = 0;
  while (at < expected.size() && at < actual.size() && expected[at] == actual[at]) ++at;
  const size_t line = size_t(std::count(expected.begin(), expected.begin() + long(at), '\n')) + 1;
  const size_t from = at > 60 ? at - 60 : 0;
  std::ostringstream s;
  s << "first difference at byte " << at << " (line " << line << "); sizes " << expected.size() << " expected, "
    << actual.size() << " actual\n"
    << "  expected: ..." << visible(expected.substr(from, at - from)) << " >>> "
    << visible(expected.substr(at, 80)) << "\n"
    << "  actual:   ..." << visible(actual.substr(from, at - from)) << " >>> " << visible(actual.substr(at, 80))
    << "\n"
    << "  expected (whole): " << visible(expected.substr(0, 2000)) << "\n"
    << "  actual (whole):   " << visible(actual.substr(0, 2000));
  return s.str();
}

}  // namespace slm::test
