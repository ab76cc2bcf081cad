#include "slm/router/policy.hpp"

#include <algorithm>
#include <fstream>

#include "slm/util/error.hpp"

namespace slm::router {
namespace {

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

int64_t RouteInput::tokens_for(const std::string& tier) const { return tokens ? (*tokens)(tier) : prompt_tokens; }

RouteInput route_input(const nlohmann::json& request, const std::map<std::string, std::string>& headers,
                       const std::string& task_header, std::shared_ptr<const TokenCounters> counters) {
  RouteInput in;
  if (counters) in.tokens = std::make_shared<PromptTokens>(std::move(counters), request);
  if (request.contains("model") && request["model"].is_string()) in.model = request["model"].get<std::string>();
  if (auto it = headers.find(task_header); it != headers.end()) in.task = it->second;
  if (in.task.empty() && request.contains("metadata") && request["metadata"].is_object()) {
    const auto& m = request["metadata"];
    if (m.contains("task") && m["task"].is_string()) in.task = m["task"].get<std::string>();
  }
  size_t bytes = 0;
  if (request.contains("messages") && request["messages"].is_array()) {
    for (const auto& msg : request["messages"]) {
      if (!msg.is_object() || !msg.contains("content")) continue;
      const std::string text = content_text(msg["content"]);
      bytes += text.size();
      if (msg.value("role", "") == "user") in.prompt = text;
    }
  } else if (request.contains("prompt")) {
    const auto& p = request["prompt"];
    if (p.is_string()) in.prompt = p.get<std::string>();
    else if (p.is_array() && !p.empty() && p.back().is_string()) in.prompt = p.back().get<std::string>();
    bytes = in.prompt.size();
  }
  in.prompt_tokens = int64_t((bytes + 3) / 4);
  in.tools = request.contains("tools") && request["tools"].is_array() && !request["tools"].empty();
  if (request.contains("response_format") && request["response_format"].is_object()) {
    const std::string type = request["response_format"].value("type", "");
    in.json_schema = type == "json_schema" || type == "json_object";
  }
  return in;
}

nlohmann::json Decision::to_json() const {
  nlohmann::json j{{"tier", tier}, {"policy", policy}, {"reasons", reasons}};
  if (cascade) j["cascade"] = cascade->cascade_tiers;
  return j;
}

std::vector<LabeledPrompt> read_labeled_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::not_found, "expected a training file (JSONL), found nothing at '{}'", path);
  std::vector<LabeledPrompt> out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      out.push_back({j.at("prompt").get<std::string>(), j.at("strong").get<bool>()});
    } catch (const nlohmann::json::exception& e) {
      fail(ErrorKind::format, "{}:{}: expected {{\"prompt\": string, \"strong\": bool}}, found {}", path, number, e.what());
    }
  }
  return out;
}

Policies::Policies(const RouterConfig& config, std::shared_ptr<Embedder> embedder, const std::vector<LabeledPrompt>& logged)
    : config_(config), embedder_(std::move(embedder)) {
  for (const auto& [name, p] : config_.policies) {
    if (p.kind == PolicyKind::semantic) {
      Semantic s;
      for (const auto& [tier, prompts] : p.examples) {
        for (const auto& prompt : prompts) s.examples.emplace_back(tier, embedder_->embed(prompt));
      }
      semantic_[name] = std::move(s);
    } else if (p.kind == PolicyKind::learned) {
      std::vector<LabeledPrompt> data;
      if (!p.training_file.empty()) data = read_labeled_prompts(p.training_file);
      if (p.train_from_log) data.insert(data.end(), logged.begin(), logged.end());
      Learned l;
      l.examples = data.size();
      const auto strong = std::count_if(data.begin(), data.end(), [](const LabeledPrompt& x) { return x.strong; });
      if (strong == 0 || strong == int64_t(data.size())) {
        l.why_not = fmt::format("not trained: {} examples, {} needing the strong tier (both kinds needed)", data.size(), strong);
      } else {
        std::vector<std::vector<float>> x;
        std::vector<int> y;
        for (const auto& e : data) {
          x.push_back(embedder_->embed(e.prompt));
          y.push_back(e.strong ? 1 : 0);
        }
        l.model = LogisticModel::train(x, y);
        // Calibrate on out-of-fold scores (each prompt scored by a model that did not see it), which
        // behave like the scores of new prompts; in-sample scores are over-confident.
        const size_t folds = std::min<size_t>(5, x.size());
        std::vector<double> scores(x.size());
        for (size_t f = 0; f < folds; ++f) {
          std::vector<std::vector<float>> fx;
          std::vector<int> fy;
          for (size_t i = 0; i < x.size(); ++i) {
            if (i % folds != f) {
              fx.push_back(x[i]);
              fy.push_back(y[i]);
            }
          }
          const bool both = std::count(fy.begin(), fy.end(), 1) > 0 && std::count(fy.begin(), fy.end(), 0) > 0;
          const LogisticModel m = both ? LogisticModel::train(fx, fy) : l.model;
          for (size_t i = f; i < x.size(); i += folds) scores[i] = m.score(x[i]);
        }
        l.model.calibrate(scores, p.target_strong_share);
        l.trained = true;
      }
      learned_[name] = std::move(l);
    }
  }
}

