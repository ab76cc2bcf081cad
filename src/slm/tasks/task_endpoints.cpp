#include "slm/tasks/task_endpoints.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <future>
#include <optional>
#include <set>

#include "slm/engine/grammar/json_schema.hpp"
#include "slm/server/errors.hpp"
#include "slm/server/openai_request.hpp"
#include "slm/tasks/chunk.hpp"
#include "slm/tasks/classify.hpp"
#include "slm/tasks/extract.hpp"
#include "slm/tasks/llm.hpp"
#include "slm/tasks/ner.hpp"
#include "slm/tasks/pii.hpp"
#include "slm/tasks/provider_call.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks::endpoints {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using server::throw_invalid;

// ---- request fields ----

const json* field(const json& r, const char* name) {
  auto it = r.find(name);
  return it == r.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong_type(const std::string& name, const char* expected, const json& v) {
  throw_invalid(name, fmt::format("'{}': expected {}, found {}", name, expected, server::json_type_name(v)));
}

void check_utf8(const std::string& text, const std::string& name) {
  try {
    (void)code_point_bytes(text);
  } catch (const slm::Error&) {
    throw_invalid(name, fmt::format("'{}': expected UTF-8 text, found invalid bytes", name));
  }
}

// "input": a string or an array of 1..max strings.
std::vector<std::string> get_inputs(const json& r, size_t max) {
  const json* v = field(r, "input");
  if (!v) throw_invalid("input", "'input': required (a string or an array of strings)");
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->empty()) throw_invalid("input", "'input': expected at least one text, found an empty array");
    if (v->size() > max) throw_invalid("input", fmt::format("'input': expected at most {} texts, found {}", max, v->size()));
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) wrong_type(fmt::format("input[{}]", i), "a string", (*v)[i]);
      out.push_back((*v)[i].get<std::string>());
    }
  } else {
    wrong_type("input", "a string or an array of strings", *v);
  }
  for (size_t i = 0; i < out.size(); ++i) check_utf8(out[i], out.size() == 1 && v->is_string() ? "input" : fmt::format("input[{}]", i));
  return out;
}

std::string get_string(const json& r, const char* name, std::string fallback = {}) {
  const json* v = field(r, name);
  if (!v) return fallback;
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

bool get_bool(const json& r, const char* name, bool fallback) {
  const json* v = field(r, name);
  if (!v) return fallback;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

double get_number(const json& r, const char* name, double fallback, double lo, double hi) {
  const json* v = field(r, name);
  if (!v) return fallback;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) throw_invalid(name, fmt::format("'{}': expected a number from {} to {}, found {}", name, lo, hi, x));
  return x;
}

int64_t get_int(const json& r, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(r, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) wrong_type(name, "an integer", *v);
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) throw_invalid(name, fmt::format("'{}': expected an integer from {} to {}, found {}", name, lo, hi, x));
  return x;
}

std::vector<std::string> get_strings(const json& r, const char* name) {
  const json* v = field(r, name);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) wrong_type(name, "an array of strings", *v);
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) wrong_type(fmt::format("{}[{}]", name, i), "a string", (*v)[i]);
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

// ---- model calls ----

struct Usage {
  int64_t prompt = 0, completion = 0;
  void add(const json& answer) {
    if (!answer.contains("usage") || !answer["usage"].is_object()) return;
    prompt += answer["usage"].value("prompt_tokens", int64_t(0));
    completion += answer["usage"].value("completion_tokens", int64_t(0));
  }
  void add(const Usage& u) {
    prompt += u.prompt;
    completion += u.completion;
  }
  json to_json() const { return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}}; }
};

