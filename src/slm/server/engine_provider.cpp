#include "slm/server/engine_provider.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "slm/engine/encoder.hpp"
#include "slm/engine/grammar/json_schema.hpp"
#include "slm/server/errors.hpp"
#include "slm/util/error.hpp"

namespace slm::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// The pooling a model's own files declare (sentence-transformers' modules.json and 1_Pooling, or a
// GGUF file's pooling_type), mean when they say nothing; read once per model path.
Pooling model_pooling(const Model& model) {
  static std::mutex mutex;
  static std::map<std::string, Pooling> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(model.path()); it != cache.end()) return it->second;
  const Pooling pooling = read_pooling_config(model.path(), Pooling::mean).mode;
  cache.emplace(model.path(), pooling);
  return pooling;
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += alphabet[rng() % (sizeof(alphabet) - 1)];
  return id;
}

SamplerOptions sampler_options(const GenerationParams& p, size_t choice) {
  SamplerOptions s;
  s.temperature = float(p.temperature);
  s.top_k = int32_t(p.top_k.value_or(0));
  s.top_p = float(p.top_p);
  s.min_p = float(p.min_p.value_or(0.0));
  s.repeat_penalty = float(p.repetition_penalty.value_or(1.0));
  s.presence_penalty = float(p.presence_penalty);
  s.frequency_penalty = float(p.frequency_penalty);
  s.seed = p.seed ? *p.seed + choice : 0xFFFFFFFFu;
  return s;
}

bool ends_inside_think(const std::string& prompt) {
  size_t end = prompt.size();
  while (end > 0 && (prompt[end - 1] == '\n' || prompt[end - 1] == ' ')) --end;
  constexpr std::string_view open = "<think>";
  return end >= open.size() && std::string_view(prompt).substr(end - open.size(), open.size()) == open;
}

}  // namespace

ConstraintFactory json_constraints() {
  return [](const ResponseFormat& format, const Model& model) -> std::shared_ptr<TokenConstraint> {
    const Tokenizer& tokenizer = *model.tokenizer();
    if (format.kind == ResponseFormatKind::json_object) return grammar::json_object_constraint(tokenizer);
    return grammar::compile_json_schema(format.schema, tokenizer);
  };
}

std::string model_id_from_path(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".gguf") name.resize(name.size() - 5);
  return name.empty() ? "model" : name;
}

EngineProvider::EngineProvider(std::vector<LocalModel> models, ConstraintFactory constraints)
    : constraints_(constraints ? std::move(constraints) : json_constraints()) {
  if (models.empty()) fail(ErrorKind::invalid_argument, "the server needs at least one model");
  for (auto& m : models) {
    if (!m.scheduler) fail(ErrorKind::invalid_argument, "model '{}' has no scheduler", m.id);
    for (const auto& e : models_) {
      if (e.id == m.id) fail(ErrorKind::invalid_argument, "two models are named '{}'; name them apart", m.id);
    }
    Entry e;
    e.id = m.id;
    e.scheduler = m.scheduler;
    e.tokenizer = m.scheduler->model().tokenizer();
    if (!e.tokenizer) fail(ErrorKind::invalid_argument, "model '{}' carries no tokenizer; the server needs one", m.id);
    const std::string source = m.chat_template.empty() ? e.tokenizer->data().chat_template : m.chat_template;
    if (!source.empty()) e.chat_template = ChatTemplate::parse(source);
    e.thinking = source.find("<think>") != std::string::npos || e.tokenizer->token_id("<think>") >= 0;
    e.tool_format = tool_call_format(source, *e.tokenizer);
    if (!(m.request_timeout >= 0.0)) fail(ErrorKind::invalid_argument, "expected a request timeout >= 0, found {}", m.request_timeout);
    e.request_timeout = m.request_timeout;
    e.created = unix_now();
    e.n_ctx = m.scheduler->options().n_ctx;
    models_.push_back(std::move(e));
  }
}

EngineProvider::~EngineProvider() = default;

void EngineProvider::post(std::function<void()> work) { worker_.post(std::move(work)); }

EngineProvider::Entry& EngineProvider::find(const std::string& model) {
  if (model.empty()) return models_.front();
  for (auto& e : models_) {
    if (e.id == model) return e;
  }
  throw ApiException(make_error(404, "invalid_request_error", fmt::format("The model '{}' does not exist", model), "model",
                                "model_not_found"));
}

