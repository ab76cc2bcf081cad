#include "slm/server/openai_request.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "slm/server/errors.hpp"

namespace slm::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr int64_t max_n = 16;
constexpr size_t max_stop = 4;
constexpr int32_t max_top_logprobs = 20;

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& found) {
  throw_invalid(param, fmt::format("'{}': expected {}, found {}", param, expected, json_type_name(found)));
}

// The field when present and not null.
const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string get_string(const json& obj, const char* name, const std::string& fallback = "") {
  const json* v = field(obj, name);
  if (!v) return fallback;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

bool get_bool(const json& obj, const char* name, bool fallback) {
  const json* v = field(obj, name);
  if (!v) return fallback;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

bool is_integral(const json& v) {
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15;
  }
  return false;
}

int64_t as_int(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max() : int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return int64_t(v.get<double>());
}

std::optional<int64_t> get_int(const json& obj, const char* name, int64_t lo, int64_t hi) {
  const json* v = field(obj, name);
  if (!v) return std::nullopt;
  if (!is_integral(*v)) wrong_type(name, "an integer", *v);
  const int64_t x = as_int(*v);
  if (x < lo || x > hi) throw_invalid(name, fmt::format("'{}': expected an integer in [{}, {}], found {}", name, lo, hi, x));
  return x;
}

std::optional<double> get_number(const json& obj, const char* name, double lo, double hi) {
  const json* v = field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) throw_invalid(name, fmt::format("'{}': expected a number in [{}, {}], found {}", name, lo, hi, x));
  return x;
}

void require_object(const json& request) {
  if (!request.is_object()) {
    throw_invalid("", fmt::format("expected a JSON object as the request body, found {}", json_type_name(request)));
  }
}

std::vector<std::string> parse_stop(const json& request) {
  const json* v = field(request, "stop");
  std::vector<std::string> stop;
  if (!v) return stop;
  if (v->is_string()) {
    stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > max_stop) {
      throw_invalid("stop", fmt::format("'stop': expected at most {} strings, found {}", max_stop, v->size()));
    }
    for (const auto& s : *v) {
      if (!s.is_string()) wrong_type("stop", "a string or an array of strings", s);
      stop.push_back(s.get<std::string>());
    }
  } else {
    wrong_type("stop", "a string or an array of strings", *v);
  }
  for (const auto& s : stop) {
    if (s.empty()) throw_invalid("stop", "'stop': expected non-empty strings, found an empty one");
  }
  return stop;
}

ResponseFormat parse_response_format(const json& request, const ojson* ordered) {
  ResponseFormat format;
  const json* v = field(request, "response_format");
  if (!v) return format;
  if (!v->is_object()) wrong_type("response_format", "an object", *v);
  const std::string type = get_string(*v, "type");
  if (type == "text" || type.empty()) {
    format.kind = ResponseFormatKind::text;
  } else if (type == "json_object") {
    format.kind = ResponseFormatKind::json_object;
    // llama.cpp and vLLM accept a schema here too.
    if (const json* s = field(*v, "schema")) {
      if (!s->is_object()) wrong_type("response_format.schema", "an object", *s);
      format.schema = ojson::parse(s->dump());
      format.kind = ResponseFormatKind::json_schema;
    }
  } else if (type == "json_schema") {
    format.kind = ResponseFormatKind::json_schema;
    const json* js = field(*v, "json_schema");
    if (!js) throw_invalid("response_format.json_schema", "'response_format.json_schema': required when type is json_schema");
    if (!js->is_object()) wrong_type("response_format.json_schema", "an object", *js);
    format.name = get_string(*js, "name");
    format.strict = get_bool(*js, "strict", false);
    const json* s = field(*js, "schema");
    if (!s) throw_invalid("response_format.json_schema.schema", "'response_format.json_schema.schema': required");
    if (!s->is_object() && !s->is_boolean()) wrong_type("response_format.json_schema.schema", "an object", *s);
    format.schema = ojson::parse(s->dump());
    // The schema with its key order (properties are generated in that order).
    if (ordered && ordered->contains("response_format")) {
      const ojson& rf = (*ordered)["response_format"];
      if (rf.is_object() && rf.contains("json_schema") && rf["json_schema"].is_object() && rf["json_schema"].contains("schema")) {
        format.schema = rf["json_schema"]["schema"];
      }
    }
  } else {
    throw_invalid("response_format.type",
                  fmt::format("'response_format.type': expected text, json_object or json_schema, found '{}'", type));
  }
  return format;
}

