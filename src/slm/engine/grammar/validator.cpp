// validate_json: checks a JSON value against the keyword subset the schema compiler supports.
#include <cmath>
#include <map>
#include <set>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/engine/grammar/string_dfa.hpp"
#include "slm/util/error.hpp"

namespace slm::grammar {
namespace {

using json = nlohmann::json;

const std::set<std::string> kIgnored = {"title", "description", "$schema", "$id", "$comment", "examples",
                                        "default", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
const std::set<std::string> kKnown = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                      "anyOf", "oneOf", "allOf", "items", "minItems", "maxItems", "minLength",
                                      "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
                                      "exclusiveMaximum", "$ref"};
constexpr int kMaxDepth = 256;

std::string escape_token(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
  return out;
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (uint8_t(c) & 0xC0) != 0x80;
  return n;
}

bool is_type(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") {
    if (v.is_number_integer()) return true;
    if (!v.is_number_float()) return false;
    const double d = v.get<double>();
    return std::isfinite(d) && d == std::floor(d);
  }
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return false;
}

class Validator {
 public:
  Validator(const json& root, std::vector<std::string>& errors) : root_(root), errors_(errors) {}

  void check(const json& s, const json& v, const std::string& path, int depth) {
    auto error = [&](const std::string& msg) { errors_.push_back((path.empty() ? "/" : path) + ": " + msg); };
    if (depth > kMaxDepth) return error("schema recursion deeper than 256 levels");
    if (s.is_boolean()) {
      if (!s.get<bool>()) error("no value is allowed here (schema false)");
      return;
    }
    if (!s.is_object()) return error("the schema is not an object");
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (!kIgnored.count(it.key()) && !kKnown.count(it.key())) error("unsupported schema keyword \"" + it.key() + "\"");
    }
    for (const char* key : {"exclusiveMinimum", "exclusiveMaximum"}) {
      if (s.contains(key) && s[key].is_boolean()) error(std::string("unsupported boolean ") + key + " (draft 4)");
    }
    if (s.contains("items") && s["items"].is_array()) error("unsupported items as an array of schemas (tuple form)");
    if (s.contains("$ref")) {
      const json* target = resolve(s["$ref"]);
      if (target == nullptr) error("unresolvable $ref " + s["$ref"].dump());
      else check(*target, v, path, depth + 1);
    }
    if (s.contains("allOf") && s["allOf"].is_array()) {
      for (const auto& sub : s["allOf"]) check(sub, v, path, depth + 1);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key) || !s[key].is_array()) continue;
      size_t matches = 0;
      for (const auto& sub : s[key]) {
        std::vector<std::string> sub_errors;
        Validator(root_, sub_errors).check(sub, v, path, depth + 1);
        if (sub_errors.empty()) ++matches;
      }
      if (matches == 0) error(std::string("matches none of ") + key);
      else if (std::string(key) == "oneOf" && matches > 1) error("matches " + std::to_string(matches) + " alternatives of oneOf");
    }
    if (s.contains("enum") && s["enum"].is_array()) {
      bool found = false;
      for (const auto& e : s["enum"]) found = found || e == v;
      if (!found) error("value " + v.dump() + " is not in enum");
    }
    if (s.contains("const") && s["const"] != v) error("value " + v.dump() + " is not the const " + s["const"].dump());
    if (s.contains("type")) {
      const json& t = s["type"];
      bool ok = false;
      if (t.is_string()) ok = is_type(v, t.get<std::string>());
      else if (t.is_array()) for (const auto& x : t) ok = ok || (x.is_string() && is_type(v, x.get<std::string>()));
      if (!ok) error("expected type " + t.dump() + ", found " + v.type_name());
    }
    if (v.is_object()) check_object(s, v, path, depth);
    if (v.is_array()) {
      if (s.contains("items") && (s["items"].is_object() || s["items"].is_boolean())) {
        for (size_t i = 0; i < v.size(); ++i) check(s["items"], v[i], path + "/" + std::to_string(i), depth + 1);
      }
      if (s.contains("minItems") && s["minItems"].is_number() && double(v.size()) < s["minItems"].get<double>()) error("fewer items than minItems");
      if (s.contains("maxItems") && s["maxItems"].is_number() && double(v.size()) > s["maxItems"].get<double>()) error("more items than maxItems");
    }
    if (v.is_string()) {
      const std::string& str = v.get_ref<const std::string&>();
      const size_t n = code_points(str);
      if (s.contains("minLength") && s["minLength"].is_number() && double(n) < s["minLength"].get<double>()) error("shorter than minLength");
      if (s.contains("maxLength") && s["maxLength"].is_number() && double(n) > s["maxLength"].get<double>()) error("longer than maxLength");
      if (s.contains("pattern") && s["pattern"].is_string()) {
        const auto dfa = cached(s["pattern"].get<std::string>());
        if (dfa == nullptr) error("unsupported pattern " + s["pattern"].dump());
        else if (!dfa_matches(*dfa, str)) error("does not match pattern " + s["pattern"].dump());
      }
      if (s.contains("format") && s["format"].is_string()) {
        const std::string re = format_regex(s["format"].get<std::string>());
        if (re.empty()) error("unsupported format " + s["format"].dump());
        else if (!dfa_matches(*cached(re), str)) error("is not a valid " + s["format"].get<std::string>());
      }
    }
    if (v.is_number()) {
      const double x = v.get<double>();
      auto bound = [&](const char* key) -> const json* { return s.contains(key) && s[key].is_number() ? &s[key] : nullptr; };
      if (auto b = bound("minimum"); b && !(x >= b->get<double>())) error("below minimum " + b->dump());
      if (auto b = bound("maximum"); b && !(x <= b->get<double>())) error("above maximum " + b->dump());
      if (auto b = bound("exclusiveMinimum"); b && !(x > b->get<double>())) error("not above exclusiveMinimum " + b->dump());
      if (auto b = bound("exclusiveMaximum"); b && !(x < b->get<double>())) error("not below exclusiveMaximum " + b->dump());
    }
  }

 private:
  void check_object(const json& s, const json& v, const std::string& path, int depth) {
    const json* props = s.contains("properties") && s["properties"].is_object() ? &s["properties"] : nullptr;
    if (s.contains("required") && s["required"].is_array()) {
      for (const auto& r : s["required"]) {
        if (r.is_string() && !v.contains(r.get<std::string>())) {
          errors_.push_back((path.empty() ? "/" : path) + ": missing required property " + r.dump());
        }
      }
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string child = path + "/" + escape_token(it.key());
      if (props != nullptr && props->contains(it.key())) {
        check((*props)[it.key()], it.value(), child, depth + 1);
      } else if (s.contains("additionalProperties")) {
        check(s["additionalProperties"], it.value(), child, depth + 1);
      }
    }
  }

  const json* resolve(const json& ref) {
    if (!ref.is_string()) return nullptr;
    const std::string r = ref.get<std::string>();
    if (r.empty() || r[0] != '#') return nullptr;
    try {
      const json::json_pointer p(r.substr(1));
      if (root_.contains(p)) return &root_.at(p);
    } catch (const nlohmann::json::exception&) {
    }
    return nullptr;
  }

  std::shared_ptr<const StringDfa> cached(const std::string& pattern) {
    auto it = patterns_.find(pattern);
    if (it != patterns_.end()) return it->second;
    std::shared_ptr<const StringDfa> dfa;
    try {
      dfa = compile_pattern(pattern, false);
    } catch (const Error&) {
    }
    patterns_[pattern] = dfa;
    return dfa;
  }

  const json& root_;
  std::vector<std::string>& errors_;
  std::map<std::string, std::shared_ptr<const StringDfa>> patterns_;
};

}  // namespace

std::vector<std::string> validate_json_at(const nlohmann::json& root, const nlohmann::json& schema, const nlohmann::json& value) {
  std::vector<std::string> errors;
  Validator(root, errors).check(schema, value, "", 0);
  return errors;
}

std::vector<std::string> validate_json(const nlohmann::json& schema, const nlohmann::json& value) {
  return validate_json_at(schema, schema, value);
}

}  // namespace slm::grammar