// f(i) for i in [0, n), up to `window` at once on their own threads; the first exception is rethrown
// after every started call has ended.
template <class F>
void for_each_windowed(size_t n, int window, F&& f) {
  if (n == 1) return f(0);
  for (size_t begin = 0; begin < n; begin += size_t(window)) {
    const size_t end = std::min(n, begin + size_t(window));
    std::vector<std::future<void>> running;
    for (size_t i = begin; i < end; ++i) running.push_back(std::async(std::launch::async, [&f, i] { f(i); }));
    std::exception_ptr first;
    for (auto& r : running) {
      try {
        r.get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }
}

ojson generation_body(const std::string& model, bool chat, const std::string& prompt) {
  ojson body = ojson::object();
  if (!model.empty()) body["model"] = model;
  if (chat) body["messages"] = ojson::array({{{"role", "user"}, {"content", prompt}}});
  else body["prompt"] = prompt;
  return body;
}

struct Extracted {
  std::optional<json> value;
  std::vector<std::string> errors;
  int attempts = 0;
  Usage usage;
};

// JSON under the schema's constraint, validated; an unfinished or invalid answer is retried with
// sampling (temperature 0.7, a new seed), as Extractor does in process.
Extracted extract_one(const Context& ctx, const std::string& task, const std::string& model, bool chat,
                      const std::string& prompt, const ojson& schema, int64_t max_tokens, int attempts) {
  Extracted out;
  const json plain_schema = json::parse(schema.dump());
  for (int attempt = 0; attempt < attempts && !out.value; ++attempt) {
    ojson body = generation_body(model, chat, prompt);
    body["max_tokens"] = max_tokens;
    body["temperature"] = attempt == 0 ? 0.0 : 0.7;
    body["seed"] = 1234 + attempt;
    body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", task}, {"schema", schema}, {"strict", true}}}};
    const json answer = call_provider(ctx.inner, chat ? ProviderRoute::chat_completions : ProviderRoute::completions,
                                      std::move(body), ctx.info, task, ctx.sink);
    out.usage.add(answer);
    out.attempts = attempt + 1;
    out.errors.clear();
    const std::string text = choice_text(answer);
    std::string finish;
    if (answer.contains("choices") && !answer["choices"].empty() && answer["choices"][0].contains("finish_reason") &&
        answer["choices"][0]["finish_reason"].is_string()) {
      finish = answer["choices"][0]["finish_reason"].get<std::string>();
    }
    json value = json::parse(text, nullptr, false);
    if (value.is_discarded()) {
      out.errors.push_back(finish == "length" ? fmt::format("the output did not finish within max_tokens ({}) or the context", max_tokens)
                                              : "the output is not JSON");
      continue;
    }
    out.errors = grammar::validate_json(plain_schema, value);
    if (out.errors.empty()) out.value = std::move(value);
  }
  return out;
}

// ---- /v1/redact ----

struct RedactRequest {
  std::vector<std::string> inputs;
  std::vector<std::string> rule_types, model_types;
  bool rules = true;
  RedactOperator op = RedactOperator::replace;
  std::string salt;
  double min_score = 0.0;
  bool chat = false;
  std::string model;
};

json redact_job(const RedactRequest& r, const Context& ctx) {
  std::vector<json> items(r.inputs.size());
  std::vector<Usage> usages(r.inputs.size());
  auto one = [&](size_t i) {
    const std::string& text = r.inputs[i];
    std::vector<Entity> found;
    if (r.rules) found = detect_rules(text, r.rule_types);
    if (!r.model_types.empty()) {
      const Extracted e = extract_one(ctx, "redact", r.model, r.chat, fill_template(ner_prompt_template(), {{"text", text}}),
                                      ner_schema(r.model_types), 384, 3);
      usages[i] = e.usage;
      if (e.value) {
        auto more = entities_from_answer(text, *e.value, 0.6);
        found.insert(found.end(), more.begin(), more.end());
      }
    }
    std::erase_if(found, [&](const Entity& e) { return e.score < r.min_score; });
    found = resolve_overlaps(std::move(found));
    json entities = json::array();
    for (const auto& e : found) {
      entities.push_back({{"type", e.type}, {"start", e.start}, {"end", e.end}, {"score", e.score}, {"source", e.source}});
    }
    items[i] = {{"index", i}, {"text", apply_operator(text, found, r.op, r.salt)}, {"entities", std::move(entities)}};
  };
  if (r.model_types.empty()) {
    for (size_t i = 0; i < r.inputs.size(); ++i) one(i);
  } else {
    for_each_windowed(r.inputs.size(), ctx.options.window, one);
  }
  Usage usage;
  for (const auto& u : usages) usage.add(u);
  json out = {{"object", "list"}, {"data", std::move(items)}};
  if (!r.model_types.empty()) out["usage"] = usage.to_json();
  return out;
}

// ---- /v1/classify ----

struct ClassifyRequest {
  std::vector<std::string> inputs;
  std::vector<std::string> labels;
  std::string prompt_template;
  bool decode = false;
  std::string model;
};

// The log-probability of the label at the end of an echoed prompt: the trailing tokens that cover
// the label's bytes (the label's own tokens; a token shared with the prompt's end counts whole).
// The request generates one token (max_tokens 1, ignore_eos): when the choice ended by length, its
// last entry is that token and is left out.
double label_logprob(const json& choice, size_t label_bytes) {
  const json* lp = choice.contains("logprobs") && choice["logprobs"].is_object() ? &choice["logprobs"] : nullptr;
  if (!lp || !lp->contains("tokens") || !lp->contains("token_logprobs") || !(*lp)["tokens"].is_array() ||
      !(*lp)["token_logprobs"].is_array() || (*lp)["tokens"].size() != (*lp)["token_logprobs"].size()) {
    throw server::ApiException(server::make_error(502, "server_error", "expected the answer's prompt log-probabilities, found none"));
  }
  const json& tokens = (*lp)["tokens"];
  const json& logprobs = (*lp)["token_logprobs"];
  double sum = 0.0;
  size_t covered = 0;
  size_t end = tokens.size();
  if (end > 0 && choice.contains("finish_reason") && choice["finish_reason"] == "length") --end;
  for (size_t k = end; k-- > 0 && covered < label_bytes;) {
    if (!logprobs[k].is_number()) {
      throw server::ApiException(server::make_error(502, "server_error", "expected a log-probability for every label token, found null"));
    }
    sum += logprobs[k].get<double>();
    covered += tokens[k].is_string() ? tokens[k].get<std::string>().size() : 0;
  }
  if (covered < label_bytes) {
    throw server::ApiException(server::make_error(502, "server_error", "the answer's tokens do not cover the label"));
  }
  return sum;
}

json classify_job(const ClassifyRequest& r, const Context& ctx) {
  std::string joined;
  for (const auto& l : r.labels) joined += (joined.empty() ? "" : ", ") + l;
  std::vector<json> items(r.inputs.size());
  std::vector<Usage> usages(r.inputs.size());
  for_each_windowed(r.inputs.size(), ctx.options.window, [&](size_t i) {
    const std::string prompt = fill_template(r.prompt_template, {{"text", r.inputs[i]}, {"labels", joined}});
    ojson body = ojson::object();
    if (!r.model.empty()) body["model"] = r.model;
    ojson prompts = ojson::array();
    for (const auto& l : r.labels) prompts.push_back(prompt + " " + l);
    body["prompt"] = std::move(prompts);
    // One generated token rather than none: the scheduler serves prompt-only requests badly under
    // concurrency (they wait in the queue), and one token costs one short decode step.
    body["max_tokens"] = 1;
    body["ignore_eos"] = true;
    body["echo"] = true;
    body["logprobs"] = 0;
    body["temperature"] = 0;
    const json answer = call_provider(ctx.inner, ProviderRoute::completions, std::move(body), ctx.info, "classify", ctx.sink);
    usages[i].add(answer);
    std::vector<double> logprobs(r.labels.size(), 0.0);
    std::vector<bool> seen(r.labels.size(), false);
    if (answer.contains("choices") && answer["choices"].is_array()) {
      for (const auto& c : answer["choices"]) {
        const size_t k = c.value("index", size_t(0));
        if (k >= r.labels.size()) continue;
        logprobs[k] = label_logprob(c, r.labels[k].size() + 1);
        seen[k] = true;
      }
    }
    if (std::find(seen.begin(), seen.end(), false) != seen.end()) {
      throw server::ApiException(
          server::make_error(502, "server_error", fmt::format("expected {} choices, one per label, found fewer", r.labels.size())));
    }
    const double top = *std::max_element(logprobs.begin(), logprobs.end());
    double z = 0.0;
    for (double lp : logprobs) z += std::exp(lp - top);
    json probs = json::object(), raw = json::object();
    size_t best = 0;
    for (size_t k = 0; k < r.labels.size(); ++k) {
      probs[r.labels[k]] = std::exp(logprobs[k] - top) / z;
      raw[r.labels[k]] = logprobs[k];
      if (logprobs[k] > logprobs[best]) best = k;
    }
    json item = {{"index", i}, {"label", r.labels[best]}, {"probs", std::move(probs)}, {"logprobs", std::move(raw)}};
    if (r.decode) {
      ojson schema = {{"enum", r.labels}};
      const Extracted e = extract_one(ctx, "classify", r.model, false, prompt, schema, 64, 1);
      usages[i].add(e.usage);
      item["decoded"] = e.value && e.value->is_string() ? json(e.value->get<std::string>()) : json(nullptr);
    }
    items[i] = std::move(item);
  });
  Usage usage;
  for (const auto& u : usages) usage.add(u);
  return {{"object", "list"}, {"data", std::move(items)}, {"usage", usage.to_json()}};
}

// ---- /v1/extract ----

struct ExtractRequest {
  std::vector<std::string> inputs;
  ojson schema;
  std::string prompt_template;
  int64_t max_tokens = 512;
  int attempts = 3;
  bool chat = false;
  std::string model;
};

json extract_job(const ExtractRequest& r, const Context& ctx) {
  const std::string schema_text = r.schema.dump();
  std::vector<json> items(r.inputs.size());
  std::vector<Usage> usages(r.inputs.size());
  for_each_windowed(r.inputs.size(), ctx.options.window, [&](size_t i) {
    const std::string prompt = fill_template(r.prompt_template, {{"text", r.inputs[i]}, {"schema", schema_text}});
    Extracted e = extract_one(ctx, "extract", r.model, r.chat, prompt, r.schema, r.max_tokens, r.attempts);
    usages[i] = e.usage;
    items[i] = {{"index", i},
                {"value", e.value ? *e.value : json(nullptr)},
                {"valid", e.value.has_value()},
                {"attempts", e.attempts},
                {"errors", e.errors}};
  });
  Usage usage;
  for (const auto& u : usages) usage.add(u);
  return {{"object", "list"}, {"data", std::move(items)}, {"usage", usage.to_json()}};
}

// ---- /v1/chunk ----

struct ChunkRequest {
  std::vector<std::string> inputs;
  ChunkOptions options;
  bool text = true;
  std::string model;
  const Tokenizer* tokenizer = nullptr;
};

json chunk_job(const ChunkRequest& r, const Context& ctx) {
  json items = json::array();
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const std::string& text = r.inputs[i];
    EmbedFn embed;
    if (r.options.by == ChunkBy::semantic) {
      embed = [&](std::string_view s) {
        ojson body = ojson::object();
        if (!r.model.empty()) body["model"] = r.model;
        body["input"] = s.empty() ? std::string(" ") : std::string(s);
        const json answer = call_provider(ctx.inner, ProviderRoute::embeddings, std::move(body), ctx.info, "chunk", ctx.sink);
        if (!answer.contains("data") || answer["data"].empty() || !answer["data"][0].contains("embedding") ||
            !answer["data"][0]["embedding"].is_array()) {
          throw server::ApiException(server::make_error(502, "server_error", "expected an embedding in the answer, found none"));
        }
        return answer["data"][0]["embedding"].get<std::vector<float>>();
      };
    }
    const auto chunks = chunk_text(text, *r.tokenizer, r.options, embed);
    json list = json::array();
    for (size_t c = 0; c < chunks.size(); ++c) {
      const Chunk& ch = chunks[c];
      json j = {{"index", c}, {"start", ch.start}, {"end", ch.end}, {"tokens", ch.tokens}, {"section", ch.section}};
      if (r.text) j["text"] = text.substr(ch.byte_start, ch.byte_end - ch.byte_start);
      list.push_back(std::move(j));
    }
    items.push_back({{"index", i}, {"chunks", std::move(list)}});
  }
  return {{"object", "list"}, {"data", std::move(items)}};
}

}  // namespace

