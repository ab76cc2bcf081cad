// router.yaml: parsing with yaml-cpp and validation with file:line:column messages.
#include "slm/router/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "slm/util/error.hpp"

namespace slm::router {
namespace {

namespace fs = std::filesystem;

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void error_at(const YAML::Node& node, const std::string& message) const {
    const YAML::Mark m = node.Mark();
    fail(ErrorKind::invalid_argument, "{}:{}:{}: {}", source_, m.line + 1, m.column + 1, message);
  }

  static std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Null: return "nothing (null)";
      case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
      case YAML::NodeType::Sequence: return "a list";
      case YAML::NodeType::Map: return "a mapping";
      default: return "an undefined value";
    }
  }

  Where where(const YAML::Node& node) const {
    const YAML::Mark m = node.Mark();
    return {m.line + 1, m.column + 1};
  }

  void expect_map(const YAML::Node& node, const std::string& what) const {
    if (!node.IsMap()) error_at(node, "expected " + what + " (a mapping), found " + describe(node));
  }
  void expect_list(const YAML::Node& node, const std::string& what) const {
    if (!node.IsSequence()) error_at(node, "expected " + what + " (a list), found " + describe(node));
  }

  // Every key of `node` must be one of `allowed`.
  void only_keys(const YAML::Node& node, const std::string& what, std::initializer_list<const char*> allowed) const {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        error_at(it->first, "unknown key '" + key + "' in " + what + "; expected one of: " + list);
      }
    }
  }

  std::string str(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) error_at(node, "expected " + what + " (a string), found " + describe(node));
    return node.Scalar();
  }
  double number(const YAML::Node& node, const std::string& what, double min_value = -1e300) const {
    if (!node.IsScalar()) error_at(node, "expected " + what + " (a number), found " + describe(node));
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(node.Scalar(), &used);
      if (used != node.Scalar().size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      error_at(node, "expected " + what + " (a number), found " + describe(node));
    }
    if (v < min_value) error_at(node, "expected " + what + " of at least " + fmt::format("{}", min_value) + ", found " + node.Scalar());
    return v;
  }
  int64_t integer(const YAML::Node& node, const std::string& what, int64_t min_value = 0) const {
    const double v = number(node, what, double(min_value));
    if (v != double(int64_t(v))) error_at(node, "expected " + what + " (a whole number), found " + node.Scalar());
    return int64_t(v);
  }
  bool boolean(const YAML::Node& node, const std::string& what) const {
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    error_at(node, "expected " + what + " (true or false), found " + describe(node));
  }
  // A string or a list of strings.
  std::vector<std::string> strings(const YAML::Node& node, const std::string& what) const {
    std::vector<std::string> out;
    if (node.IsScalar()) {
      out.push_back(node.Scalar());
      return out;
    }
    if (!node.IsSequence()) error_at(node, "expected " + what + " (a string or a list of strings), found " + describe(node));
    for (const auto& item : node) out.push_back(str(item, what));
    return out;
  }
  OnExceed on_exceed(const YAML::Node& node) const {
    const std::string s = str(node, "on_exceed");
    if (s == "reject") return OnExceed::reject;
    if (s == "downgrade") return OnExceed::downgrade;
    error_at(node, "expected on_exceed 'reject' or 'downgrade', found '" + s + "'");
  }

  DeploymentConfig deployment(const YAML::Node& node, const std::string& tier, size_t index) const {
    expect_map(node, "a deployment");
    only_keys(node, "a deployment", {"name", "model", "url", "api_key_env", "weight"});
    DeploymentConfig d;
    d.name = node["name"] ? str(node["name"], "name") : tier + "/" + std::to_string(index);
    if (node["url"]) {
      d.url = str(node["url"], "url");
      if (d.url.rfind("http://", 0) != 0 && d.url.rfind("https://", 0) != 0) {
        error_at(node["url"], "expected url starting with http:// or https://, found '" + d.url + "'");
      }
      if (node["model"]) d.model = str(node["model"], "model");
      if (node["api_key_env"]) d.api_key_env = str(node["api_key_env"], "api_key_env");
    } else if (node["model"]) {
      d.model_path = str(node["model"], "model");
      if (d.model_path.empty()) error_at(node["model"], "expected a model path or store name, found ''");
      if (node["api_key_env"]) error_at(node["api_key_env"], "expected api_key_env only with url, found it with an in-process model");
    } else {
      error_at(node, "expected a deployment with 'model: PATH' (in-process) or 'url: URL' (upstream), found neither");
    }
    if (node["weight"]) {
      d.weight = number(node["weight"], "weight", 0);
      if (d.weight <= 0) error_at(node["weight"], "expected weight above 0, found " + node["weight"].Scalar());
    }
    return d;
  }

  TierConfig tier(const YAML::Node& node) const {
    expect_map(node, "a tier");
    only_keys(node, "a tier", {"name", "deployments", "price_per_million", "context", "timeout", "first_byte_timeout",
                               "connect_timeout", "fallback", "tokenizer", "chars_per_token"});
    TierConfig t;
    t.where = where(node);
    if (!node["name"]) error_at(node, "expected a tier 'name', found none");
    t.name = str(node["name"], "tier name");
    if (t.name.empty() || t.name == "none") error_at(node["name"], "expected a tier name, found '" + t.name + "'");
    const YAML::Node deps = node["deployments"];
    if (!deps) error_at(node, "expected 'deployments' in tier '" + t.name + "', found none");
    expect_list(deps, "deployments");
    if (deps.size() == 0) error_at(deps, "expected at least one deployment in tier '" + t.name + "', found an empty list");
    for (size_t i = 0; i < deps.size(); ++i) t.deployments.push_back(deployment(deps[i], t.name, i));
    if (const YAML::Node p = node["price_per_million"]) {
      expect_map(p, "price_per_million");
      only_keys(p, "price_per_million", {"input", "output"});
      if (p["input"]) t.price_input = number(p["input"], "input price", 0);
      if (p["output"]) t.price_output = number(p["output"], "output price", 0);
    }
    if (node["context"]) t.context = integer(node["context"], "context (tokens)", 0);
    if (node["timeout"]) t.timeout_s = number(node["timeout"], "timeout (seconds)", 0.001);
    if (node["first_byte_timeout"]) t.first_byte_timeout_s = number(node["first_byte_timeout"], "first_byte_timeout (seconds)", 0.001);
    if (node["connect_timeout"]) t.connect_timeout_s = number(node["connect_timeout"], "connect_timeout (seconds)", 0.001);
    if (node["fallback"]) t.fallback = str(node["fallback"], "fallback tier");
    if (node["tokenizer"]) t.tokenizer = str(node["tokenizer"], "tokenizer (a tokenizer.json, GGUF file or model folder)");
    if (node["chars_per_token"]) {
      t.chars_per_token = number(node["chars_per_token"], "chars_per_token", 0);
      if (t.chars_per_token <= 0) error_at(node["chars_per_token"], "expected chars_per_token above 0, found " + node["chars_per_token"].Scalar());
      if (node["tokenizer"]) error_at(node["chars_per_token"], "expected either tokenizer or chars_per_token in tier '" + t.name + "', found both");
    }
    return t;
  }

  Condition condition(const YAML::Node& node) const {
    expect_map(node, "a rule condition");
    only_keys(node, "a rule condition", {"model", "task", "min_prompt_tokens", "max_prompt_tokens", "tools", "json_schema"});
    Condition c;
    if (node["model"]) c.models = strings(node["model"], "model");
    if (node["task"]) c.tasks = strings(node["task"], "task");
    if (node["min_prompt_tokens"]) c.min_prompt_tokens = integer(node["min_prompt_tokens"], "min_prompt_tokens");
    if (node["max_prompt_tokens"]) c.max_prompt_tokens = integer(node["max_prompt_tokens"], "max_prompt_tokens");
    if (node["tools"]) c.tools = boolean(node["tools"], "tools");
    if (node["json_schema"]) c.json_schema = boolean(node["json_schema"], "json_schema");
    return c;
  }

  PolicyConfig policy(const std::string& name, const YAML::Node& node) const {
    expect_map(node, "policy '" + name + "'");
    PolicyConfig p;
    p.name = name;
    p.where = where(node);
    if (!node["kind"]) error_at(node, "expected 'kind' (rules, semantic, learned or cascade) in policy '" + name + "', found none");
    const std::string kind = str(node["kind"], "policy kind");
    if (node["default"]) p.default_tier = str(node["default"], "default tier");
    if (kind == "rules") {
      p.kind = PolicyKind::rules;
      only_keys(node, "a rules policy", {"kind", "rules", "default"});
      if (!node["rules"]) error_at(node, "expected 'rules' in policy '" + name + "', found none");
      expect_list(node["rules"], "rules");
      size_t i = 0;
      for (const auto& r : node["rules"]) {
        expect_map(r, "a rule");
        only_keys(r, "a rule", {"name", "when", "tier"});
        Rule rule;
        rule.name = r["name"] ? str(r["name"], "rule name") : "rule " + std::to_string(i);
        if (!r["tier"]) error_at(r, "expected 'tier' in a rule, found none");
        rule.tier = str(r["tier"], "tier");
        if (r["when"]) rule.when = condition(r["when"]);
        p.rules.push_back(rule);
        ++i;
      }
    } else if (kind == "semantic") {
      p.kind = PolicyKind::semantic;
      only_keys(node, "a semantic policy", {"kind", "examples", "threshold", "default"});
      if (!node["examples"]) error_at(node, "expected 'examples' (tier: [prompts]) in policy '" + name + "', found none");
      expect_map(node["examples"], "examples");
      for (auto it = node["examples"].begin(); it != node["examples"].end(); ++it) {
        const std::string tier = it->first.as<std::string>();
        auto list = strings(it->second, "example prompts");
        if (list.empty()) error_at(it->second, "expected at least one example prompt for tier '" + tier + "', found none");
        p.examples[tier] = std::move(list);
      }
      if (node["threshold"]) p.threshold = number(node["threshold"], "threshold", -1);
    } else if (kind == "learned") {
      p.kind = PolicyKind::learned;
      only_keys(node, "a learned policy", {"kind", "weak", "strong", "training", "train_from_log", "target_strong_share", "default"});
      if (!node["weak"]) error_at(node, "expected 'weak' tier in policy '" + name + "', found none");
      if (!node["strong"]) error_at(node, "expected 'strong' tier in policy '" + name + "', found none");
      p.weak_tier = str(node["weak"], "weak tier");
      p.strong_tier = str(node["strong"], "strong tier");
      if (node["training"]) p.training_file = str(node["training"], "training file");
      if (node["train_from_log"]) p.train_from_log = boolean(node["train_from_log"], "train_from_log");
      if (node["target_strong_share"]) {
        p.target_strong_share = number(node["target_strong_share"], "target_strong_share", 0);
        if (p.target_strong_share > 1) error_at(node["target_strong_share"], "expected target_strong_share between 0 and 1, found " + node["target_strong_share"].Scalar());
      }
    } else if (kind == "cascade") {
      p.kind = PolicyKind::cascade;
      only_keys(node, "a cascade policy", {"kind", "tiers", "min_mean_logprob", "min_token_logprob", "check_json", "samples", "min_agreement", "default"});
      if (!node["tiers"]) error_at(node, "expected 'tiers' (cheapest first) in policy '" + name + "', found none");
      p.cascade_tiers = strings(node["tiers"], "cascade tiers");
      if (p.cascade_tiers.size() < 2) error_at(node["tiers"], "expected at least two tiers in a cascade, found " + std::to_string(p.cascade_tiers.size()));
      if (node["min_mean_logprob"]) p.min_mean_logprob = number(node["min_mean_logprob"], "min_mean_logprob");
      if (node["min_token_logprob"]) p.min_token_logprob = number(node["min_token_logprob"], "min_token_logprob");
      if (node["check_json"]) p.check_json = boolean(node["check_json"], "check_json");
      if (node["samples"]) p.samples = int(integer(node["samples"], "samples", 1));
      if (node["min_agreement"]) p.min_agreement = number(node["min_agreement"], "min_agreement", 0);
    } else {
      error_at(node["kind"], "expected policy kind rules, semantic, learned or cascade, found '" + kind + "'");
    }
    return p;
  }

  RouteConfig route(const YAML::Node& node) const {
    expect_map(node, "a route");
    only_keys(node, "a route", {"model", "tier", "policy"});
    RouteConfig r;
    r.where = where(node);
    if (!node["model"]) error_at(node, "expected 'model' (the alias clients send) in a route, found none");
    r.model = str(node["model"], "model alias");
    if (node["tier"] && node["policy"]) error_at(node, "expected either 'tier' or 'policy' in route '" + r.model + "', found both");
    if (node["tier"]) r.tier = str(node["tier"], "tier");
    else if (node["policy"]) r.policies = strings(node["policy"], "policy");
    else error_at(node, "expected 'tier' or 'policy' in route '" + r.model + "', found neither");
    return r;
  }

  // Names that must refer to a tier of the file.
  void check_tier(const RouterConfig& c, const std::string& name, const YAML::Node& at) const {
    if (c.tier_index(name) < 0) {
      std::string list;
      for (const auto& t : c.tiers) list += (list.empty() ? "" : ", ") + t.name;
      error_at(at, "expected a tier name (" + list + "), found '" + name + "'");
    }
  }

  RouterConfig parse(const YAML::Node& root) const {
    RouterConfig c;
    c.source = source_;
    expect_map(root, "the router configuration");
    only_keys(root, "the router configuration", {"tiers", "routes", "policies", "limits", "budgets", "retry", "circuit_breaker",
                                                 "embedding", "capture", "accounting", "task_header"});
    const YAML::Node tiers = root["tiers"];
    if (!tiers) error_at(root, "expected 'tiers' (a list), found none");
    expect_list(tiers, "tiers");
    if (tiers.size() == 0) error_at(tiers, "expected at least one tier, found an empty list");
    std::set<std::string> names, deployment_names;
    for (const auto& t : tiers) {
      c.tiers.push_back(tier(t));
      if (!names.insert(c.tiers.back().name).second) error_at(t["name"], "expected unique tier names, found '" + c.tiers.back().name + "' twice");
      for (size_t i = 0; i < c.tiers.back().deployments.size(); ++i) {
        const auto& d = c.tiers.back().deployments[i];
        if (!deployment_names.insert(d.name).second) error_at(t["deployments"][i], "expected unique deployment names, found '" + d.name + "' twice");
      }
    }
    for (size_t i = 0; i < c.tiers.size(); ++i) {
      const std::string& f = c.tiers[i].fallback;
      if (!f.empty() && f != "none") {
        check_tier(c, f, tiers[i]["fallback"]);
        if (f == c.tiers[i].name) error_at(tiers[i]["fallback"], "expected a fallback other than the tier itself, found '" + f + "'");
      }
    }

    if (const YAML::Node pols = root["policies"]) {
      expect_map(pols, "policies");
      for (auto it = pols.begin(); it != pols.end(); ++it) {
        const std::string name = it->first.as<std::string>();
        PolicyConfig p = policy(name, it->second);
        const YAML::Node& n = it->second;
        if (!p.default_tier.empty()) check_tier(c, p.default_tier, n["default"]);
        for (size_t i = 0; i < p.rules.size(); ++i) check_tier(c, p.rules[i].tier, n["rules"][i]["tier"]);
        for (auto e = n["examples"].begin(); p.kind == PolicyKind::semantic && e != n["examples"].end(); ++e) {
          check_tier(c, e->first.as<std::string>(), e->first);
        }
        if (p.kind == PolicyKind::learned) {
          check_tier(c, p.weak_tier, n["weak"]);
          check_tier(c, p.strong_tier, n["strong"]);
        }
        if (p.kind == PolicyKind::cascade) {
          for (size_t i = 0; i < p.cascade_tiers.size(); ++i) check_tier(c, p.cascade_tiers[i], n["tiers"].IsSequence() ? n["tiers"][i] : n["tiers"]);
        }
        c.policies[name] = std::move(p);
      }
    }

    if (const YAML::Node routes = root["routes"]) {
      expect_list(routes, "routes");
      std::set<std::string> aliases;
      for (const auto& r : routes) {
        RouteConfig rc = route(r);
        if (!aliases.insert(rc.model).second) error_at(r["model"], "expected unique route aliases, found '" + rc.model + "' twice");
        if (!rc.tier.empty()) check_tier(c, rc.tier, r["tier"]);
        for (size_t i = 0; i < rc.policies.size(); ++i) {
          if (!c.policies.count(rc.policies[i])) {
            const YAML::Node at = r["policy"].IsSequence() ? r["policy"][i] : r["policy"];
            std::string list;
            for (const auto& [name, p] : c.policies) list += (list.empty() ? "" : ", ") + name;
            error_at(at, "expected a policy name (" + (list.empty() ? std::string("none defined") : list) + "), found '" + rc.policies[i] + "'");
          }
        }
        c.routes.push_back(std::move(rc));
      }
    }

    if (const YAML::Node limits = root["limits"]) {
      expect_map(limits, "limits");
      only_keys(limits, "limits", {"keys"});
      if (const YAML::Node keys = limits["keys"]) {
        expect_map(keys, "limits.keys");
        for (auto it = keys.begin(); it != keys.end(); ++it) {
          const YAML::Node& n = it->second;
          expect_map(n, "a key's limits");
          only_keys(n, "a key's limits", {"requests_per_minute", "tokens_per_minute", "budget_usd", "on_exceed"});
          KeyLimit k;
          k.key = it->first.as<std::string>();
          if (n["requests_per_minute"]) k.requests_per_minute = integer(n["requests_per_minute"], "requests_per_minute");
          if (n["tokens_per_minute"]) k.tokens_per_minute = integer(n["tokens_per_minute"], "tokens_per_minute");
          if (n["budget_usd"]) k.budget_usd = number(n["budget_usd"], "budget_usd", 0);
          if (n["on_exceed"]) k.on_exceed = on_exceed(n["on_exceed"]);
          c.key_limits.push_back(k);
        }
      }
    }

    if (const YAML::Node budgets = root["budgets"]) {
      expect_map(budgets, "budgets");
      only_keys(budgets, "budgets", {"period", "tiers"});
      if (budgets["period"]) {
        c.budget_period = str(budgets["period"], "budget period");
        if (c.budget_period != "total" && c.budget_period != "day" && c.budget_period != "month") {
          error_at(budgets["period"], "expected budget period total, day or month, found '" + c.budget_period + "'");
        }
      }
      if (const YAML::Node tb = budgets["tiers"]) {
        expect_map(tb, "budgets.tiers");
        for (auto it = tb.begin(); it != tb.end(); ++it) {
          TierBudget b;
          b.tier = it->first.as<std::string>();
          check_tier(c, b.tier, it->first);
          const YAML::Node& n = it->second;
          expect_map(n, "a tier budget");
          only_keys(n, "a tier budget", {"budget_usd", "on_exceed"});
          if (!n["budget_usd"]) error_at(n, "expected 'budget_usd' in the budget of tier '" + b.tier + "', found none");
          b.budget_usd = number(n["budget_usd"], "budget_usd", 0);
          if (n["on_exceed"]) b.on_exceed = on_exceed(n["on_exceed"]);
          c.tier_budgets.push_back(b);
        }
      }
    }

    if (const YAML::Node r = root["retry"]) {
      expect_map(r, "retry");
      only_keys(r, "retry", {"attempts", "backoff", "max_backoff"});
      if (r["attempts"]) c.retry.attempts = int(integer(r["attempts"], "retry attempts"));
      if (r["backoff"]) c.retry.backoff_s = number(r["backoff"], "backoff (seconds)", 0);
      if (r["max_backoff"]) c.retry.max_backoff_s = number(r["max_backoff"], "max_backoff (seconds)", 0);
    }
    if (const YAML::Node b = root["circuit_breaker"]) {
      expect_map(b, "circuit_breaker");
      only_keys(b, "circuit_breaker", {"failures", "cooldown"});
      if (b["failures"]) c.breaker.failures = int(integer(b["failures"], "failures", 1));
      if (b["cooldown"]) c.breaker.cooldown_s = number(b["cooldown"], "cooldown (seconds)", 0);
    }
    if (const YAML::Node e = root["embedding"]) {
      expect_map(e, "embedding");
      only_keys(e, "embedding", {"model", "dim"});
      if (e["model"]) c.embedding.model_path = str(e["model"], "embedding model");
      if (e["dim"]) c.embedding.dim = int(integer(e["dim"], "embedding dim", 8));
    }
    if (const YAML::Node cap = root["capture"]) {
      expect_map(cap, "capture");
      only_keys(cap, "capture", {"tiers", "tasks"});
      if (cap["tiers"]) {
        c.capture.tiers = strings(cap["tiers"], "capture tiers");
        for (size_t i = 0; i < c.capture.tiers.size(); ++i) {
          check_tier(c, c.capture.tiers[i], cap["tiers"].IsSequence() ? cap["tiers"][i] : cap["tiers"]);
        }
      }
      if (cap["tasks"]) c.capture.tasks = strings(cap["tasks"], "capture tasks");
    }
    if (const YAML::Node a = root["accounting"]) {
      expect_map(a, "accounting");
      only_keys(a, "accounting", {"database", "shared", "replica"});
      if (a["database"]) c.database = str(a["database"], "database path");
      if (a["shared"]) c.shared = boolean(a["shared"], "shared (true or false)");
      if (a["replica"]) c.replica = str(a["replica"], "replica name");
      if (c.shared && c.database == ":memory:") error_at(a["shared"], "expected a database file for shared limits, found ':memory:'");
    }
    if (root["task_header"]) c.task_header = str(root["task_header"], "task_header");
    std::transform(c.task_header.begin(), c.task_header.end(), c.task_header.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return c;
  }

 private:
  std::string source_;
};

}  // namespace