void parse_generation_params(const json& request, GenerationParams& p, bool chat, const ojson* ordered) {
  p.model = get_string(request, "model");
  p.n = get_int(request, "n", 1, max_n).value_or(1);
  p.stop = parse_stop(request);
  if (auto m = get_int(request, "max_completion_tokens", chat ? 1 : 0, std::numeric_limits<int32_t>::max())) p.max_tokens = m;
  if (auto m = get_int(request, "max_tokens", chat ? 1 : 0, std::numeric_limits<int32_t>::max())) p.max_tokens = m;
  p.temperature = get_number(request, "temperature", 0.0, 2.0).value_or(1.0);
  p.top_p = get_number(request, "top_p", 0.0, 1.0).value_or(1.0);
  p.top_k = get_int(request, "top_k", -1, std::numeric_limits<int32_t>::max());
  p.min_p = get_number(request, "min_p", 0.0, 1.0);
  p.repetition_penalty = get_number(request, "repetition_penalty", 0.0, 10.0);
  p.ignore_eos = get_bool(request, "ignore_eos", false);
  if (const json* s = field(request, "seed")) {
    if (!is_integral(*s)) wrong_type("seed", "an integer", *s);
    p.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(as_int(*s));
  }
  p.presence_penalty = get_number(request, "presence_penalty", -2.0, 2.0).value_or(0.0);
  p.frequency_penalty = get_number(request, "frequency_penalty", -2.0, 2.0).value_or(0.0);
  p.stream = get_bool(request, "stream", false);
  if (const json* so = field(request, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    p.include_usage = get_bool(*so, "include_usage", false);
  }
  p.response_format = parse_response_format(request, ordered);
  p.user = get_string(request, "user");
  // Positive: a zero-second budget is no answer at all. Capped at a year.
  if (auto t = get_number(request, "timeout", 0.0, 3.15e7)) {
    if (*t <= 0.0) throw_invalid("timeout", fmt::format("'timeout': expected a positive number of seconds, found {}", *t));
    p.timeout = t;
  }
  if (const json* lb = field(request, "logit_bias")) {
    if (!lb->is_object()) wrong_type("logit_bias", "an object", *lb);
    if (!lb->empty()) throw_invalid("logit_bias", "'logit_bias' is not supported", "unsupported");
  }
  if (auto best_of = get_int(request, "best_of", 1, max_n); best_of && *best_of != p.n) {
    throw_invalid("best_of", "'best_of' different from 'n' is not supported", "unsupported");
  }
}

std::string content_text(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of content parts", content);
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string p = fmt::format("{}[{}]", param, i);
    if (!part.is_object()) wrong_type(p, "a content part object", part);
    const std::string type = get_string(part, "type");
    if (type != "text") {
      throw_invalid(p + ".type", fmt::format("'{}.type': only text content parts are supported, found '{}'", p, type),
                    "unsupported");
    }
    const json* t = field(part, "text");
    if (!t || !t->is_string()) wrong_type(p + ".text", "a string", t ? *t : json());
    text += t->get<std::string>();
  }
  return text;
}