const LogisticModel* Policies::learned_model(const std::string& policy) const {
  auto it = learned_.find(policy);
  return it != learned_.end() && it->second.trained ? &it->second.model : nullptr;
}

double Policies::learned_score(const std::string& policy, const std::string& prompt) const {
  const LogisticModel* m = learned_model(policy);
  if (!m) fail(ErrorKind::not_found, "expected a trained learned policy '{}', found none", policy);
  return m->score(embedder_->embed(prompt));
}

bool Policies::apply(const PolicyConfig& p, const RouteInput& in, Decision& d) const {
  const std::string head = "policy " + p.name + ": ";
  auto decide_default = [&](const std::string& why) {
    if (p.default_tier.empty()) {
      d.reasons.push_back(head + why + "; no default, next policy");
      return false;
    }
    d.tier = p.default_tier;
    d.policy = p.name;
    d.reasons.push_back(head + why + "; default tier " + p.default_tier);
    return true;
  };
  switch (p.kind) {
    case PolicyKind::rules: {
      for (const auto& r : p.rules) {
        const Condition& c = r.when;
        std::vector<std::string> matched;
        bool ok = true;
        if (!c.models.empty()) {
          ok = ok && contains(c.models, in.model);
          matched.push_back("model=" + in.model);
        }
        if (!c.tasks.empty()) {
          ok = ok && contains(c.tasks, in.task);
          matched.push_back("task=" + (in.task.empty() ? std::string("(none)") : in.task));
        }
        if ((c.min_prompt_tokens || c.max_prompt_tokens) && ok) {
          // Counted as the rule's tier counts (its tokenizer), only when the rest of the rule holds.
          const int64_t n = in.tokens_for(r.tier);
          if (c.min_prompt_tokens) {
            ok = ok && n >= *c.min_prompt_tokens;
            matched.push_back(fmt::format("prompt_tokens={}>={}", n, *c.min_prompt_tokens));
          }
          if (c.max_prompt_tokens) {
            ok = ok && n <= *c.max_prompt_tokens;
            matched.push_back(fmt::format("prompt_tokens={}<={}", n, *c.max_prompt_tokens));
          }
        }
        if (c.tools) {
          ok = ok && in.tools == *c.tools;
          matched.push_back(std::string("tools=") + (in.tools ? "yes" : "no"));
        }
        if (c.json_schema) {
          ok = ok && in.json_schema == *c.json_schema;
          matched.push_back(std::string("json_schema=") + (in.json_schema ? "yes" : "no"));
        }
        if (!ok) continue;
        std::string what;
        for (const auto& m : matched) what += (what.empty() ? "" : ", ") + m;
        d.tier = r.tier;
        d.policy = p.name;
        d.reasons.push_back(head + r.name + " matched (" + (what.empty() ? "always" : what) + ") -> tier " + r.tier);
        return true;
      }
      return decide_default("no rule matched");
    }
    case PolicyKind::semantic: {
      const auto& s = semantic_.at(p.name);
      const std::vector<float> v = embedder_->embed(in.prompt);
      std::map<std::string, float> best;
      for (const auto& [tier, e] : s.examples) {
        const float sim = dot(v, e);
        auto it = best.find(tier);
        if (it == best.end() || sim > it->second) best[tier] = sim;
      }
      std::string top;
      float top_sim = -2;
      std::string all;
      for (const auto& [tier, sim] : best) {
        all += fmt::format("{}{}={:.3f}", all.empty() ? "" : ", ", tier, sim);
        if (sim > top_sim) {
          top_sim = sim;
          top = tier;
        }
      }
      if (top_sim < p.threshold) return decide_default(fmt::format("best similarity {:.3f} ({}) below threshold {}", top_sim, all, p.threshold));
      d.tier = top;
      d.policy = p.name;
      d.reasons.push_back(head + fmt::format("most similar examples: tier {} ({}; threshold {})", top, all, p.threshold));
      return true;
    }
    case PolicyKind::learned: {
      const auto& l = learned_.at(p.name);
      if (!l.trained) return decide_default(l.why_not);
      const double score = l.model.score(embedder_->embed(in.prompt));
      const bool strong = score >= l.model.threshold;
      d.tier = strong ? p.strong_tier : p.weak_tier;
      d.policy = p.name;
      d.reasons.push_back(head + fmt::format("P(strong needed)={:.3f} {} threshold {:.3f} (calibrated to {:.0f}% strong over {} examples) -> tier {}",
                                             score, strong ? ">=" : "<", l.model.threshold, 100 * p.target_strong_share, l.examples, d.tier));
      return true;
    }
    case PolicyKind::cascade: {
      d.tier = p.cascade_tiers.front();
      d.policy = p.name;
      d.cascade = &p;
      std::string chain;
      for (const auto& t : p.cascade_tiers) chain += (chain.empty() ? "" : " -> ") + t;
      std::string checks = fmt::format("mean logprob >= {}", p.min_mean_logprob);
      if (p.min_token_logprob > -1e29) checks += fmt::format(", min token logprob >= {}", p.min_token_logprob);
      if (p.check_json && in.json_schema) checks += ", JSON valid against the schema";
      if (p.samples > 1) checks += fmt::format(", agreement of {} samples >= {}", p.samples, p.min_agreement);
      d.reasons.push_back(head + "cascade " + chain + "; escalate unless " + checks);
      return true;
    }
  }
  return false;
}