Job parse_redact(const json& request, const TaskProviderOptions& options) {
  RedactRequest r;
  r.inputs = get_inputs(request, options.max_inputs);
  const auto& known_rules = rule_entity_types();
  const auto& known_model = model_entity_types();
  const std::vector<std::string> entities = get_strings(request, "entities");
  for (size_t i = 0; i < entities.size(); ++i) {
    const std::string& e = entities[i];
    if (std::find(known_rules.begin(), known_rules.end(), e) != known_rules.end()) {
      r.rule_types.push_back(e);
    } else if (std::find(known_model.begin(), known_model.end(), e) != known_model.end()) {
      r.model_types.push_back(e);
    } else {
      std::string all;
      for (const auto& k : known_rules) all += k + ", ";
      for (const auto& k : known_model) all += k + (k == known_model.back() ? "" : ", ");
      throw_invalid(fmt::format("entities[{}]", i), fmt::format("'entities[{}]': expected one of {}, found '{}'", i, all, e));
    }
  }
  r.rules = entities.empty() || !r.rule_types.empty();
  const std::string op = get_string(request, "operator", "replace");
  if (op != "replace" && op != "mask" && op != "hash" && op != "redact") {
    throw_invalid("operator", fmt::format("'operator': expected replace, mask, hash or redact, found '{}'", op));
  }
  r.op = parse_operator(op);
  r.salt = get_string(request, "salt");
  r.min_score = get_number(request, "min_score", 0.0, 0.0, 1.0);
  r.chat = get_bool(request, "chat", false);
  r.model = get_string(request, "model");
  return [r = std::move(r)](const Context& ctx) { return redact_job(r, ctx); };
}

