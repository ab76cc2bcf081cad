#include "slm/router/router.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "slm/router/answer.hpp"
#include "slm/router/balancer.hpp"
#include "slm/router/limits.hpp"
#include "slm/router/upstream.hpp"
#include "slm/util/error.hpp"

namespace slm::router {
namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

server::ApiError api_error(int status, std::string type, std::string message, std::string code = "") {
  server::ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

struct TierCounters {
  uint64_t requests = 0, errors = 0, escalations = 0, fallbacks = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  double cost_usd = 0, latency_sum_s = 0, ttft_sum_s = 0;
};

}  // namespace

struct TierRuntime {
  const TierConfig* config = nullptr;
  std::unique_ptr<Balancer> balancer;
  std::vector<std::string> upstream_models;  // per deployment, for the log
};

struct RequestContext {
  Endpoint endpoint = Endpoint::chat;
  nlohmann::json request;
  server::RequestInfo info;
  std::shared_ptr<server::ResponseSink> sink;
  bool stream = false;
  bool include_usage = false;
  RouteInput input;
  RequestRecord rec;
  Clock::time_point start;
  std::shared_ptr<CallHandle> current;
  std::shared_ptr<EventQueue> queue;
  int64_t admitted_tokens = 0;  // the prompt's length counted against the key's token rate at admission
  bool cancelled = false;
  bool sent_bytes = false;
  std::string text;  // the answer's text, for capture
  // How the response ends (the last sink call), run after the request is logged so that a client
  // that has its answer always finds the request in the log.
  std::function<void()> ending;
};

struct Router::Impl {
  asio::io_context io;  // first: destroyed last, after everything that refers to it
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  RouterConfig config;
  RouterOptions options;
  std::vector<TierRuntime> tiers;
  std::unique_ptr<Store> store;
  std::unique_ptr<Policies> policies;
  std::unique_ptr<Limits> limits;
  std::shared_ptr<const TokenCounters> token_counters;  // per tier
  std::string replica;  // shared state: this replica's name, appended to request ids
  std::mt19937 rng{std::random_device{}()};
  std::mutex counters_mutex;
  std::map<std::string, TierCounters> counters;
  std::thread thread;

  ~Impl() {
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }

  TierRuntime* tier(const std::string& name) {
    for (auto& t : tiers) {
      if (t.config->name == name) return &t;
    }
    return nullptr;
  }

  // The tier after `name` on failure ("" none).
  std::string fallback_of(const std::string& name) const {
    const int i = config.tier_index(name);
    const std::string& f = config.tiers[size_t(i)].fallback;
    if (f == "none") return "";
    if (!f.empty()) return f;
    return size_t(i) + 1 < config.tiers.size() ? config.tiers[size_t(i) + 1].name : "";
  }