Decision Policies::decide(const RouteInput& in) const {
  Decision d;
  const RouteConfig* route = nullptr;
  for (const auto& r : config_.routes) {
    if (r.model == in.model) route = &r;
  }
  if (!route) {
    if (config_.tier_index(in.model) >= 0) {
      d.tier = in.model;
      d.reasons.push_back("model names tier " + in.model + " directly");
      return d;
    }
    for (const auto& r : config_.routes) {
      if (r.model == "*") route = &r;
    }
  }
  if (!route) {
    if (config_.routes.empty()) {
      d.tier = config_.tiers.front().name;
      d.reasons.push_back("no routes configured: first tier " + d.tier);
      return d;
    }
    std::string list;
    for (const auto& r : config_.routes) list += (list.empty() ? "" : ", ") + r.model;
    for (const auto& t : config_.tiers) list += ", " + t.name;
    fail(ErrorKind::not_found, "expected a model the router serves ({}), found '{}'", list, in.model);
  }
  d.reasons.push_back("route " + route->model + (route->model == in.model ? "" : " (for '" + in.model + "')"));
  if (!route->tier.empty()) {
    d.tier = route->tier;
    d.reasons.push_back("fixed tier " + route->tier);
    return d;
  }
  for (const auto& name : route->policies) {
    if (apply(config_.policies.at(name), in, d)) return d;
  }
  d.tier = config_.tiers.front().name;
  d.reasons.push_back("no policy decided: first tier " + d.tier);
  return d;
}

}  // namespace slm::router