json EngineProvider::models() {
  json data = json::array();
  for (const auto& e : models_) {
    const auto& config = e.scheduler->model().config();
    data.push_back({{"id", e.id},
                    {"object", "model"},
                    {"created", e.created},
                    {"owned_by", "slm"},
                    {"meta",
                     {{"n_ctx", e.n_ctx},
                      {"n_ctx_train", config.context_length},
                      {"vocab_size", config.vocab_size},
                      {"architecture", config.arch}}}});
  }
  return {{"object", "list"}, {"data", data}};
}

void EngineProvider::check_length(const Entry& entry, size_t n_tokens, const char* param) const {
  if (int64_t(n_tokens) > entry.n_ctx - 1) {
    throw ApiException(make_error(
        400, "invalid_request_error",
        fmt::format("This model's maximum context length is {} tokens. However, your request has {} input tokens "
                    "(at most {} leave room for one generated token). Shorten the input.",
                    entry.n_ctx, n_tokens, entry.n_ctx - 1),
        param, "context_length_exceeded"));
  }
}

EngineProvider::ChatPrompt EngineProvider::render_chat(const Entry& entry, const ChatRequest& request) const {
  if (!entry.chat_template) {
    throw ApiException(make_error(400, "invalid_request_error",
                                  fmt::format("model '{}' has no chat template; use /v1/completions", entry.id), "messages"));
  }
  const bool with_tools = !request.tools.is_null() && request.tool_choice != ToolChoice::none;
  const ojson context =
      chat_context(entry.tokenizer->data(), request.messages, with_tools ? &request.tools : nullptr,
                   request.add_generation_prompt, request.enable_thinking);
  ChatPrompt p;
  try {
    p.text = entry.chat_template->render(context);
  } catch (const slm::Error&) {
    // Templates that take one tool call per assistant message (Llama 3.1/3.2) refuse several:
    // give them the calls as consecutive single-call turns, each followed by its result.
    if (!has_parallel_tool_calls(request.messages)) throw;
    const ojson split = chat_context(entry.tokenizer->data(), one_call_per_turn(request.messages),
                                     with_tools ? &request.tools : nullptr, request.add_generation_prompt,
                                     request.enable_thinking);
    p.text = entry.chat_template->render(split);
  }
  p.tokens = entry.tokenizer->encode(p.text, false, true);
  const auto& data = entry.tokenizer->data();
  if (data.add_bos && data.bos_id >= 0 && (p.tokens.empty() || p.tokens.front() != data.bos_id)) {
    p.tokens.insert(p.tokens.begin(), data.bos_id);
  }
  p.start_in_reasoning = entry.thinking && ends_inside_think(p.text);
  return p;
}

std::vector<int32_t> EngineProvider::encode_prompt(const Entry& entry, const PromptInput& input, const char* param) const {
  if (input.is_tokens) {
    const int64_t vocab = int64_t(entry.tokenizer->vocab_size());
    for (int32_t t : input.tokens) {
      if (t >= vocab) throw_invalid(param, fmt::format("'{}': token id {} is outside the vocabulary [0, {})", param, t, vocab));
    }
    return input.tokens;
  }
  return entry.tokenizer->encode(input.text, true, true);
}

std::shared_ptr<TokenConstraint> EngineProvider::format_constraint(const Entry& entry, const GenerationParams& params) const {
  if (params.response_format.kind == ResponseFormatKind::text) return nullptr;
  if (!constraints_) {
    throw_invalid("response_format",
                  "'response_format' json_object and json_schema need constrained decoding, which this build does not have",
                  "unsupported");
  }
  try {
    return constraints_(params.response_format, entry.scheduler->model());
  } catch (const slm::Error& e) {
    throw_invalid("response_format", fmt::format("'response_format': {}", e.what()), "invalid_schema");
  }
}