  void start(Endpoint endpoint, const nlohmann::json& request, const server::RequestInfo& info,
             std::shared_ptr<server::ResponseSink> sink);
  asio::awaitable<void> handle(std::shared_ptr<RequestContext> ctx);
  asio::awaitable<void> run_chain(std::shared_ptr<RequestContext> ctx, std::string tier_name);
  asio::awaitable<void> run_cascade(std::shared_ptr<RequestContext> ctx, const PolicyConfig& policy);
  enum class TierResult { answered, failed, ended };
  asio::awaitable<TierResult> try_tier(std::shared_ptr<RequestContext> ctx, TierRuntime& tier, nlohmann::json* collected,
                                       std::string& why);
  void deliver_answer(RequestContext& ctx, nlohmann::json answer);
  void account(RequestContext& ctx, TierRuntime& tier, const nlohmann::json& usage_source, int64_t streamed_chars);
  void end_with_error(RequestContext& ctx, const server::ApiError& error);
  void finish(RequestContext& ctx);
};

void Router::Impl::start(Endpoint endpoint, const nlohmann::json& request, const server::RequestInfo& info,
                         std::shared_ptr<server::ResponseSink> sink) {
  auto ctx = std::make_shared<RequestContext>();
  ctx->start = Clock::now();
  ctx->endpoint = endpoint;
  ctx->request = request;
  ctx->info = info;
  ctx->sink = std::move(sink);
  std::weak_ptr<RequestContext> weak = ctx;
  ctx->sink->on_cancel([weak, this] {
    asio::post(io, [weak] {
      auto c = weak.lock();
      if (!c) return;
      c->cancelled = true;
      if (c->current) c->current->cancel();
      if (c->queue) c->queue->push(Event::error(499, "client went away", false));
    });
  });
  asio::co_spawn(io, handle(std::move(ctx)), asio::detached);
}

asio::awaitable<void> Router::Impl::handle(std::shared_ptr<RequestContext> ctx) {
  RequestRecord& rec = ctx->rec;
  static std::atomic<uint64_t> counter{0};
  rec.request_id = ctx->info.request_id.empty() ? fmt::format("route-{}", ++counter) : ctx->info.request_id;
  if (!replica.empty()) rec.request_id += "@" + replica;
  rec.time = unix_now();
  rec.key_id = key_fingerprint(ctx->info.api_key);
  rec.endpoint = ctx->endpoint == Endpoint::chat ? "chat" : ctx->endpoint == Endpoint::completions ? "completions" : "embeddings";
  try {
    const auto& req = ctx->request;
    if (!req.is_object()) throw server::ApiError(api_error(400, "invalid_request_error", "expected a JSON object as the request body"));
    if (!req.contains("model") || !req["model"].is_string()) {
      throw server::ApiError(api_error(400, "invalid_request_error", "expected 'model' (a string) naming a route or tier"));
    }
    ctx->stream = ctx->endpoint != Endpoint::embeddings && req.value("stream", false);
    ctx->include_usage = ctx->stream && req.contains("stream_options") && req["stream_options"].is_object() &&
                         req["stream_options"].value("include_usage", false);
    ctx->input = route_input(req, ctx->info.headers, config.task_header, token_counters);
    rec.model = ctx->input.model;
    rec.task = ctx->input.task;
    rec.stream = ctx->stream;
    Decision d;
    try {
      d = policies->decide(ctx->input);
    } catch (const Error& e) {
      throw server::ApiError(api_error(404, "invalid_request_error", e.what(), "model_not_found"));
    }
    ctx->admitted_tokens = config.key_limit(ctx->info.api_key) ? ctx->input.tokens_for(d.tier) : 0;
    const Admission a = limits->admit(ctx->info.api_key, ctx->admitted_tokens, Clock::now());
    if (!a.allowed) throw server::ApiError(api_error(429, "rate_limit_error", a.reason, "rate_limit_exceeded"));
    if (a.downgrade) {
      d.reasons.push_back("downgraded to the cheapest tier: " + a.reason);
      d.tier = config.tiers.front().name;
      d.cascade = nullptr;
    }
    std::string why;
    const std::string budgeted = limits->tier_within_budget(d.tier, why);
    if (budgeted.empty()) throw server::ApiError(api_error(429, "rate_limit_error", "budget exhausted: " + why, "budget_exceeded"));
    if (budgeted != d.tier) {
      d.reasons.push_back("downgraded to tier " + budgeted + ": " + why);
      d.tier = budgeted;
      d.cascade = nullptr;
    }
    rec.policy = d.policy;
    for (const auto& r : d.reasons) rec.reasons.push_back(r);
    if (d.cascade && ctx->endpoint != Endpoint::embeddings) co_await run_cascade(ctx, *d.cascade);
    else co_await run_chain(ctx, d.tier);
  } catch (const server::ApiError& e) {
    end_with_error(*ctx, e);
  } catch (const std::exception& e) {
    end_with_error(*ctx, api_error(500, "server_error", std::string("router: ") + e.what()));
  }
  finish(*ctx);
}

// The tier and its fallbacks, in order, until one answers.
asio::awaitable<void> Router::Impl::run_chain(std::shared_ptr<RequestContext> ctx, std::string tier_name) {
  std::set<std::string> visited;
  std::string last_error = "no tier available";
  int last_status = 503;
  while (!tier_name.empty() && visited.insert(tier_name).second) {
    TierRuntime& t = *tier(tier_name);
    if (t.config->context > 0 && ctx->input.tokens_for(tier_name) > t.config->context) {
      ctx->rec.reasons.push_back(fmt::format("skip tier {}: prompt of {} tokens ({}) exceeds its context {}", tier_name,
                                             ctx->input.tokens_for(tier_name), ctx->input.tokens->how(tier_name), t.config->context));
      tier_name = fallback_of(tier_name);
      continue;
    }
    std::string why;
    const TierResult r = co_await try_tier(ctx, t, nullptr, why);
    if (r != TierResult::failed) co_return;
    last_error = why;
    last_status = 502;
    const std::string next = fallback_of(tier_name);
    if (!next.empty()) {
      ctx->rec.reasons.push_back("fallback from tier " + tier_name + " to " + next + ": " + why);
      std::lock_guard lock(counters_mutex);
      ++counters[tier_name].fallbacks;
    }
    tier_name = next;
  }
  end_with_error(*ctx, api_error(last_status, "server_error", "every tier failed; last: " + last_error, "upstream_unavailable"));
}

asio::awaitable<void> Router::Impl::run_cascade(std::shared_ptr<RequestContext> ctx, const PolicyConfig& policy) {
  const auto& tiers_in_order = policy.cascade_tiers;
  for (size_t i = 0; i + 1 < tiers_in_order.size(); ++i) {
    TierRuntime& t = *tier(tiers_in_order[i]);
    nlohmann::json probe = ctx->request;
    if (ctx->endpoint == Endpoint::chat) probe["logprobs"] = true;
    else probe["logprobs"] = 1;
    probe.erase("stream");
    probe.erase("stream_options");
    std::vector<nlohmann::json> answers;
    std::string why;
    const nlohmann::json original = ctx->request;
    ctx->request = probe;
    bool failed = false;
    for (int s = 0; s < policy.samples && !failed; ++s) {
      nlohmann::json answer;
      const bool stream = ctx->stream;
      ctx->stream = false;
      const TierResult r = co_await try_tier(ctx, t, &answer, why);
      ctx->stream = stream;
      if (r == TierResult::ended) {
        ctx->request = original;
        co_return;
      }
      if (r == TierResult::failed) failed = true;
      else answers.push_back(std::move(answer));
    }
    ctx->request = original;
    Verdict v;
    if (failed) v.why = "tier failed: " + why;
    else v = judge_answers(policy, ctx->request, answers);
    if (i == 0 && !ctx->input.prompt.empty() && !failed) {
      store->outcome({ctx->rec.request_id, ctx->input.prompt, !v.accept});
    }
    if (v.accept) {
      ctx->rec.reasons.push_back("cascade: tier " + t.config->name + " accepted (" + v.why + ")");
      deliver_answer(*ctx, answers.front());
      co_return;
    }
    ++ctx->rec.escalations;
    ctx->rec.reasons.push_back("cascade: escalate from tier " + t.config->name + " (" + v.why + ")");
    std::lock_guard lock(counters_mutex);
    ++counters[t.config->name].escalations;
  }
  co_await run_chain(ctx, tiers_in_order.back());
}

asio::awaitable<Router::Impl::TierResult> Router::Impl::try_tier(std::shared_ptr<RequestContext> ctx, TierRuntime& t,
                                                                 nlohmann::json* collected, std::string& why) {
  const TierConfig& tc = *t.config;
  std::vector<const DeploymentState*> tried;
  const bool stream = ctx->stream && !collected;
  CallOptions options;
  options.stream = stream;
  options.connect_timeout_s = tc.connect_timeout_s;
  options.timeout_s = tc.timeout_s;
  options.first_byte_timeout_s = tc.first_byte_timeout_s > 0 ? tc.first_byte_timeout_s : tc.timeout_s;
  for (int attempt = 0; attempt <= config.retry.attempts; ++attempt) {
    if (ctx->cancelled) co_return TierResult::ended;
    if (attempt > 0) {
      const double base = std::min(config.retry.max_backoff_s, config.retry.backoff_s * double(1 << std::min(attempt - 1, 20)));
      const double delay = base * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
      asio::steady_timer timer(io);
      timer.expires_after(seconds(delay));
      boost::system::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ctx->cancelled) co_return TierResult::ended;
    }
    DeploymentState* d = t.balancer->pick(Clock::now(), tried);
    if (!d) {
      why = "every deployment of tier " + tc.name + " is benched by the circuit breaker";
      co_return TierResult::failed;
    }
    tried.push_back(d);
    const size_t d_index = size_t(d - t.balancer->deployments().data());
    const auto attempt_start = Clock::now();
    ctx->queue = std::make_shared<EventQueue>(io.get_executor());
    t.balancer->started(*d);
    ctx->current = d->impl->start(ctx->endpoint, ctx->request, options, ctx->queue);
    auto queue = ctx->queue;
    auto log_attempt = [&](const Event& e) {
      ctx->rec.attempts.push_back({{"tier", tc.name}, {"deployment", d->name}, {"status", e.status}, {"error", e.message}});
    };
    Event e = co_await queue->next(attempt_start + (stream ? seconds(options.first_byte_timeout_s) : seconds(options.timeout_s)));
    if (ctx->cancelled) {
      ctx->current->cancel();
      t.balancer->released(*d);
      co_return TierResult::ended;
    }
    if (e.kind == Event::Kind::error) {
      ctx->current->cancel();
      log_attempt(e);
      if (!e.retryable) {
        // The request's own fault (4xx): the client hears it as the deployment said it.
        t.balancer->released(*d);
        if (collected) {
          why = e.message;
          co_return TierResult::failed;
        }
        end_with_error(*ctx, api_error(e.status ? e.status : 400, e.type.empty() ? "invalid_request_error" : e.type, e.message));
        co_return TierResult::ended;
      }
      t.balancer->failed(*d, Clock::now());
      why = fmt::format("{}: {}", d->name, e.message);
      continue;
    }
    ctx->rec.tier = tc.name;
    ctx->rec.deployment = d->name;
    ctx->rec.upstream_model = t.upstream_models[d_index];
    if (e.kind == Event::Kind::json) {
      t.balancer->succeeded(*d, std::chrono::duration<double>(Clock::now() - attempt_start).count());
      ctx->rec.ttft_s = std::chrono::duration<double>(Clock::now() - ctx->start).count();
      if (collected) {
        account(*ctx, t, e.body, -1);
        *collected = std::move(e.body);
        co_return TierResult::answered;
      }
      account(*ctx, t, e.body, -1);
      deliver_answer(*ctx, std::move(e.body));
      co_return TierResult::answered;
    }
    // A stream: pass each chunk on as it comes; after the first one there is no going back.
    ctx->rec.ttft_s = std::chrono::duration<double>(Clock::now() - ctx->start).count();
    nlohmann::json usage_chunk;
    int64_t chars = 0;
    const auto deadline = attempt_start + seconds(options.timeout_s);
    for (;;) {
      if (e.kind == Event::Kind::chunk) {
        const bool usage_only = e.body.contains("usage") && e.body["usage"].is_object() &&
                                (!e.body.contains("choices") || e.body["choices"].empty());
        if (e.body.contains("usage") && e.body["usage"].is_object()) usage_chunk = e.body;
        const std::string piece = chunk_text(e.body);
        chars += int64_t(piece.size());
        ctx->text += piece;
        if (!usage_only || ctx->include_usage) {
          if (!ctx->include_usage) e.body.erase("usage");
          ctx->sink->send_event(e.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
          ctx->sent_bytes = true;
        }
      } else if (e.kind == Event::Kind::done) {
        t.balancer->succeeded(*d, std::chrono::duration<double>(Clock::now() - attempt_start).count());
        account(*ctx, t, usage_chunk, chars);
        ctx->ending = [sink = ctx->sink] { sink->end_stream(); };
        co_return TierResult::answered;
      } else if (e.kind == Event::Kind::json) {
        // A deployment that answered a stream request with one JSON body.
        t.balancer->succeeded(*d, std::chrono::duration<double>(Clock::now() - attempt_start).count());
        account(*ctx, t, e.body, -1);
        deliver_answer(*ctx, e.body);
        co_return TierResult::answered;
      } else {
        ctx->current->cancel();
        log_attempt(e);
        if (ctx->cancelled) {
          t.balancer->released(*d);
          ctx->rec.status = 499;
          ctx->rec.error = "client went away";
          co_return TierResult::ended;
        }
        t.balancer->failed(*d, Clock::now());
        if (!ctx->sent_bytes) {
          // Nothing reached the client yet (only a usage chunk was held back): another try is safe.
          why = fmt::format("{}: {}", d->name, e.message);
          break;
        }
        account(*ctx, t, usage_chunk, chars);
        end_with_error(*ctx, api_error(502, "server_error", "the stream from tier " + tc.name + " broke off: " + e.message,
                                       "upstream_stream_error"));
        co_return TierResult::ended;
      }
      e = co_await queue->next(deadline);
    }
  }
  co_return TierResult::failed;
}

void Router::Impl::account(RequestContext& ctx, TierRuntime& t, const nlohmann::json& usage_source, int64_t streamed_chars) {
  Usage u = answer_usage(usage_source);
  if (!u.reported) {
    // Counted as the tier counts: the streamed text so far, or the whole answer's.
    u.input_tokens = ctx.input.tokens_for(t.config->name);
    const std::string text = streamed_chars >= 0 ? ctx.text : answer_text(usage_source);
    const auto it = token_counters->find(t.config->name);
    u.output_tokens = it != token_counters->end() ? it->second->text_tokens(text) : (int64_t(text.size()) + 3) / 4;
  }
  ctx.rec.input_tokens += u.input_tokens;
  ctx.rec.output_tokens += u.output_tokens;
  ctx.rec.cost_usd += (double(u.input_tokens) * t.config->price_input + double(u.output_tokens) * t.config->price_output) / 1e6;
}

void Router::Impl::deliver_answer(RequestContext& ctx, nlohmann::json answer) {
  ctx.text = answer_text(answer);
  if (!ctx.stream) {
    ctx.ending = [sink = ctx.sink, answer = std::move(answer)] { sink->finish_json(answer); };
    return;
  }
  for (auto& chunk : answer_to_chunks(answer, ctx.endpoint == Endpoint::chat)) ctx.sink->send_event(chunk.dump());
  if (ctx.include_usage && answer.contains("usage")) {
    nlohmann::json u{{"id", answer.value("id", "")}, {"object", "chat.completion.chunk"}, {"choices", nlohmann::json::array()},
                     {"usage", answer["usage"]}};
    ctx.sink->send_event(u.dump());
  }
  ctx.ending = [sink = ctx.sink] { sink->end_stream(); };
}

void Router::Impl::end_with_error(RequestContext& ctx, const server::ApiError& error) {
  ctx.rec.status = error.status;
  ctx.rec.error = error.message;
  ctx.ending = [sink = ctx.sink, error] { sink->fail(error); };
}

void Router::Impl::finish(RequestContext& ctx) {
  RequestRecord& rec = ctx.rec;
  if (ctx.cancelled && rec.status == 200) {
    rec.status = 499;
    rec.error = "client went away";
  }
  rec.latency_s = std::chrono::duration<double>(Clock::now() - ctx.start).count();
  try {
    limits->charge(ctx.info.api_key, rec.tier, rec.input_tokens + rec.output_tokens - ctx.admitted_tokens, rec.cost_usd, Clock::now());
  } catch (const std::exception& e) {
    // The shared state was unavailable past its wait: the answer still goes out, the row still logged.
    rec.reasons.push_back(std::string("limits not charged: ") + e.what());
  }
  {
    std::lock_guard lock(counters_mutex);
    TierCounters& c = counters[rec.tier.empty() ? "none" : rec.tier];
    ++c.requests;
    if (rec.status != 200) ++c.errors;
    c.input_tokens += rec.input_tokens;
    c.output_tokens += rec.output_tokens;
    c.cost_usd += rec.cost_usd;
    c.latency_sum_s += rec.latency_s;
    c.ttft_sum_s += rec.ttft_s;
  }
  const bool capture_tier = std::find(config.capture.tiers.begin(), config.capture.tiers.end(), rec.tier) != config.capture.tiers.end();
  const bool capture_task = config.capture.tasks.empty() ||
                            std::find(config.capture.tasks.begin(), config.capture.tasks.end(), rec.task) != config.capture.tasks.end();
  if (rec.status == 200 && capture_tier && capture_task && ctx.endpoint == Endpoint::chat && ctx.request.contains("messages")) {
    store->capture({rec.request_id, rec.time, rec.task, rec.tier, ctx.request["messages"], ctx.text});
  }
  store->record(std::move(rec));
  if (ctx.ending) ctx.ending();
}

Router::Router(RouterConfig config, RouterOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = std::move(config);
  m.options = std::move(options);
  if (!m.options.getenv) {
    m.options.getenv = [](const std::string& name) {
      const char* v = std::getenv(name.c_str());
      return std::string(v ? v : "");
    };
  }
  std::map<std::string, std::shared_ptr<server::Provider>> local_providers;
  auto local_provider = [&](const std::string& path) {
    auto it = local_providers.find(path);
    if (it != local_providers.end()) return it->second;
    if (!m.options.local_factory) {
      fail(ErrorKind::unsupported, "expected in-process models to be available here, found none for '{}' (use url: deployments)", path);
    }
    auto p = m.options.local_factory(path);
    local_providers[path] = p;
    return p;
  };
  for (const auto& tc : m.config.tiers) {
    TierRuntime t;
    t.config = &tc;
    t.balancer = std::make_unique<Balancer>(m.config.breaker);
    for (const auto& dc : tc.deployments) {
      std::shared_ptr<Deployment> impl;
      if (dc.local()) {
        auto provider = local_provider(dc.model_path);
        // The provider's own name for its (first) model, unless the deployment names one.
        std::string model = dc.model;
        if (model.empty()) {
          const nlohmann::json listed = provider->models();
          if (listed.contains("data") && listed["data"].is_array() && !listed["data"].empty()) model = listed["data"][0].value("id", "");
        }
        impl = std::make_shared<ProviderDeployment>(std::move(provider), model);
        t.upstream_models.push_back(model.empty() ? dc.model_path : model);
      } else {
        std::string key;
        if (!dc.api_key_env.empty()) {
          key = m.options.getenv(dc.api_key_env);
          if (key.empty()) {
            fail(ErrorKind::invalid_argument, "{}: deployment {} expected an API key in environment variable {}, found it unset or empty",
                 m.config.source, dc.name, dc.api_key_env);
          }
        }
        impl = UpstreamDeployment::create(m.io, Url::parse(dc.url), key, dc.model);
        t.upstream_models.push_back(dc.model);
      }
      t.balancer->add(dc.name, dc.weight, std::move(impl));
    }
    m.tiers.push_back(std::move(t));
  }
  // How each tier counts tokens: its tokenizer file or estimate when configured, else an in-process
  // tier's own model (chat template included), else 4 bytes per token.
  auto counters = std::make_shared<TokenCounters>();
  for (size_t i = 0; i < m.config.tiers.size(); ++i) {
    const TierConfig& tc = m.config.tiers[i];
    if (tc.tokenizer.empty() && tc.chars_per_token <= 0 && tc.deployments.front().local()) {
      (*counters)[tc.name] = std::make_shared<ProviderCounter>(local_provider(tc.deployments.front().model_path), m.tiers[i].upstream_models[0]);
    } else {
      (*counters)[tc.name] = counter_from_config(tc, m.config.source);
    }
  }
  m.token_counters = std::move(counters);
  m.store = std::make_unique<Store>(m.config.database);
  std::shared_ptr<Embedder> embedder;
  if (!m.config.embedding.model_path.empty()) embedder = std::make_shared<ProviderEmbedder>(local_provider(m.config.embedding.model_path));
  else embedder = std::make_shared<HashedEmbedder>(m.config.embedding.dim);
  m.policies = std::make_unique<Policies>(m.config, embedder, m.store->outcomes());
  std::unique_ptr<LimitState> state;
  if (m.config.shared) {
    state = std::make_unique<SqliteLimitState>(m.config.database);
    // Request ids of several replicas in one log: each replica's ids carry its name.
    m.replica = m.config.replica;
    if (m.replica.empty()) m.replica = fmt::format("r{:08x}", std::random_device{}());
  } else {
    const double since = budget_period_start(m.config.budget_period, unix_now());
    state = std::make_unique<MemoryLimitState>(m.store->spend_by_key(since), m.store->spend_by_tier(since), since);
  }
  m.limits = std::make_unique<Limits>(m.config, std::move(state));
  m.thread = std::thread([&m] { m.io.run(); });
}

Router::~Router() = default;

const RouterConfig& Router::config() const { return impl_->config; }
Store& Router::store() { return *impl_->store; }
const Policies& Router::policies() const { return *impl_->policies; }

nlohmann::json Router::models() {
  nlohmann::json data = nlohmann::json::array();
  for (const auto& r : impl_->config.routes) {
    if (r.model != "*") data.push_back({{"id", r.model}, {"object", "model"}, {"created", 0}, {"owned_by", "slm-router"}});
  }
  for (const auto& t : impl_->config.tiers) data.push_back({{"id", t.name}, {"object", "model"}, {"created", 0}, {"owned_by", "slm-router"}});
  return {{"object", "list"}, {"data", data}};
}

void Router::chat_completions(const nlohmann::json& request, const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) {
  impl_->start(Endpoint::chat, request, info, std::move(sink));
}
void Router::completions(const nlohmann::json& request, const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) {
  impl_->start(Endpoint::completions, request, info, std::move(sink));
}
void Router::embeddings(const nlohmann::json& request, const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) {
  impl_->start(Endpoint::embeddings, request, info, std::move(sink));
}

nlohmann::json Router::deployments_json() {
  // Read on the router's thread: balancer state belongs to it.
  std::promise<nlohmann::json> result;
  auto future = result.get_future();
  asio::post(impl_->io, [&] {
    nlohmann::json tiers = nlohmann::json::object();
    const auto now = Clock::now();
    for (auto& t : impl_->tiers) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& d : t.balancer->deployments()) {
        list.push_back({{"name", d.name}, {"outstanding", d.outstanding}, {"latency_ewma_s", d.latency_ewma_s},
                        {"requests", d.requests}, {"failures", d.failures}, {"benched", d.benched(now)}});
      }
      tiers[t.config->name] = list;
    }
    result.set_value(tiers);
  });
  return future.get();
}