Job parse_classify(const json& request, const TaskProviderOptions& options) {
  ClassifyRequest r;
  r.inputs = get_inputs(request, options.max_inputs);
  if (!field(request, "labels")) throw_invalid("labels", "'labels': required (an array of at least two strings)");
  r.labels = get_strings(request, "labels");
  if (r.labels.size() < 2 || r.labels.size() > 64) {
    throw_invalid("labels", fmt::format("'labels': expected 2 to 64 labels, found {}", r.labels.size()));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < r.labels.size(); ++i) {
    const std::string name = fmt::format("labels[{}]", i);
    if (r.labels[i].empty()) throw_invalid(name, fmt::format("'{}': expected a non-empty label, found an empty one", name));
    check_utf8(r.labels[i], name);
    if (!seen.insert(r.labels[i]).second) throw_invalid(name, fmt::format("'{}': expected distinct labels, found '{}' twice", name, r.labels[i]));
  }
  r.prompt_template = get_string(request, "prompt_template", ClassifyOptions{}.prompt_template);
  if (r.prompt_template.find("{text}") == std::string::npos) {
    throw_invalid("prompt_template", "'prompt_template': expected a template holding {text}, found none");
  }
  if (get_bool(request, "chat", false)) {
    throw_invalid("chat",
                  "'chat': classify scores labels through /v1/completions with echo; put the model's chat format into "
                  "'prompt_template' instead",
                  "unsupported");
  }
  r.decode = get_bool(request, "decode", false);
  r.model = get_string(request, "model");
  return [r = std::move(r)](const Context& ctx) { return classify_job(r, ctx); };
}