std::shared_ptr<TokenConstraint> EngineProvider::chat_constraint(const Entry& entry, const ChatRequest& r,
                                                                 const ChatPrompt& prompt) const {
  const int64_t budget = r.thinking_budget.value_or(-1);
  if (!r.tools.is_null() && (r.tool_choice == ToolChoice::required || r.tool_choice == ToolChoice::named)) {
    ToolConstraintOptions o;
    o.format = entry.tool_format;
    o.only_tool = r.tool_choice == ToolChoice::named ? r.tool_choice_name : "";
    o.parallel = r.parallel_tool_calls;
    o.start_in_reasoning = prompt.start_in_reasoning;
    o.thinking_budget = budget;
    try {
      return tool_call_constraint(r.tools, *entry.tokenizer, o);
    } catch (const slm::Error& e) {
      throw_invalid("tools", fmt::format("'tools': the parameters cannot be enforced: {}", e.what()), "invalid_schema");
    }
  }
  std::shared_ptr<TokenConstraint> format = format_constraint(entry, r);
  // A thinking model whose prompt opened <think>: the reasoning comes first, then the constrained
  // answer (or, with only a budget, free text).
  if (prompt.start_in_reasoning && (format || budget >= 0)) return reasoning_constraint(*entry.tokenizer, budget, format);
  return format;
}

void EngineProvider::start(Entry& entry, const GenerationParams& params, JobOptions options, std::vector<ChoiceSpec> specs,
                           std::shared_ptr<ResponseSink> sink, std::shared_ptr<TokenConstraint> constraint) {
  if (!constraint) constraint = format_constraint(entry, params);
  // The server's limit, shortened by the request's own.
  double timeout = entry.request_timeout;
  if (params.timeout) timeout = timeout > 0.0 ? std::min(timeout, *params.timeout) : *params.timeout;
  options.id = random_id(options.chat ? "chatcmpl-" : "cmpl-");
  options.model = entry.id;
  options.created = unix_now();
  options.n = params.n;
  const size_t n_choices = specs.size();
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < n_choices; ++i) {
    GenerationRequest r;
    r.prompt = specs[i].prompt;
    r.sampling = sampler_options(params, i % size_t(params.n));
    const int64_t room = entry.n_ctx - int64_t(r.prompt.size());
    r.max_tokens = params.max_tokens ? std::min(*params.max_tokens, room) : room;
    r.top_logprobs = options.logprobs ? options.top_logprobs : 0;
    r.prompt_logprobs = options.echo && options.logprobs;
    r.stop_at_eog = !params.ignore_eos;
    r.timeout_seconds = timeout;
    if (constraint) r.constraint = i == 0 ? constraint : std::shared_ptr<TokenConstraint>(constraint->clone_initial());
    requests.push_back(std::move(r));
  }
  auto job = std::make_shared<GenerationJob>(std::move(options), std::move(specs), *entry.tokenizer, sink, metrics_);
  std::shared_ptr<Scheduler> scheduler = entry.scheduler;
  std::vector<uint64_t> submitted;
  try {
    for (size_t i = 0; i < n_choices; ++i) {
      const uint64_t id = scheduler->submit(std::move(requests[i]),
                                            [job, i](const GenerationEvent& event) { return job->on_event(i, event); });
      job->set_sequence(i, id);
      submitted.push_back(id);
    }
  } catch (const slm::Error& e) {
    for (uint64_t id : submitted) scheduler->cancel(id);
    if (e.kind() == ErrorKind::out_of_range) {
      ++metrics_.rejected;
      throw ApiException(make_error(429, "rate_limit_error",
                                    fmt::format("The server is busy ({}); retry later", e.what()), "", "queue_full"));
    }
    throw;
  }
  // A weak reference: the callback may run (or be dropped) on the scheduler's own thread after the
  // provider is gone, and must never be what keeps the scheduler alive there.
  sink->on_cancel([weak = std::weak_ptr<Scheduler>(scheduler), submitted] {
    if (auto alive = weak.lock()) {
      for (uint64_t id : submitted) alive->cancel(id);
    }
  });
}