ojson parse_messages(const json& request, const ojson* ordered) {
  const json* v = field(request, "messages");
  if (!v) throw_invalid("messages", "'messages': required");
  if (!v->is_array()) wrong_type("messages", "an array", *v);
  if (v->empty()) throw_invalid("messages", "'messages': expected at least one message, found none");
  ojson messages = ordered && ordered->contains("messages") ? (*ordered)["messages"] : ojson::parse(v->dump());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string p = fmt::format("messages[{}]", i);
    if (!m.is_object()) wrong_type(p, "a message object", m);
    const json* role = field(m, "role");
    if (!role) throw_invalid(p + ".role", fmt::format("'{}.role': required", p));
    if (!role->is_string()) wrong_type(p + ".role", "a string", *role);
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer") {
      throw_invalid(p + ".role",
                    fmt::format("'{}.role': expected system, developer, user, assistant or tool, found '{}'", p, r));
    }
    ojson& out = messages[i];
    if (r == "developer") out["role"] = "system";
    const json* content = field(m, "content");
    const bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (content) {
      out["content"] = content_text(*content, p + ".content");
    } else if (r == "assistant" && has_tool_calls) {
      out["content"] = nullptr;
    } else if (r == "assistant") {
      out["content"] = "";
    } else {
      throw_invalid(p + ".content", fmt::format("'{}.content': required for role '{}'", p, r));
    }
    if (has_tool_calls) {
      const json& calls = m["tool_calls"];
      if (!calls.is_array()) wrong_type(p + ".tool_calls", "an array", calls);
      for (size_t k = 0; k < calls.size(); ++k) {
        const std::string cp = fmt::format("{}.tool_calls[{}]", p, k);
        const json& c = calls[k];
        if (!c.is_object()) wrong_type(cp, "an object", c);
        const json* fn = field(c, "function");
        if (!fn || !fn->is_object()) wrong_type(cp + ".function", "an object", fn ? *fn : json());
        if (!field(*fn, "name") || !(*fn)["name"].is_string()) {
          wrong_type(cp + ".function.name", "a string", fn->value("name", json()));
        }
        // Templates expect the arguments as a mapping; OpenAI sends them as a JSON string.
        if (const json* args = field(*fn, "arguments"); args && args->is_string()) {
          ojson parsed = ojson::parse(args->get<std::string>(), nullptr, false);
          if (!parsed.is_discarded() && parsed.is_object()) out["tool_calls"][k]["function"]["arguments"] = parsed;
        }
      }
    }
    if (const json* id = field(m, "tool_call_id"); id && !id->is_string()) wrong_type(p + ".tool_call_id", "a string", *id);
    if (const json* name = field(m, "name"); name && !name->is_string()) wrong_type(p + ".name", "a string", *name);
  }
  return messages;
}

std::vector<PromptInput> parse_inputs(const json& v, const std::string& param) {
  std::vector<PromptInput> out;
  auto tokens_of = [&](const json& arr, const std::string& p) {
    PromptInput in;
    in.is_tokens = true;
    for (const auto& t : arr) {
      if (!is_integral(t)) wrong_type(p, "a string, an array of strings, or token ids", t);
      const int64_t id = as_int(t);
      if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
        throw_invalid(p, fmt::format("'{}': token id {} out of range", p, id));
      }
      in.tokens.push_back(int32_t(id));
    }
    return in;
  };
  if (v.is_string()) {
    out.push_back({v.get<std::string>(), {}, false});
  } else if (v.is_array()) {
    if (v.empty()) throw_invalid(param, fmt::format("'{}': expected at least one input, found an empty array", param));
    if (v[0].is_number()) {
      out.push_back(tokens_of(v, param));
    } else {
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string p = fmt::format("{}[{}]", param, i);
        if (v[i].is_string()) out.push_back({v[i].get<std::string>(), {}, false});
        else if (v[i].is_array()) out.push_back(tokens_of(v[i], p));
        else wrong_type(p, "a string or an array of token ids", v[i]);
      }
    }
  } else {
    wrong_type(param, "a string, an array of strings, or token ids", v);
  }
  return out;
}

std::string base64(const void* data, size_t n) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* b = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = uint32_t(b[i]) << 16 | (i + 1 < n ? uint32_t(b[i + 1]) << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < n ? table[(v >> 6) & 63] : '=';
    out += i + 2 < n ? table[v & 63] : '=';
  }
  return out;
}

}  // namespace

std::string json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "a value of another type";
  }
}

