#include "slm/router/answer.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include <fmt/format.h>

namespace slm::router {
namespace {

const nlohmann::json* first_choice(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return nullptr;
  const auto& c = j["choices"][0];
  return c.is_object() ? &c : nullptr;
}

std::string normalized(const std::string& s) {
  std::string out;
  bool space = false;
  for (unsigned char c : s) {
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += char(std::tolower(c));
  }
  return out;
}

bool type_matches(const std::string& type, const nlohmann::json& v) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>())));
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  return true;
}

}  // namespace

std::string answer_text(const nlohmann::json& answer) {
  const nlohmann::json* c = first_choice(answer);
  if (!c) return "";
  if (c->contains("message") && (*c)["message"].is_object()) {
    const auto& m = (*c)["message"];
    if (m.contains("content") && m["content"].is_string()) return m["content"].get<std::string>();
    return "";
  }
  if (c->contains("text") && (*c)["text"].is_string()) return (*c)["text"].get<std::string>();
  return "";
}

std::string chunk_text(const nlohmann::json& chunk) {
  const nlohmann::json* c = first_choice(chunk);
  if (!c) return "";
  if (c->contains("delta") && (*c)["delta"].is_object()) {
    const auto& d = (*c)["delta"];
    if (d.contains("content") && d["content"].is_string()) return d["content"].get<std::string>();
    return "";
  }
  if (c->contains("text") && (*c)["text"].is_string()) return (*c)["text"].get<std::string>();
  return "";
}

Usage answer_usage(const nlohmann::json& j) {
  Usage u;
  if (!j.is_object() || !j.contains("usage") || !j["usage"].is_object()) return u;
  const auto& usage = j["usage"];
  if (usage.contains("prompt_tokens") && usage["prompt_tokens"].is_number_integer()) {
    u.input_tokens = usage["prompt_tokens"].get<int64_t>();
    u.reported = true;
  }
  if (usage.contains("completion_tokens") && usage["completion_tokens"].is_number_integer()) {
    u.output_tokens = usage["completion_tokens"].get<int64_t>();
    u.reported = true;
  }
  return u;
}

std::optional<LogprobStats> answer_logprobs(const nlohmann::json& answer) {
  const nlohmann::json* c = first_choice(answer);
  if (!c || !c->contains("logprobs") || !(*c)["logprobs"].is_object()) return std::nullopt;
  const auto& lp = (*c)["logprobs"];
  std::vector<double> values;
  if (lp.contains("content") && lp["content"].is_array()) {
    for (const auto& t : lp["content"]) {
      if (t.is_object() && t.contains("logprob") && t["logprob"].is_number()) values.push_back(t["logprob"].get<double>());
    }
  } else if (lp.contains("token_logprobs") && lp["token_logprobs"].is_array()) {
    for (const auto& v : lp["token_logprobs"]) {
      if (v.is_number()) values.push_back(v.get<double>());
    }
  }
  if (values.empty()) return std::nullopt;
  LogprobStats s;
  s.tokens = values.size();
  s.min = std::numeric_limits<double>::infinity();
  double sum = 0;
  for (double v : values) {
    sum += v;
    s.min = std::min(s.min, v);
  }
  s.mean = sum / double(values.size());
  return s;
}

std::string schema_violation(const nlohmann::json& schema, const nlohmann::json& value, const std::string& path) {
  if (!schema.is_object()) return "";
  if (schema.contains("anyOf") && schema["anyOf"].is_array()) {
    for (const auto& s : schema["anyOf"]) {
      if (schema_violation(s, value, path).empty()) return "";
    }
    return path + ": fits none of anyOf";
  }
  if (schema.contains("type")) {
    const auto& t = schema["type"];
    bool ok = false;
    if (t.is_string()) ok = type_matches(t.get<std::string>(), value);
    else if (t.is_array()) {
      for (const auto& x : t) ok = ok || (x.is_string() && type_matches(x.get<std::string>(), value));
    } else ok = true;
    if (!ok) return fmt::format("{}: expected type {}, found {}", path, t.dump(), value.type_name());
  }
  if (schema.contains("enum") && schema["enum"].is_array()) {
    const auto& e = schema["enum"];
    if (std::find(e.begin(), e.end(), value) == e.end()) return fmt::format("{}: expected one of {}, found {}", path, e.dump(), value.dump());
  }
  if (schema.contains("const") && schema["const"] != value) return fmt::format("{}: expected {}, found {}", path, schema["const"].dump(), value.dump());
  if (value.is_number()) {
    const double v = value.get<double>();
    if (schema.contains("minimum") && schema["minimum"].is_number() && v < schema["minimum"].get<double>()) return path + ": below minimum";
    if (schema.contains("maximum") && schema["maximum"].is_number() && v > schema["maximum"].get<double>()) return path + ": above maximum";
  }
  if (value.is_object()) {
    if (schema.contains("required") && schema["required"].is_array()) {
      for (const auto& r : schema["required"]) {
        if (r.is_string() && !value.contains(r.get<std::string>())) return fmt::format("{}: expected property '{}', found none", path, r.get<std::string>());
      }
    }
    const bool closed = schema.contains("additionalProperties") && schema["additionalProperties"] == false;
    const nlohmann::json props = schema.contains("properties") && schema["properties"].is_object() ? schema["properties"] : nlohmann::json::object();
    for (const auto& [k, v] : value.items()) {
      if (props.contains(k)) {
        std::string err = schema_violation(props[k], v, path + "." + k);
        if (!err.empty()) return err;
      } else if (closed) {
        return fmt::format("{}: unexpected property '{}'", path, k);
      }
    }
  }
  if (value.is_array()) {
    if (schema.contains("minItems") && schema["minItems"].is_number() && value.size() < schema["minItems"].get<size_t>()) return path + ": too few items";
    if (schema.contains("maxItems") && schema["maxItems"].is_number() && value.size() > schema["maxItems"].get<size_t>()) return path + ": too many items";
    if (schema.contains("items") && schema["items"].is_object()) {
      for (size_t i = 0; i < value.size(); ++i) {
        std::string err = schema_violation(schema["items"], value[i], fmt::format("{}[{}]", path, i));
        if (!err.empty()) return err;
      }
    }
  }
  return "";
}

