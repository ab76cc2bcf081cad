// JSON schema -> Grammar.
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/engine/grammar/matcher.hpp"
#include "slm/util/error.hpp"

namespace slm::grammar {

void LiteralTrie::add(const std::string& bytes, int32_t index) {
  int32_t at = 0;
  nodes[0].below.push_back(index);
  for (char ch : bytes) {
    const uint8_t b = uint8_t(ch);
    int32_t next = child(at, b);
    if (next < 0) {
      next = int32_t(nodes.size());
      nodes.emplace_back();
      auto& ch_list = nodes[size_t(at)].children;
      ch_list.insert(std::lower_bound(ch_list.begin(), ch_list.end(), std::make_pair(b, int32_t(-1))), {b, next});
    }
    at = next;
    nodes[size_t(at)].below.push_back(index);
  }
  if (nodes[size_t(at)].terminal < 0) nodes[size_t(at)].terminal = index;
}

int32_t LiteralTrie::child(int32_t node, uint8_t byte) const {
  const auto& c = nodes[size_t(node)].children;
  auto it = std::lower_bound(c.begin(), c.end(), std::make_pair(byte, int32_t(-1)));
  return (it != c.end() && it->first == byte) ? it->second : -1;
}

namespace {

using ojson = nlohmann::ordered_json;

const std::set<std::string> kAnnotations = {"title", "description", "$schema", "$id", "$comment", "examples",
                                            "default", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
const std::set<std::string> kKeywords = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                         "anyOf", "oneOf", "allOf", "items", "minItems", "maxItems", "minLength",
                                         "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
                                         "exclusiveMaximum", "$ref"};

std::string type_name(const ojson& v) { return v.type_name(); }

std::string escape_pointer_token(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

class Compiler {
 public:
  Compiler(const ojson& root, const SchemaLimits& limits) : root_(root), limits_(limits) {
    g_.key_dfa = json_string_dfa();
    g_.max_depth = limits.max_nesting + 2;  // the root frame and a key frame
  }

  Grammar run() {
    Node root;
    root.kind = NodeKind::root;
    add(std::move(root));
    const int32_t value = compile(root_, "", 0);
    g_.nodes[0].child = value;
    check_epsilon_cycles();
    if (!can_match(value)) fail(ErrorKind::invalid_argument, "JSON schema accepts no value");
    finite_instances();
    if (g_.nodes[size_t(value)].min_depth >= Node::kNoInstance) {
      fail(ErrorKind::invalid_argument, "JSON schema has no finite value (a required property recurses forever)");
    }
    return std::move(g_);
  }

 private:
  int32_t add(Node n) {
    if (g_.nodes.size() >= limits_.max_nodes) {
      fail(ErrorKind::out_of_range, "JSON schema is too large: more than {} grammar nodes", limits_.max_nodes);
    }
    g_.nodes.push_back(std::move(n));
    return int32_t(g_.nodes.size()) - 1;
  }

  int32_t never() {
    Node n;
    n.kind = NodeKind::any_of;
    return add(std::move(n));
  }

  int32_t literal_node(const std::vector<std::string>& values) {
    Node n;
    n.kind = NodeKind::literals;
    for (size_t i = 0; i < values.size(); ++i) {
      literal_bytes_ += values[i].size();
      if (literal_bytes_ > limits_.max_literal_bytes) {
        fail(ErrorKind::out_of_range, "enum/const values exceed {} bytes", limits_.max_literal_bytes);
      }
      n.literals.add(values[i], int32_t(i));
    }
    return add(std::move(n));
  }

  int32_t plain_string() {
    Node n;
    n.kind = NodeKind::string;
    n.dfa = json_string_dfa();
    return add(std::move(n));
  }

  int32_t any() {
    if (any_ >= 0) return any_;
    any_ = add(Node{});  // any_of, filled below
    Node obj;
    obj.kind = NodeKind::object;
    obj.additional = any_;
    obj.next_required = {0};
    Node arr;
    arr.kind = NodeKind::array;
    arr.child = any_;
    Node num;
    num.kind = NodeKind::number;
    std::vector<int32_t> alts = {add(std::move(obj)), add(std::move(arr)), plain_string(), add(std::move(num)),
                                 literal_node({"true", "false", "null"})};
    g_.nodes[size_t(any_)].alternatives = alts;
    return any_;
  }

  [[noreturn]] void unsupported(const std::string& ptr, const std::string& what) {
    fail(ErrorKind::unsupported, "JSON schema: {} at {:?} is not supported", what, ptr.empty() ? "#" : "#" + ptr);
  }
  [[noreturn]] void invalid(const std::string& ptr, const std::string& what) {
    fail(ErrorKind::invalid_argument, "JSON schema at {:?}: {}", ptr.empty() ? "#" : "#" + ptr, what);
  }

  int64_t count_value(const ojson& s, const char* key, const std::string& ptr) {
    const ojson& v = s[key];
    if (!v.is_number_integer() && !(v.is_number_float() && v.get<double>() == double(int64_t(v.get<double>())))) {
      invalid(ptr + "/" + key, fmt::format("expected a non-negative integer, found {}", type_name(v)));
    }
    const int64_t n = v.is_number_float() ? int64_t(v.get<double>()) : v.get<int64_t>();
    if (n < 0) invalid(ptr + "/" + key, fmt::format("expected a non-negative integer, found {}", n));
    return std::min<int64_t>(n, INT32_MAX);
  }

  double number_value(const ojson& s, const char* key, const std::string& ptr) {
    const ojson& v = s[key];
    if (v.is_boolean()) unsupported(ptr + "/" + key, fmt::format("boolean {} (draft 4)", key));
    if (!v.is_number()) invalid(ptr + "/" + key, fmt::format("expected a number, found {}", type_name(v)));
    return v.get<double>();
  }

  int32_t compile(const ojson& s, const std::string& ptr, int32_t depth) {
    if (depth > limits_.max_schema_depth) {
      fail(ErrorKind::out_of_range, "JSON schema nests deeper than {} levels at {:?}", limits_.max_schema_depth, "#" + ptr);
    }
    if (s.is_boolean()) return s.get<bool>() ? any() : never();
    if (!s.is_object()) invalid(ptr, fmt::format("expected a schema (object or boolean), found {}", type_name(s)));
    std::vector<std::string> active;
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (kAnnotations.count(it.key())) continue;
      if (!kKeywords.count(it.key())) unsupported(ptr + "/" + escape_pointer_token(it.key()), fmt::format("keyword {:?}", it.key()));
      active.push_back(it.key());
    }
    auto only = [&](const std::string& key) {
      for (const auto& k : active) {
        if (k != key) unsupported(ptr + "/" + escape_pointer_token(k), fmt::format("keyword {:?} beside {:?}", k, key));
      }
    };
    if (s.contains("$ref")) {
      only("$ref");
      return ref(s["$ref"], ptr + "/$ref");
    }
    if (s.contains("allOf")) {
      only("allOf");
      const ojson& all = s["allOf"];
      if (!all.is_array() || all.size() != 1) unsupported(ptr + "/allOf", "allOf with other than one subschema");
      return compile(all[0], ptr + "/allOf/0", depth + 1);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      only(key);
      const ojson& list = s[key];
      if (!list.is_array() || list.empty()) invalid(ptr + "/" + key, "expected a non-empty array of schemas");
      Node n;
      n.kind = NodeKind::any_of;
      const int32_t id = add(std::move(n));
      std::vector<int32_t> alts;
      for (size_t i = 0; i < list.size(); ++i) alts.push_back(compile(list[i], fmt::format("{}/{}/{}", ptr, key, i), depth + 1));
      g_.nodes[size_t(id)].alternatives = alts;
      return id;
    }
    if (s.contains("enum") || s.contains("const")) return enumeration(s, ptr);

    std::vector<std::string> types;
    if (s.contains("type")) {
      const ojson& t = s["type"];
      if (t.is_string()) types.push_back(t.get<std::string>());
      else if (t.is_array() && !t.empty()) {
        for (const auto& x : t) {
          if (!x.is_string()) invalid(ptr + "/type", "expected type names");
          types.push_back(x.get<std::string>());
        }
      } else {
        invalid(ptr + "/type", "expected a type name or a non-empty list of them");
      }
    } else {
      types = {"object", "array", "string", "number", "boolean", "null"};
    }
    const bool has_number = std::find(types.begin(), types.end(), "number") != types.end();
    std::vector<int32_t> alts;
    for (const std::string& t : types) {
      if (t == "object") alts.push_back(object(s, ptr, depth));
      else if (t == "array") alts.push_back(array(s, ptr, depth));
      else if (t == "string") alts.push_back(string(s, ptr));
      else if (t == "number") alts.push_back(number(s, ptr, false));
      else if (t == "integer") { if (!has_number) alts.push_back(number(s, ptr, true)); }
      else if (t == "boolean") alts.push_back(literal_node({"true", "false"}));
      else if (t == "null") alts.push_back(literal_node({"null"}));
      else invalid(ptr + "/type", fmt::format("unknown type {:?}", t));
    }
    if (alts.size() == 1) return alts[0];
    Node n;
    n.kind = NodeKind::any_of;
    n.alternatives = alts;
    return add(std::move(n));
  }

  int32_t ref(const ojson& r, const std::string& ptr) {
    if (!r.is_string()) invalid(ptr, "expected a string");
    const std::string target = r.get<std::string>();
    if (target.empty() || target[0] != '#') unsupported(ptr, fmt::format("non-local $ref {:?}", target));
    const std::string pointer = target.substr(1);
    auto it = refs_.find(pointer);
    if (it != refs_.end()) return it->second;
    const ojson* at = nullptr;
    try {
      const ojson::json_pointer p(pointer);
      if (root_.contains(p)) at = &root_.at(p);
    } catch (const nlohmann::json::exception&) {
    }
    if (at == nullptr) fail(ErrorKind::not_found, "JSON schema: $ref {:?} at {:?} points to nothing", target, "#" + ptr);
    Node n;
    n.kind = NodeKind::any_of;
    const int32_t id = add(std::move(n));
    refs_[pointer] = id;
    pending_.insert(id);  // a recursive reference: assumed to match while its body compiles
    const int32_t body = compile(*at, pointer, int32_t(std::count(pointer.begin(), pointer.end(), '/')));
    pending_.erase(id);
    g_.nodes[size_t(id)].alternatives = {body};
    return id;
  }

  int32_t enumeration(const ojson& s, const std::string& ptr) {
    std::vector<ojson> values;
    std::string key = s.contains("enum") ? "enum" : "const";
    if (s.contains("enum")) {
      if (!s["enum"].is_array()) invalid(ptr + "/enum", "expected an array");
      for (const auto& v : s["enum"]) values.push_back(v);
      if (values.size() > limits_.max_enum_values) {
        fail(ErrorKind::out_of_range, "JSON schema: enum at {:?} has {} values, more than the limit of {}", "#" + ptr, values.size(), limits_.max_enum_values);
      }
    }
    if (s.contains("const")) {
      if (s.contains("enum")) {
        const ojson c = s["const"];
        values.erase(std::remove_if(values.begin(), values.end(), [&](const ojson& v) { return v != c; }), values.end());
      } else {
        values.push_back(s["const"]);
      }
    }
    // The other keywords beside enum/const narrow the values further.
    ojson rest = s;
    rest.erase("enum");
    rest.erase("const");
    const nlohmann::json rest_plain = nlohmann::json::parse(rest.dump());
    std::vector<std::string> texts;
    std::set<std::string> seen;
    for (const ojson& v : values) {
      if (!validate_json_at(root_plain(), rest_plain, nlohmann::json::parse(v.dump())).empty()) continue;
      std::string text = v.dump();
      if (seen.insert(text).second) texts.push_back(std::move(text));
    }
    if (texts.empty()) invalid(ptr + "/" + key, "no value of the enum/const satisfies the schema");
    return literal_node(texts);
  }

  int32_t object(const ojson& s, const std::string& ptr, int32_t depth) {
    Node n;
    n.kind = NodeKind::object;
    std::vector<std::string> required;
    if (s.contains("required")) {
      const ojson& r = s["required"];
      if (!r.is_array()) invalid(ptr + "/required", "expected an array of property names");
      for (const auto& x : r) {
        if (!x.is_string()) invalid(ptr + "/required", "expected an array of property names");
        if (std::find(required.begin(), required.end(), x.get<std::string>()) == required.end()) required.push_back(x.get<std::string>());
      }
    }
    int32_t additional = -2;  // -2: any
    if (s.contains("additionalProperties")) {
      const ojson& a = s["additionalProperties"];
      if (a.is_boolean()) additional = a.get<bool>() ? -2 : -1;
      else additional = compile(a, ptr + "/additionalProperties", depth + 1);
    }
    if (additional == -2) additional = any();
    n.additional = additional;
    std::vector<std::string> declared;
    if (s.contains("properties")) {
      const ojson& props = s["properties"];
      if (!props.is_object()) invalid(ptr + "/properties", "expected an object");
      for (auto it = props.begin(); it != props.end(); ++it) {
        const std::string name = it.key();
        declared.push_back(name);
        const bool req = std::find(required.begin(), required.end(), name) != required.end();
        const int32_t value = compile(it.value(), ptr + "/properties/" + escape_pointer_token(name), depth + 1);
        if (!can_match(value)) {
          if (req) invalid(ptr + "/properties/" + escape_pointer_token(name), "required property whose schema accepts no value");
          continue;
        }
        const std::string quoted = ojson(name).dump();
        n.properties.push_back({quoted.substr(1, quoted.size() - 2), value, req});
      }
    }
    for (const std::string& name : required) {
      if (std::find(declared.begin(), declared.end(), name) != declared.end()) continue;
      if (additional < 0) invalid(ptr + "/required", fmt::format("required property {:?} is not allowed (additionalProperties is false)", name));
      const std::string quoted = ojson(name).dump();
      n.properties.push_back({quoted.substr(1, quoted.size() - 2), additional, true});
    }
    const int32_t size = int32_t(n.properties.size());
    n.next_required.assign(size_t(size) + 1, size);
    for (int32_t i = size - 1; i >= 0; --i) n.next_required[size_t(i)] = n.properties[size_t(i)].required ? i : n.next_required[size_t(i) + 1];
    for (int32_t i = 0; i < size; ++i) n.keys.add(n.properties[size_t(i)].key, i);
    return add(std::move(n));
  }

  int32_t array(const ojson& s, const std::string& ptr, int32_t depth) {
    Node n;
    n.kind = NodeKind::array;
    if (s.contains("minItems")) n.min_items = int32_t(count_value(s, "minItems", ptr));
    if (s.contains("maxItems")) n.max_items = int32_t(count_value(s, "maxItems", ptr));
    if (n.max_items >= 0 && n.min_items > n.max_items) invalid(ptr, "minItems is above maxItems");
    if (s.contains("items")) {
      const ojson& items = s["items"];
      if (items.is_array()) unsupported(ptr + "/items", "items as an array of schemas (tuple form)");
      n.child = compile(items, ptr + "/items", depth + 1);
      if (!can_match(n.child)) {
        if (n.min_items > 0) invalid(ptr + "/items", "minItems above 0 with items that accept no value");
        n.max_items = 0;
      }
    } else {
      n.child = any();
    }
    return add(std::move(n));
  }

  int32_t string(const ojson& s, const std::string& ptr) {
    Node n;
    n.kind = NodeKind::string;
    if (s.contains("minLength")) n.min_length = int32_t(count_value(s, "minLength", ptr));
    if (s.contains("maxLength")) n.max_length = int32_t(count_value(s, "maxLength", ptr));
    if (n.max_length >= 0 && n.min_length > n.max_length) invalid(ptr, "minLength is above maxLength");
    if (s.contains("pattern") && s.contains("format")) unsupported(ptr + "/format", "format together with pattern");
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) invalid(ptr + "/pattern", "expected a string");
      n.dfa = pattern(s["pattern"].get<std::string>());
    } else if (s.contains("format")) {
      if (!s["format"].is_string()) invalid(ptr + "/format", "expected a string");
      const std::string f = s["format"].get<std::string>();
      const std::string re = format_regex(f);
      if (re.empty()) unsupported(ptr + "/format", fmt::format("format {:?}", f));
      n.dfa = pattern(re);
    } else {
      n.dfa = json_string_dfa();
    }
    if (n.max_length >= 0 && n.dfa->min_chars[size_t(n.dfa->start)] > n.max_length) {
      invalid(ptr, "maxLength is below the shortest string the pattern or format allows");
    }
    if (n.dfa->max_chars[size_t(n.dfa->start)] < n.min_length) {
      invalid(ptr, "minLength is above the longest string the pattern or format allows");
    }
    return add(std::move(n));
  }