const TierConfig* RouterConfig::find_tier(const std::string& name) const {
  const int i = tier_index(name);
  return i < 0 ? nullptr : &tiers[size_t(i)];
}

int RouterConfig::tier_index(const std::string& name) const {
  for (size_t i = 0; i < tiers.size(); ++i) {
    if (tiers[i].name == name) return int(i);
  }
  return -1;
}

const KeyLimit* RouterConfig::key_limit(const std::string& key) const {
  const KeyLimit* fallback = nullptr;
  for (const auto& k : key_limits) {
    if (k.key == key) return &k;
    if (k.key == "default") fallback = &k;
  }
  return fallback;
}

RouterConfig parse_config(const std::string& yaml_text, const std::string& source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail(ErrorKind::invalid_argument, "{}:{}:{}: expected valid YAML, found a syntax error: {}", source_name, e.mark.line + 1,
         e.mark.column + 1, e.msg);
  }
  try {
    return Parser(source_name).parse(root);
  } catch (const YAML::Exception& e) {
    fail(ErrorKind::invalid_argument, "{}:{}:{}: {}", source_name, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
}

RouterConfig load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::not_found, "expected a router configuration file, found nothing at '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  RouterConfig c = parse_config(text.str(), path);
  // Files the configuration names are relative to its folder.
  const fs::path dir = fs::path(path).parent_path();
  auto rebase = [&](std::string& p) {
    if (!p.empty() && p != ":memory:" && fs::path(p).is_relative()) p = (dir / p).lexically_normal().string();
  };
  rebase(c.database);
  for (auto& [name, p] : c.policies) rebase(p.training_file);
  for (auto& t : c.tiers) {
    rebase(t.tokenizer);
    for (auto& d : t.deployments) {
      if (d.local() && fs::path(d.model_path).is_relative() && fs::exists(dir / d.model_path)) d.model_path = (dir / d.model_path).string();
    }
  }
  if (!c.embedding.model_path.empty() && fs::exists(dir / c.embedding.model_path)) c.embedding.model_path = (dir / c.embedding.model_path).string();
  return c;
}

}  // namespace slm::router