Verdict judge_answers(const PolicyConfig& p, const nlohmann::json& request, const std::vector<nlohmann::json>& answers) {
  Verdict v;
  if (answers.empty()) {
    v.why = "no answer";
    return v;
  }
  const nlohmann::json& first = answers.front();
  std::vector<std::string> parts;
  const auto lp = answer_logprobs(first);
  if (!lp) {
    v.why = "no token log-probabilities in the answer (confidence unknown)";
    return v;
  }
  if (lp->mean < p.min_mean_logprob) {
    v.why = fmt::format("mean token logprob {:.3f} < {}", lp->mean, p.min_mean_logprob);
    return v;
  }
  parts.push_back(fmt::format("mean logprob {:.3f} >= {}", lp->mean, p.min_mean_logprob));
  if (p.min_token_logprob > -1e29) {
    if (lp->min < p.min_token_logprob) {
      v.why = fmt::format("min token logprob {:.3f} < {}", lp->min, p.min_token_logprob);
      return v;
    }
    parts.push_back(fmt::format("min logprob {:.3f} >= {}", lp->min, p.min_token_logprob));
  }
  if (p.check_json && request.contains("response_format") && request["response_format"].is_object()) {
    const auto& rf = request["response_format"];
    const std::string type = rf.value("type", "");
    if (type == "json_object" || type == "json_schema") {
      nlohmann::json parsed;
      try {
        parsed = nlohmann::json::parse(answer_text(first));
      } catch (const nlohmann::json::exception&) {
        v.why = "answer is not valid JSON";
        return v;
      }
      if (type == "json_schema" && rf.contains("json_schema") && rf["json_schema"].is_object() && rf["json_schema"].contains("schema")) {
        const std::string err = schema_violation(rf["json_schema"]["schema"], parsed);
        if (!err.empty()) {
          v.why = "answer does not fit the schema: " + err;
          return v;
        }
      }
      parts.push_back("JSON valid");
    }
  }
  if (answers.size() > 1) {
    const std::string reference = normalized(answer_text(first));
    size_t same = 0;
    for (const auto& a : answers) same += normalized(answer_text(a)) == reference ? 1 : 0;
    const double agreement = double(same) / double(answers.size());
    if (agreement < p.min_agreement) {
      v.why = fmt::format("samples agree {:.2f} < {}", agreement, p.min_agreement);
      return v;
    }
    parts.push_back(fmt::format("samples agree {:.2f}", agreement));
  }
  v.accept = true;
  for (const auto& s : parts) v.why += (v.why.empty() ? "" : ", ") + s;
  return v;
}

std::vector<nlohmann::json> answer_to_chunks(const nlohmann::json& answer, bool chat) {
  std::vector<nlohmann::json> out;
  const std::string id = answer.value("id", "chatcmpl-router");
  const nlohmann::json base{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"},
                            {"created", answer.value("created", 0)}, {"model", answer.value("model", "")}};
  const nlohmann::json* c = first_choice(answer);
  const nlohmann::json finish = c && c->contains("finish_reason") ? (*c)["finish_reason"] : nlohmann::json("stop");
  nlohmann::json chunk = base;
  if (chat) {
    chunk["choices"] = {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", answer_text(answer)}}}, {"finish_reason", nullptr}}};
    out.push_back(chunk);
    chunk["choices"] = {{{"index", 0}, {"delta", nlohmann::json::object()}, {"finish_reason", finish}}};
    out.push_back(chunk);
  } else {
    chunk["choices"] = {{{"index", 0}, {"text", answer_text(answer)}, {"finish_reason", finish}}};
    out.push_back(chunk);
  }
  return out;
}

}  // namespace slm::router