bool Router::handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                          const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) {
  if (path != "/v1/router/stats") return false;
  // GET as documented; POST too, for fronts that hand only POST requests to providers.
  if (method != "GET" && method != "POST") {
    sink->fail(api_error(405, "invalid_request_error", "expected GET for /v1/router/stats, found " + method));
    return true;
  }
  nlohmann::json stats = impl_->store->stats();
  stats["deployments"] = deployments_json();
  sink->finish_json(stats);
  return true;
}

std::string Router::metrics_text() {
  std::map<std::string, TierCounters> counters;
  {
    std::lock_guard lock(impl_->counters_mutex);
    counters = impl_->counters;
  }
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const auto& [tier, c] : counters) out += fmt::format("{}{{tier=\"{}\"}} {}\n", name, tier, value(c));
  };
  family("slm_router_requests_total", "counter", "Requests answered or failed, by the tier that answered last.", [](const TierCounters& c) { return double(c.requests); });
  family("slm_router_errors_total", "counter", "Requests that ended in an error.", [](const TierCounters& c) { return double(c.errors); });
  family("slm_router_input_tokens_total", "counter", "Input tokens.", [](const TierCounters& c) { return double(c.input_tokens); });
  family("slm_router_output_tokens_total", "counter", "Output tokens.", [](const TierCounters& c) { return double(c.output_tokens); });
  family("slm_router_cost_usd_total", "counter", "Spend in USD at the configured prices.", [](const TierCounters& c) { return c.cost_usd; });
  family("slm_router_latency_seconds_sum", "counter", "Sum of request latencies.", [](const TierCounters& c) { return c.latency_sum_s; });
  family("slm_router_ttft_seconds_sum", "counter", "Sum of times to first token.", [](const TierCounters& c) { return c.ttft_sum_s; });
  family("slm_router_escalations_total", "counter", "Cascade escalations away from the tier.", [](const TierCounters& c) { return double(c.escalations); });
  family("slm_router_fallbacks_total", "counter", "Fallbacks away from the tier after failures.", [](const TierCounters& c) { return double(c.fallbacks); });
  return out;
}

bool Router::healthy() {
  const nlohmann::json tiers = deployments_json();
  for (const auto& [name, list] : tiers.items()) {
    for (const auto& d : list) {
      if (!d["benched"].get<bool>()) return true;
    }
  }
  return false;
}

}  // namespace slm::router