  std::shared_ptr<const StringDfa> pattern(const std::string& p) {
    auto it = patterns_.find(p);
    if (it != patterns_.end()) return it->second;
    auto dfa = compile_pattern(p, true);
    patterns_[p] = dfa;
    return dfa;
  }

  int32_t number(const ojson& s, const std::string& ptr, bool integer) {
    Node n;
    n.kind = NodeKind::number;
    n.integer = integer;
    auto lower = [&](double v, bool exclusive) {
      if (!n.has_min || v > n.minimum || (v == n.minimum && exclusive)) { n.minimum = v; n.exclusive_min = exclusive; }
      n.has_min = true;
    };
    auto upper = [&](double v, bool exclusive) {
      if (!n.has_max || v < n.maximum || (v == n.maximum && exclusive)) { n.maximum = v; n.exclusive_max = exclusive; }
      n.has_max = true;
    };
    if (s.contains("minimum")) lower(number_value(s, "minimum", ptr), false);
    if (s.contains("exclusiveMinimum")) lower(number_value(s, "exclusiveMinimum", ptr), true);
    if (s.contains("maximum")) upper(number_value(s, "maximum", ptr), false);
    if (s.contains("exclusiveMaximum")) upper(number_value(s, "exclusiveMaximum", ptr), true);
    if (n.bounded()) {
      bool any_start = number_feasible(n, num_minus, true, 0, 0, 0) || number_feasible(n, num_zero, false, 0, 1, 0);
      for (int d = 1; d <= 9 && !any_start; ++d) any_start = number_feasible(n, num_int, false, d, 1, 0);
      if (!any_start) invalid(ptr, fmt::format("no {} of at most {} digits lies within the bounds", integer ? "integer" : "number", kMaxNumberDigits));
    }
    return add(std::move(n));
  }

