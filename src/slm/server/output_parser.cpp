#include "slm/server/output_parser.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <random>

namespace slm::server {
namespace {

using ojson = nlohmann::ordered_json;

constexpr std::string_view think_open = "<think>";
constexpr std::string_view think_close = "</think>";
constexpr std::string_view markers[] = {"<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"};

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The end (one past) of the JSON object or array starting at text[begin], or npos when it does not
// close.
size_t json_value_end(std::string_view text, size_t begin) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = begin; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

std::string arguments_text(const ojson& args) {
  if (args.is_string()) return args.get<std::string>();
  if (args.is_null()) return "{}";
  return args.dump();
}

// {"name": ..., "arguments" | "parameters": ...} -> a call; false when the object is not one.
bool call_from_object(const ojson& obj, std::vector<ToolCall>& calls) {
  if (!obj.is_object() || !obj.contains("name") || !obj["name"].is_string()) return false;
  ToolCall call;
  call.id = new_tool_call_id();
  call.name = obj["name"].get<std::string>();
  if (obj.contains("arguments")) call.arguments = arguments_text(obj["arguments"]);
  else if (obj.contains("parameters")) call.arguments = arguments_text(obj["parameters"]);
  else call.arguments = "{}";
  calls.push_back(std::move(call));
  return true;
}

ojson parse_json(std::string_view text) { return ojson::parse(text.begin(), text.end(), nullptr, false); }

bool parse_hermes(std::string_view text, ParsedToolCalls& out) {
  constexpr std::string_view open = "<tool_call>", close = "</tool_call>";
  size_t pos = text.find(open);
  if (pos == std::string_view::npos) return false;
  std::string content(text.substr(0, pos));
  std::vector<ToolCall> calls;
  while (pos != std::string_view::npos) {
    const size_t body = pos + open.size();
    size_t end = text.find(close, body);
    const std::string_view inner = trim(text.substr(body, end == std::string_view::npos ? std::string_view::npos : end - body));
    if (!call_from_object(parse_json(inner), calls)) return false;
    if (end == std::string_view::npos) break;
    const size_t next = text.find(open, end + close.size());
    content += text.substr(end + close.size(), next == std::string_view::npos ? std::string_view::npos : next - end - close.size());
    pos = next;
  }
  out.content = std::string(trim(content));
  out.calls = std::move(calls);
  return true;
}

bool parse_mistral(std::string_view text, ParsedToolCalls& out) {
  constexpr std::string_view marker = "[TOOL_CALLS]", args_marker = "[ARGS]";
  const size_t pos = text.find(marker);
  if (pos == std::string_view::npos) return false;
  std::vector<ToolCall> calls;
  std::string_view rest = trim(text.substr(pos + marker.size()));
  if (!rest.empty() && rest.front() == '[') {
    const ojson arr = parse_json(rest.substr(0, json_value_end(rest, 0)));
    if (!arr.is_array() || arr.empty()) return false;
    for (const auto& obj : arr) {
      if (!call_from_object(obj, calls)) return false;
    }
  } else {
    // name[ARGS]{...}, repeated (each may be preceded by another [TOOL_CALLS]).
    while (!rest.empty()) {
      const size_t a = rest.find(args_marker);
      if (a == std::string_view::npos) return false;
      std::string_view name = trim(rest.substr(0, a));
      if (const size_t id = name.find("[CALL_ID]"); id != std::string_view::npos) name = trim(name.substr(0, id));
      std::string_view json_part = trim(rest.substr(a + args_marker.size()));
      const size_t end = json_value_end(json_part, 0);
      if (name.empty() || end == std::string_view::npos) return false;
      const ojson args = parse_json(json_part.substr(0, end));
      if (args.is_discarded()) return false;
      calls.push_back({new_tool_call_id(), std::string(name), arguments_text(args)});
      rest = trim(json_part.substr(end));
      if (rest.substr(0, marker.size()) == marker) rest = trim(rest.substr(marker.size()));
    }
  }
  out.content = std::string(trim(text.substr(0, pos)));
  out.calls = std::move(calls);
  return true;
}

bool parse_llama(std::string_view text, ParsedToolCalls& out) {
  constexpr std::string_view tag = "<|python_tag|>";
  std::string_view body = trim(text);
  std::string content;
  if (const size_t t = body.find(tag); t != std::string_view::npos) {
    content = std::string(trim(body.substr(0, t)));
    body = trim(body.substr(t + tag.size()));
  }
  if (body.empty() || body.front() != '{') return false;
  std::vector<ToolCall> calls;
  // One object, or several separated by ';' as Llama 3.2 sometimes writes.
  while (!body.empty()) {
    const size_t end = json_value_end(body, 0);
    if (end == std::string_view::npos) return false;
    if (!call_from_object(parse_json(body.substr(0, end)), calls)) return false;
    body = trim(body.substr(end));
    if (!body.empty() && body.front() == ';') body = trim(body.substr(1));
    if (!body.empty() && body.front() != '{') return false;
  }
  out.content = std::move(content);
  out.calls = std::move(calls);
  return true;
}

}  // namespace

size_t partial_suffix(std::string_view text, std::string_view pattern) {
  const size_t max = std::min(text.size(), pattern.size() - (pattern.empty() ? 0 : 1));
  for (size_t n = max; n > 0; --n) {
    if (text.substr(text.size() - n) == pattern.substr(0, n)) return n;
  }
  return 0;
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  pending_ += text;
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  size_t keep = 0;
  for (const auto& s : stops_) keep = std::max(keep, partial_suffix(pending_, s));
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  if (stopped_) return {};
  return std::exchange(pending_, {});
}

ReasoningSplitter::Out ReasoningSplitter::push(std::string_view text) {
  Out out;
  buffer_ += text;
  for (;;) {
    if (state_ == start) {
      const std::string_view t = trim(buffer_);
      if (t.empty()) return out;
      if (t.size() < think_open.size() && think_open.substr(0, t.size()) == t) return out;
      if (t.substr(0, think_open.size()) == think_open) {
        buffer_ = std::string(buffer_.substr(buffer_.find(think_open) + think_open.size()));
        state_ = reasoning;
      } else {
        state_ = content;
      }
    } else if (state_ == reasoning) {
      const size_t pos = buffer_.find(think_close);
      if (pos != std::string::npos) {
        out.reasoning += buffer_.substr(0, pos);
        buffer_.erase(0, pos + think_close.size());
        state_ = after;
        continue;
      }
      const size_t keep = partial_suffix(buffer_, think_close);
      out.reasoning += buffer_.substr(0, buffer_.size() - keep);
      buffer_.erase(0, buffer_.size() - keep);
      return out;
    } else if (state_ == after) {
      size_t i = 0;
      while (i < buffer_.size() && is_space(buffer_[i])) ++i;
      buffer_.erase(0, i);
      if (buffer_.empty()) return out;
      state_ = content;
    } else {
      out.content += buffer_;
      buffer_.clear();
      return out;
    }
  }
}

ReasoningSplitter::Out ReasoningSplitter::flush() {
  Out out;
  if (state_ == reasoning) out.reasoning = std::move(buffer_);
  else if (state_ != after) out.content = std::move(buffer_);
  buffer_.clear();
  return out;
}

ParsedToolCalls parse_tool_calls(std::string_view text) {
  ParsedToolCalls out;
  if (parse_hermes(text, out) || parse_mistral(text, out) || parse_llama(text, out)) return out;
  out.content = std::string(text);
  out.calls.clear();
  return out;
}

std::string ToolCallStream::push(std::string_view text) {
  held_ += text;
  if (capturing_) return {};
  if (!seen_text_) {
    const std::string_view t = trim(held_);
    if (t.empty()) return {};
    seen_text_ = true;
    if (t.front() == '{') {
      capturing_ = true;
      return {};
    }
  }
  size_t first = std::string::npos;
  for (auto m : markers) first = std::min(first, held_.find(m));
  if (first != std::string::npos) {
    capturing_ = true;
    std::string out = held_.substr(0, first);
    held_.erase(0, first);
    return out;
  }
  size_t keep = 0;
  for (auto m : markers) keep = std::max(keep, partial_suffix(held_, m));
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

ParsedToolCalls ToolCallStream::finish() {
  ParsedToolCalls out = parse_tool_calls(held_);
  if (out.calls.empty()) out.content = held_;
  held_.clear();
  return out;
}

bool is_structural_marker(std::string_view token_text) {
  for (auto m : markers) {
    if (token_text == m) return true;
  }
  return token_text == think_open || token_text == think_close || token_text == "</tool_call>" ||
         token_text == "[ARGS]" || token_text == "[CALL_ID]";
}

std::string new_tool_call_id() {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += alphabet[rng() % (sizeof(alphabet) - 1)];
  return id;
}

}  // namespace slm::server