void EngineProvider::chat_completions(const json& request, const RequestInfo& info, std::shared_ptr<ResponseSink> sink) {
  ojson ordered = ojson::parse(info.body, nullptr, false);
  const ChatRequest r = parse_chat_request(request, ordered.is_object() ? &ordered : nullptr);
  Entry& entry = find(r.model);
  const ChatPrompt prompt = render_chat(entry, r);
  check_length(entry, prompt.tokens.size(), "messages");
  JobOptions options;
  options.chat = true;
  options.stream = r.stream;
  options.include_usage = r.include_usage;
  options.logprobs = r.logprobs;
  options.top_logprobs = r.top_logprobs;
  options.split_reasoning = entry.thinking;
  options.parse_tools = !r.tools.is_null() && r.tool_choice != ToolChoice::none;
  options.stop = r.stop;
  std::vector<ChoiceSpec> specs(size_t(r.n), ChoiceSpec{prompt.tokens, "", prompt.start_in_reasoning});
  std::shared_ptr<TokenConstraint> constraint = chat_constraint(entry, r, prompt);
  start(entry, r, std::move(options), std::move(specs), std::move(sink), std::move(constraint));
}

void EngineProvider::completions(const json& request, const RequestInfo& info, std::shared_ptr<ResponseSink> sink) {
  const ojson ordered = ojson::parse(info.body, nullptr, false);
  const CompletionRequest r = parse_completion_request(request, ordered.is_object() ? &ordered : nullptr);
  Entry& entry = find(r.model);
  std::vector<ChoiceSpec> specs;
  for (const auto& input : r.prompts) {
    ChoiceSpec spec;
    spec.prompt = encode_prompt(entry, input, "prompt");
    if (spec.prompt.empty()) throw_invalid("prompt", "'prompt': expected at least one token, found an empty prompt");
    check_length(entry, spec.prompt.size(), "prompt");
    spec.prompt_text = input.is_tokens ? entry.tokenizer->decode(input.tokens, true) : input.text;
    for (int64_t k = 0; k < r.n; ++k) specs.push_back(spec);
  }
  JobOptions options;
  options.chat = false;
  options.stream = r.stream;
  options.include_usage = r.include_usage;
  options.logprobs = r.logprobs;
  options.top_logprobs = r.top_logprobs;
  options.echo = r.echo;
  options.stop = r.stop;
  start(entry, r, std::move(options), std::move(specs), std::move(sink));
}

void EngineProvider::embeddings(const json& request, const RequestInfo& info, std::shared_ptr<ResponseSink> sink) {
  const EmbeddingRequest r = parse_embedding_request(request);
  Entry& entry = find(r.model);
  std::vector<std::vector<int32_t>> inputs;
  int64_t total = 0;
  for (const auto& input : r.inputs) {
    inputs.push_back(encode_prompt(entry, input, "input"));
    if (inputs.back().empty()) throw_invalid("input", "'input': expected non-empty inputs, found an empty one");
    if (int64_t(inputs.back().size()) > entry.n_ctx) {
      throw ApiException(make_error(400, "invalid_request_error",
                                    fmt::format("an input of {} tokens exceeds the model's context of {} tokens",
                                                inputs.back().size(), entry.n_ctx),
                                    "input", "context_length_exceeded"));
    }
    total += int64_t(inputs.back().size());
  }
  std::vector<std::future<std::vector<float>>> futures;
  const Pooling pooling = model_pooling(entry.scheduler->model());
  for (auto& tokens : inputs) futures.push_back(entry.scheduler->embed(std::move(tokens), pooling, true));
  auto shared = std::make_shared<std::vector<std::future<std::vector<float>>>>(std::move(futures));
  post([shared, sink, r, total, id = entry.id] {
    try {
      std::vector<std::vector<float>> vectors;
      for (auto& f : *shared) vectors.push_back(f.get());
      sink->finish_json(embeddings_response(std::move(vectors), r, id, total));
    } catch (...) {
      sink->fail(error_from_current_exception());
    }
  });
}