  // Whether a node can match anything (only any_of nodes with no live alternative cannot).
  bool can_match(int32_t id) {
    std::vector<uint8_t> seen(g_.nodes.size(), 0);
    return can_match(id, seen);
  }
  bool can_match(int32_t id, std::vector<uint8_t>& seen) {
    const Node& n = g_.nodes[size_t(id)];
    if (n.kind != NodeKind::any_of || pending_.count(id)) return true;
    if (seen[size_t(id)]) return false;
    seen[size_t(id)] = 1;
    for (int32_t a : n.alternatives) if (can_match(a, seen)) return true;
    return false;
  }

  // Computes Node::min_depth by fixpoint and drops the choices that have no finite value (optional
  // properties, additionalProperties, array items), so generation never enters them.
  void finite_instances() {
    constexpr int32_t inf = Node::kNoInstance;
    for (Node& n : g_.nodes) {
      const bool leaf = n.kind == NodeKind::literals || n.kind == NodeKind::string || n.kind == NodeKind::number;
      n.min_depth = leaf ? 1 : inf;
    }
    auto md = [&](int32_t id) { return id < 0 ? inf : g_.nodes[size_t(id)].min_depth; };
    for (bool changed = true; changed;) {
      changed = false;
      for (Node& n : g_.nodes) {
        int32_t d = n.min_depth;
        switch (n.kind) {
          case NodeKind::object: {
            int32_t deepest = 0;
            for (const Property& p : n.properties) if (p.required) deepest = std::max(deepest, md(p.value));
            d = deepest >= inf ? inf : 1 + deepest;
            break;
          }
          case NodeKind::array: d = n.min_items > 0 ? std::min(inf, 1 + md(n.child)) : 1; break;
          case NodeKind::any_of: {
            d = inf;
            for (int32_t a : n.alternatives) d = std::min(d, md(a));
            break;
          }
          case NodeKind::root: d = md(n.child); break;
          default: break;
        }
        if (d < n.min_depth) {
          n.min_depth = d;
          changed = true;
        }
      }
    }
    for (Node& n : g_.nodes) {
      if (n.kind == NodeKind::array && md(n.child) >= inf) n.max_items = 0;
      if (n.kind != NodeKind::object) continue;
      if (n.additional >= 0 && md(n.additional) >= inf) n.additional = -1;
      n.keys = LiteralTrie();
      for (size_t i = 0; i < n.properties.size(); ++i) {
        if (md(n.properties[i].value) < inf) n.keys.add(n.properties[i].key, int32_t(i));
      }
    }
  }