ChatRequest parse_chat_request(const nlohmann::json& request, const nlohmann::ordered_json* ordered) {
  require_object(request);
  ChatRequest r;
  parse_generation_params(request, r, true, ordered);
  r.messages = parse_messages(request, ordered);
  if (const json* lp = field(request, "logprobs")) {
    if (!lp->is_boolean()) wrong_type("logprobs", "a boolean", *lp);
    r.logprobs = lp->get<bool>();
  }
  r.top_logprobs = int32_t(get_int(request, "top_logprobs", 0, max_top_logprobs).value_or(0));
  if (r.top_logprobs > 0 && !r.logprobs) {
    throw_invalid("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  }
  if (const json* tools = field(request, "tools")) {
    if (!tools->is_array()) wrong_type("tools", "an array", *tools);
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = fmt::format("tools[{}]", i);
      if (!t.is_object()) wrong_type(p, "an object", t);
      const std::string type = get_string(t, "type", "function");
      if (type != "function") throw_invalid(p + ".type", fmt::format("'{}.type': expected function, found '{}'", p, type));
      const json* fn = field(t, "function");
      if (!fn || !fn->is_object()) wrong_type(p + ".function", "an object", fn ? *fn : json());
      const json* name = field(*fn, "name");
      if (!name || !name->is_string() || name->get<std::string>().empty()) {
        throw_invalid(p + ".function.name", fmt::format("'{}.function.name': expected a non-empty string", p));
      }
      if (const json* params = field(*fn, "parameters"); params && !params->is_object()) {
        wrong_type(p + ".function.parameters", "an object", *params);
      }
    }
    if (!tools->empty()) {
      r.tools = ordered && ordered->contains("tools") ? (*ordered)["tools"] : ojson::parse(tools->dump());
    }
  }
  if (const json* tc = field(request, "tool_choice")) {
    if (tc->is_string()) {
      const std::string s = tc->get<std::string>();
      if (s == "none") r.tool_choice = ToolChoice::none;
      else if (s == "auto") r.tool_choice = ToolChoice::auto_;
      else if (s == "required") r.tool_choice = ToolChoice::required;
      else throw_invalid("tool_choice", fmt::format("'tool_choice': expected none, auto, required or an object, found '{}'", s));
    } else if (tc->is_object()) {
      const json* fn = field(*tc, "function");
      if (!fn || !fn->is_object() || !field(*fn, "name") || !(*fn)["name"].is_string()) {
        throw_invalid("tool_choice.function.name", "'tool_choice.function.name': expected a string");
      }
      r.tool_choice = ToolChoice::named;
      r.tool_choice_name = (*fn)["name"].get<std::string>();
    } else {
      wrong_type("tool_choice", "a string or an object", *tc);
    }
    if (r.tools.is_null() && r.tool_choice != ToolChoice::none && r.tool_choice != ToolChoice::auto_) {
      throw_invalid("tool_choice", "'tool_choice' needs 'tools'");
    }
    if (r.tool_choice == ToolChoice::named) {
      bool found = false;
      for (const auto& t : r.tools) found = found || t["function"]["name"] == r.tool_choice_name;
      if (!found) {
        throw_invalid("tool_choice", fmt::format("'tool_choice': no tool named '{}' in 'tools'", r.tool_choice_name));
      }
    }
  }
  r.parallel_tool_calls = get_bool(request, "parallel_tool_calls", true);
  if (const json* kw = field(request, "chat_template_kwargs")) {
    if (!kw->is_object()) wrong_type("chat_template_kwargs", "an object", *kw);
    if (const json* et = field(*kw, "enable_thinking")) {
      if (!et->is_boolean()) wrong_type("chat_template_kwargs.enable_thinking", "a boolean", *et);
      r.enable_thinking = et->get<bool>();
    }
  }
  r.thinking_budget = get_int(request, "thinking_budget", 0, std::numeric_limits<int32_t>::max());
  if (const json* re = field(request, "reasoning_effort")) {
    if (!re->is_string()) wrong_type("reasoning_effort", "a string", *re);
    const std::string s = re->get<std::string>();
    if (s != "none" && s != "minimal" && s != "low" && s != "medium" && s != "high") {
      throw_invalid("reasoning_effort", fmt::format("'reasoning_effort': expected none, minimal, low, medium or high, found '{}'", s));
    }
    if (!r.enable_thinking) r.enable_thinking = s != "none";
  }
  return r;
}

CompletionRequest parse_completion_request(const nlohmann::json& request, const nlohmann::ordered_json* ordered) {
  require_object(request);
  CompletionRequest r;
  parse_generation_params(request, r, false, ordered);
  const json* prompt = field(request, "prompt");
  if (!prompt) throw_invalid("prompt", "'prompt': required");
  r.prompts = parse_inputs(*prompt, "prompt");
  if (auto lp = get_int(request, "logprobs", 0, max_top_logprobs)) {
    r.logprobs = true;
    r.top_logprobs = int32_t(*lp);
  }
  r.echo = get_bool(request, "echo", false);
  r.suffix = get_string(request, "suffix");
  if (!r.suffix.empty()) throw_invalid("suffix", "'suffix' is not supported", "unsupported");
  if (r.max_tokens && *r.max_tokens == 0 && !r.echo) {
    throw_invalid("max_tokens", "'max_tokens': expected at least 1 (0 only with echo)");
  }
  if (r.prompts.size() * size_t(r.n) > 64) {
    throw_invalid("prompt", fmt::format("expected at most 64 prompts times n, found {}", r.prompts.size() * size_t(r.n)));
  }
  return r;
}

EmbeddingRequest parse_embedding_request(const nlohmann::json& request) {
  require_object(request);
  EmbeddingRequest r;
  r.model = get_string(request, "model");
  const json* input = field(request, "input");
  if (!input) throw_invalid("input", "'input': required");
  r.inputs = parse_inputs(*input, "input");
  if (r.inputs.size() > 2048) throw_invalid("input", fmt::format("'input': expected at most 2048 inputs, found {}", r.inputs.size()));
  const std::string format = get_string(request, "encoding_format", "float");
  if (format != "float" && format != "base64") {
    throw_invalid("encoding_format", fmt::format("'encoding_format': expected float or base64, found '{}'", format));
  }
  r.base64 = format == "base64";
  r.dimensions = get_int(request, "dimensions", 1, std::numeric_limits<int32_t>::max());
  return r;
}

TokenizeRequest parse_tokenize_request(const nlohmann::json& request) {
  require_object(request);
  TokenizeRequest r;
  r.model = get_string(request, "model");
  r.add_special = get_bool(request, "add_special", true);
  r.with_pieces = get_bool(request, "with_pieces", false);
  if (const json* m = field(request, "messages")) {
    json wrapper = {{"messages", *m}};
    r.messages = parse_messages(wrapper, nullptr);
    return r;
  }
  const char* names[] = {"content", "prompt", "text"};
  for (const char* name : names) {
    if (field(request, name)) {
      r.content = get_string(request, name);
      return r;
    }
  }
  throw_invalid("content", "'content': required (or 'messages')");
}

DetokenizeRequest parse_detokenize_request(const nlohmann::json& request) {
  require_object(request);
  DetokenizeRequest r;
  r.model = get_string(request, "model");
  const json* tokens = field(request, "tokens");
  if (!tokens) throw_invalid("tokens", "'tokens': required");
  if (!tokens->is_array()) wrong_type("tokens", "an array of token ids", *tokens);
  for (const auto& t : *tokens) {
    if (!is_integral(t)) wrong_type("tokens", "an array of token ids", t);
    const int64_t id = as_int(t);
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) throw_invalid("tokens", fmt::format("'tokens': token id {} out of range", id));
    r.tokens.push_back(int32_t(id));
  }
  return r;
}

json embeddings_response(std::vector<std::vector<float>> vectors, const EmbeddingRequest& r, const std::string& model,
                         int64_t prompt_tokens) {
  json data = json::array();
  for (size_t i = 0; i < vectors.size(); ++i) {
    std::vector<float>& v = vectors[i];
    if (r.dimensions) {
      if (*r.dimensions > int64_t(v.size())) {
        throw_invalid("dimensions",
                      fmt::format("'dimensions': the model's embeddings have {} dimensions, {} asked", v.size(), *r.dimensions));
      }
      v.resize(size_t(*r.dimensions));
      double norm = 0;
      for (float x : v) norm += double(x) * x;
      norm = std::sqrt(norm);
      if (norm > 0) {
        for (float& x : v) x = float(x / norm);
      }
    }
    json item = {{"object", "embedding"}, {"index", i}};
    if (r.base64) item["embedding"] = base64(v.data(), v.size() * sizeof(float));
    else item["embedding"] = v;
    data.push_back(std::move(item));
  }
  return {{"object", "list"}, {"data", std::move(data)}, {"model", model},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

}  // namespace slm::server