bool EngineProvider::handle_other(const std::string& method, const std::string& path, const json& request,
                                  const RequestInfo& info, std::shared_ptr<ResponseSink> sink) {
  if (method != "POST") return false;
  if (path == "/tokenize") {
    const TokenizeRequest r = parse_tokenize_request(request);
    Entry& entry = find(r.model);
    std::vector<int32_t> tokens;
    if (!r.messages.is_null()) {
      ChatRequest chat;
      chat.messages = r.messages;
      tokens = render_chat(entry, chat).tokens;
    } else {
      tokens = entry.tokenizer->encode(r.content, r.add_special, true);
    }
    json out = json::array();
    for (int32_t t : tokens) {
      if (r.with_pieces) out.push_back({{"id", t}, {"piece", entry.tokenizer->token_bytes(t)}});
      else out.push_back(t);
    }
    sink->finish_json({{"tokens", out}, {"count", tokens.size()}, {"max_context_length", entry.n_ctx}});
    return true;
  }
  if (path == "/detokenize") {
    const DetokenizeRequest r = parse_detokenize_request(request);
    Entry& entry = find(r.model);
    const int64_t vocab = int64_t(entry.tokenizer->vocab_size());
    for (int32_t t : r.tokens) {
      if (t >= vocab) throw_invalid("tokens", fmt::format("'tokens': token id {} is outside the vocabulary [0, {})", t, vocab));
    }
    std::string text = entry.tokenizer->decode(r.tokens, false);
    StreamDecoder valid(*entry.tokenizer, false);  // invalid UTF-8 as U+FFFD
    std::string shown;
    for (int32_t t : r.tokens) shown += valid.push(t);
    shown += valid.flush();
    sink->finish_json({{"content", shown.size() == text.size() ? text : shown}});
    return true;
  }
  return false;
}

std::string EngineProvider::metrics_text() {
  std::string out;
  struct Gauge {
    const char* name;
    const char* type;
    const char* help;
    std::function<double(const SchedulerStats&)> value;
  };
  const Gauge gauges[] = {
      {"slm_queue_depth", "gauge", "Requests waiting for a sequence slot", [](const SchedulerStats& s) { return double(s.queued); }},
      {"slm_running_sequences", "gauge", "Sequences in the running batch", [](const SchedulerStats& s) { return double(s.running); }},
      {"slm_batch_size", "gauge", "Sequences in the last forward", [](const SchedulerStats& s) { return double(s.last_batch_sequences); }},
      {"slm_batch_tokens", "gauge", "Tokens in the last forward", [](const SchedulerStats& s) { return double(s.last_batch_tokens); }},
      {"slm_kv_blocks_used", "gauge", "KV cache blocks in use", [](const SchedulerStats& s) { return double(s.kv_blocks_used); }},
      {"slm_kv_blocks_total", "gauge", "KV cache blocks in all", [](const SchedulerStats& s) { return double(s.kv_blocks_total); }},
      {"slm_prefix_cache_hit_tokens_total", "counter", "Prompt tokens whose KV came from the prefix cache",
       [](const SchedulerStats& s) { return double(s.prefix_cache_hit_tokens); }},
      {"slm_forward_steps_total", "counter", "Forwards run", [](const SchedulerStats& s) { return double(s.steps); }},
      {"slm_request_timeouts_total", "counter", "Sequences ended by their request's time limit",
       [](const SchedulerStats& s) { return double(s.timeouts); }},
      {"slm_prompt_tokens_total", "counter", "Prompt tokens processed", [](const SchedulerStats& s) { return double(s.prompt_tokens); }},
      {"slm_generated_tokens_total", "counter", "Tokens generated", [](const SchedulerStats& s) { return double(s.generated_tokens); }},
  };
  std::vector<SchedulerStats> stats;
  for (const auto& e : models_) stats.push_back(e.scheduler->stats());
  for (const auto& g : gauges) {
    out += metric_header(g.name, g.type, g.help);
    for (size_t i = 0; i < models_.size(); ++i) {
      out += metric_line(g.name, "model=\"" + escape_label(models_[i].id) + "\"", g.value(stats[i]));
    }
  }
  out += metric_header("slm_requests_rejected_total", "counter", "Requests refused because the queue was full");
  out += metric_line("slm_requests_rejected_total", "", double(metrics_.rejected.load()));
  out += metric_header("slm_response_prompt_tokens_total", "counter", "Prompt tokens of answered requests");
  out += metric_line("slm_response_prompt_tokens_total", "", double(metrics_.prompt_tokens.load()));
  out += metric_header("slm_response_completion_tokens_total", "counter", "Completion tokens of answered requests");
  out += metric_line("slm_response_completion_tokens_total", "", double(metrics_.completion_tokens.load()));
  out += metrics_.time_to_first_token.text("slm_time_to_first_token_seconds", "Time from request to first generated token");
  out += metrics_.inter_token_latency.text("slm_inter_token_latency_seconds", "Time between generated tokens of a sequence");
  out += metrics_.request_duration.text("slm_request_duration_seconds", "Time from request to the end of its answer");
  return out;
}

}  // namespace slm::server