  void check_epsilon_cycles() {
    std::vector<uint8_t> color(g_.nodes.size(), 0);
    std::function<void(int32_t)> visit = [&](int32_t id) {
      const Node& n = g_.nodes[size_t(id)];
      if (n.kind != NodeKind::any_of) return;
      if (color[size_t(id)] == 1) fail(ErrorKind::invalid_argument, "JSON schema refers to itself without nesting (a $ref/anyOf cycle)");
      if (color[size_t(id)] == 2) return;
      color[size_t(id)] = 1;
      for (int32_t a : n.alternatives) visit(a);
      color[size_t(id)] = 2;
    };
    for (size_t i = 0; i < g_.nodes.size(); ++i) visit(int32_t(i));
  }

  const nlohmann::json& root_plain() {
    if (root_plain_.is_null()) root_plain_ = nlohmann::json::parse(root_.dump());
    return root_plain_;
  }

  const ojson& root_;
  nlohmann::json root_plain_;
  const SchemaLimits& limits_;
  Grammar g_;
  std::map<std::string, int32_t> refs_;
  std::set<int32_t> pending_;
  std::map<std::string, std::shared_ptr<const StringDfa>> patterns_;
  int32_t any_ = -1;
  size_t literal_bytes_ = 0;
};

}  // namespace

Grammar compile_grammar(const nlohmann::ordered_json& schema, const SchemaLimits& limits) {
  return Compiler(schema, limits).run();
}

}  // namespace slm::grammar