Job parse_extract(const json& request, const nlohmann::ordered_json* ordered, const TaskProviderOptions& options) {
  ExtractRequest r;
  r.inputs = get_inputs(request, options.max_inputs);
  const json* schema = field(request, "schema");
  if (!schema) throw_invalid("schema", "'schema': required (a JSON schema object)");
  if (!schema->is_object()) wrong_type("schema", "a JSON schema object", *schema);
  // Keep the schema's member order (the order generated objects follow) from the raw body.
  r.schema = ordered && ordered->is_object() && ordered->contains("schema") && (*ordered)["schema"].is_object()
                 ? (*ordered)["schema"]
                 : ojson::parse(schema->dump());
  try {
    (void)grammar::compile_grammar(r.schema);
  } catch (const slm::Error& e) {
    throw_invalid("schema", fmt::format("'schema': {}", e.what()), "invalid_schema");
  }
  r.prompt_template = get_string(request, "prompt_template", ExtractOptions{}.prompt_template);
  if (r.prompt_template.find("{text}") == std::string::npos) {
    throw_invalid("prompt_template", "'prompt_template': expected a template holding {text}, found none");
  }
  r.max_tokens = get_int(request, "max_tokens", 512, 1, 32768);
  r.attempts = int(get_int(request, "attempts", 3, 1, 8));
  r.chat = get_bool(request, "chat", false);
  r.model = get_string(request, "model");
  return [r = std::move(r)](const Context& ctx) { return extract_job(r, ctx); };
}

Job parse_chunk(const json& request, const TaskProviderOptions& options) {
  ChunkRequest r;
  r.inputs = get_inputs(request, options.max_inputs);
  r.options.max_tokens = get_int(request, "max_tokens", 256, 1, 1 << 20);
  r.options.overlap = get_int(request, "overlap", 0, 0, 1 << 20);
  if (r.options.overlap >= r.options.max_tokens) {
    throw_invalid("overlap", fmt::format("'overlap': expected fewer tokens than max_tokens ({}), found {}", r.options.max_tokens,
                                         r.options.overlap));
  }
  const std::string by = get_string(request, "by", "structure");
  if (by != "tokens" && by != "structure" && by != "semantic") {
    throw_invalid("by", fmt::format("'by': expected tokens, structure or semantic, found '{}'", by));
  }
  r.options.by = parse_chunk_by(by);
  r.options.percentile = get_number(request, "percentile", 0.85, 0.0, 1.0);
  r.text = get_bool(request, "return_text", true);
  r.model = get_string(request, "model");
  r.tokenizer = options.tokenizer ? options.tokenizer(r.model) : nullptr;
  if (!r.tokenizer) {
    throw_invalid("model",
                  r.model.empty() ? std::string("chunking needs a local model's tokenizer; this server has none")
                                  : fmt::format("'model': chunking needs a local model's tokenizer; '{}' has none here", r.model),
                  "unsupported");
  }
  return [r = std::move(r)](const Context& ctx) { return chunk_job(r, ctx); };
}

}  // namespace slm::tasks::endpoints
