#include "slm/eval/backend.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "slm/backend/cpu/ops.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/engine/session.hpp"
#include "slm/router/answer.hpp"
#include "slm/router/upstream.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm::eval {

void parallel_for(size_t n, int32_t threads, const std::function<void(size_t)>& f, const std::function<void(size_t)>& done_one,
                  const Progress& progress) {
  std::atomic<size_t> next{0};
  size_t done = 0;
  std::mutex mutex;
  std::exception_ptr error;
  auto worker = [&] {
    for (;;) {
      const size_t i = next++;
      if (i >= n) return;
      try {
        f(i);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
        next = n;
        return;
      }
      std::lock_guard lock(mutex);
      done_one(i);
      ++done;
      if (progress) progress(done);
    }
  };
  std::vector<std::thread> pool;
  for (int32_t t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

namespace asio = boost::asio;

std::string cut_at_stop(const std::string& text, const std::vector<std::string>& until) {
  size_t cut = text.size();
  for (const auto& s : until) {
    if (s.empty()) continue;
    const size_t pos = text.find(s);
    if (pos != std::string::npos) cut = std::min(cut, pos);
  }
  return text.substr(0, cut);
}

nlohmann::json loglikelihood_echo_request(const LoglikelihoodRequest& request, uint64_t seed) {
  return {{"prompt", request.context + request.continuation}, {"max_tokens", 1}, {"echo", true}, {"logprobs", 1},
          {"temperature", 0}, {"seed", seed}};
}

LoglikelihoodResult loglikelihood_from_echo(const nlohmann::json& answer, const LoglikelihoodRequest& request) {
  if (!answer.contains("choices") || !answer.at("choices").is_array() || answer.at("choices").empty() ||
      !answer.at("choices").at(0).contains("logprobs") || !answer.at("choices").at(0).at("logprobs").is_object()) {
    fail(ErrorKind::format, "endpoint answer has no logprobs (echo + logprobs unsupported?)");
  }
  const auto& lp = answer.at("choices").at(0).at("logprobs");
  const auto& token_logprobs = lp.at("token_logprobs");
  const auto& offsets = lp.at("text_offset");
  const auto& tokens = lp.at("tokens");
  // The prompt's tokens come first (usage.prompt_tokens of them; the generated one follows). Where
  // the prompt ends is read from its last token's offset and text, so offsets counted with or
  // without the text of a BOS token both work; the continuation is the prompt's last bytes.
  size_t n_prompt = tokens.size() > 0 ? tokens.size() - 1 : 0;
  if (answer.contains("usage") && answer.at("usage").contains("prompt_tokens")) {
    n_prompt = std::min(tokens.size(), answer.at("usage").at("prompt_tokens").get<size_t>());
  }
  if (n_prompt == 0 || offsets.size() < n_prompt || token_logprobs.size() < n_prompt) {
    fail(ErrorKind::format, "endpoint answer has no echoed prompt tokens (echo + logprobs unsupported?)");
  }
  const int64_t end = offsets[n_prompt - 1].get<int64_t>() + int64_t(tokens[n_prompt - 1].get<std::string>().size());
  const int64_t begin = end - int64_t(request.continuation.size());
  LoglikelihoodResult r;
  r.is_greedy = false;
  for (size_t k = 0; k < n_prompt; ++k) {
    const int64_t off = offsets[k].get<int64_t>();
    if (off < begin || off >= end) continue;
    if (token_logprobs[k].is_null()) {
      fail(ErrorKind::format, "endpoint gave no log-probability for continuation token {}", k);
    }
    r.logprob += token_logprobs[k].get<double>();
    ++r.tokens;
  }
  if (r.tokens == 0) fail(ErrorKind::format, "endpoint echoed no continuation tokens (echo + logprobs unsupported?)");
  return r;
}

namespace {

// ---------------------------------------------------------------------------------------------
// In-process model.

class LocalBackend final : public Backend {
 public:
  LocalBackend(std::shared_ptr<const Model> model, const LocalOptions& options, nlohmann::json identity)
      : model_(std::move(model)), options_(options), identity_(std::move(identity)) {
    if (!model_->tokenizer()) fail(ErrorKind::invalid_argument, "evaluation needs a model with a tokenizer");
    n_ctx_ = options.n_ctx > 0 ? options.n_ctx : model_->config().context_length > 0 ? model_->config().context_length : 4096;
    if (model_->config().context_length > 0) n_ctx_ = std::min(n_ctx_, model_->config().context_length);
  }

  std::string name() const override { return "local"; }
  nlohmann::json identity() const override {
    return {{"backend", "local"}, {"model", identity_}, {"n_ctx", n_ctx_}, {"seed", options_.seed}};
  }

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                 const Progress& progress, const OnScored& each) override {
    const Tokenizer& tok = *model_->tokenizer();
    const int64_t vocab = model_->config().vocab_size;
    SessionOptions so;
    so.n_ctx = n_ctx_;
    Session session(model_, so);
    std::vector<int32_t> cached;  // tokens whose KV the session holds
    std::vector<LoglikelihoodResult> out;
    out.reserve(requests.size());
    std::vector<float> logits;
    std::vector<float> row(static_cast<size_t>(vocab));
    for (const auto& r : requests) {
      std::string context = r.context, continuation = r.continuation;
      // lm-eval: trailing spaces of the context belong to the continuation.
      while (!context.empty() && context.back() == ' ') {
        context.pop_back();
        continuation.insert(continuation.begin(), ' ');
      }
      std::vector<int32_t> whole = tok.encode(context + continuation, true, false);
      const std::vector<int32_t> ctx = tok.encode(context, true, false);
      size_t n_context = std::min(ctx.size(), whole.size());
      if (n_context == 0) {
        // Nothing to condition on: the first token cannot be scored; lm-eval puts an end-of-text token first.
        const int32_t prefix = tok.data().bos_id >= 0 ? tok.data().bos_id : tok.data().eos_id;
        if (prefix < 0) fail(ErrorKind::invalid_argument, "an empty context needs a BOS or EOS token");
        whole.insert(whole.begin(), prefix);
        n_context = 1;
      }
      // Left truncation to the context size.
      if (int64_t(whole.size()) > n_ctx_) {
        const size_t drop = whole.size() - size_t(n_ctx_);
        if (drop >= n_context) {
          fail(ErrorKind::out_of_range, "a continuation of {} tokens does not fit the context of {}",
               whole.size() - n_context, n_ctx_);
        }
        whole.erase(whole.begin(), whole.begin() + std::ptrdiff_t(drop));
        n_context -= drop;
      }
      LoglikelihoodResult res;
      res.tokens = int64_t(whole.size() - n_context);
      if (res.tokens > 0) {
        // Reuse the cached prefix, but re-run at least the last context token: its logits predict
        // the first continuation token.
        size_t common = 0;
        while (common < cached.size() && common < whole.size() && cached[common] == whole[common]) ++common;
        const size_t start = std::min(common, n_context - 1);
        session.truncate(int64_t(start));
        cached.resize(start);
        const std::span<const int32_t> rest(whole.data() + start, whole.size() - start);
        logits.resize(rest.size() * size_t(vocab));
        session.forward(rest, logits.data(), true);
        cached.insert(cached.end(), rest.begin(), rest.end());
        res.is_greedy = true;
        for (size_t t = n_context; t < whole.size(); ++t) {
          const float* l = logits.data() + (t - 1 - start) * size_t(vocab);
          cpu::log_softmax(l, row.data(), vocab);
          res.logprob += row[size_t(whole[t])];
          int32_t best = 0;
          for (int64_t v = 1; v < vocab; ++v) {
            if (l[v] > l[best]) best = int32_t(v);
          }
          if (best != whole[t]) res.is_greedy = false;
        }
      }
      out.push_back(res);
      if (each) each(out.size() - 1, res);
      if (progress) progress(out.size());
    }
    return out;
  }

  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                   const OnGenerated& each) override {
    const Tokenizer& tok = *model_->tokenizer();
    SchedulerOptions so;
    so.max_sequences = std::max(1, options_.concurrency);
    so.n_ctx = n_ctx_;
    struct Slot {
      std::vector<int32_t> tokens;
      std::string text;
      bool done = false;
      std::string error;
    };
    std::vector<Slot> slots(specs.size());
    std::mutex mutex;
    std::condition_variable cv;
    size_t in_flight = 0, finished = 0;
    std::vector<size_t> newly_finished;  // indices not yet passed to `each`
    // Declared after what its callbacks touch: on an early exit its destructor cancels (and calls back)
    // before those are gone.
    Scheduler scheduler(model_, so);
    const size_t window = size_t(so.max_sequences) * 2;
    for (size_t i = 0; i < specs.size(); ++i) {
      {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return in_flight < window; });
        ++in_flight;
      }
      const auto& spec = specs[i];
      GenerationRequest req;
      req.prompt = tok.encode(spec.prompt, true, false);
      int64_t max_tokens = std::max<int64_t>(1, std::min(spec.max_tokens, n_ctx_ / 2));
      const int64_t room = n_ctx_ - 1 - max_tokens;
      if (int64_t(req.prompt.size()) > room) {
        req.prompt.erase(req.prompt.begin(), req.prompt.end() - room);
      }
      if (req.prompt.empty()) req.prompt.push_back(tok.data().bos_id >= 0 ? tok.data().bos_id : 0);
      req.max_tokens = max_tokens;
      req.sampling.temperature = float(spec.temperature);
      req.sampling.seed = spec.seed != 0 ? spec.seed : options_.seed;
      Slot* slot = &slots[i];
      const size_t index = i;
      const std::vector<std::string>* until = &spec.until;
      auto callback = [&, slot, until, index](const GenerationEvent& e) {
        bool stop = false;
        if (e.token >= 0 && e.finish != FinishReason::stop) {
          slot->tokens.push_back(e.token);
          slot->text = tok.decode(slot->tokens, true);
          for (const auto& s : *until) {
            if (!s.empty() && slot->text.find(s) != std::string::npos) stop = true;
          }
        }
        if (e.finish == FinishReason::error) slot->error = e.error;
        if (e.finish != FinishReason::none) {
          std::lock_guard lock(mutex);
          slot->done = true;
          newly_finished.push_back(index);
          --in_flight;
          ++finished;
          cv.notify_all();
          return false;
        }
        return !stop;
      };
      scheduler.submit(std::move(req), callback);
    }
    {
      std::unique_lock lock(mutex);
      size_t reported = 0;
      while (reported < specs.size()) {
        cv.wait(lock, [&] { return finished > reported; });
        std::vector<size_t> ready;
        ready.swap(newly_finished);
        reported = finished;
        lock.unlock();
        for (size_t k : ready) {
          if (each && slots[k].error.empty()) each(k, Generation{cut_at_stop(slots[k].text, specs[k].until), nullptr});
        }
        if (progress) progress(reported);
        lock.lock();
      }
    }
    std::vector<Generation> out;
    out.reserve(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!slots[i].error.empty()) fail(ErrorKind::internal, "generation failed: {}", slots[i].error);
      out.push_back({cut_at_stop(slots[i].text, specs[i].until), nullptr});
    }
    return out;
  }

 private:
  std::shared_ptr<const Model> model_;
  LocalOptions options_;
  nlohmann::json identity_;
  int64_t n_ctx_ = 0;
};

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible endpoint, through the router's upstream client.

asio::awaitable<void> await_call(std::shared_ptr<router::UpstreamDeployment> deployment, router::Endpoint endpoint,
                                 nlohmann::json request, router::CallOptions options,
                                 std::shared_ptr<std::promise<router::Event>> result) {
  auto queue = std::make_shared<router::EventQueue>(co_await asio::this_coro::executor);
  auto handle = deployment->start(endpoint, request, options, queue);
  const auto deadline = router::Clock::now() + std::chrono::duration_cast<router::Clock::duration>(
                                                   std::chrono::duration<double>(options.timeout_s + 5));
  router::Event e = co_await queue->next(deadline);
  if (e.kind == router::Event::Kind::error && handle) handle->cancel();
  result->set_value(std::move(e));
}

class EndpointBackend final : public Backend {
 public:
  explicit EndpointBackend(const EndpointOptions& options)
      : options_(options), work_(asio::make_work_guard(io_)) {
    deployment_ = router::UpstreamDeployment::create(io_, router::Url::parse(options.url), options.api_key, "");
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EndpointBackend() override {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::string name() const override { return "endpoint"; }
  nlohmann::json identity() const override {
    return {{"backend", "endpoint"}, {"url", options_.url}, {"model", options_.model}, {"chat", options_.chat},
            {"seed", options_.seed}};
  }

  nlohmann::json call(router::Endpoint endpoint, const nlohmann::json& request) {
    router::CallOptions co;
    co.timeout_s = options_.timeout_s;
    co.first_byte_timeout_s = options_.timeout_s;
    for (int attempt = 0;; ++attempt) {
      auto promise = std::make_shared<std::promise<router::Event>>();
      auto future = promise->get_future();
      asio::co_spawn(io_, await_call(deployment_, endpoint, request, co, promise), asio::detached);
      router::Event e = future.get();
      if (e.kind == router::Event::Kind::json) {
        record_usage(e.body);
        return std::move(e.body);
      }
      if (!e.retryable || attempt >= 2) {
        fail(ErrorKind::io, "endpoint {}: {} (status {})", options_.url, e.message, e.status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500 * (attempt + 1)));
    }
  }

  void record_usage(const nlohmann::json& answer) {
    std::lock_guard lock(usage_mutex_);
    usage_["requests"] = usage_.value("requests", int64_t(0)) + 1;
    if (answer.contains("usage") && answer.at("usage").is_object()) {
      const auto& u = answer.at("usage");
      usage_["prompt_tokens"] = usage_.value("prompt_tokens", int64_t(0)) + u.value("prompt_tokens", int64_t(0));
      usage_["completion_tokens"] = usage_.value("completion_tokens", int64_t(0)) + u.value("completion_tokens", int64_t(0));
    }
    const std::string model = answer.contains("model") && answer.at("model").is_string() ? answer.at("model").get<std::string>() : "?";
    auto& served = usage_["served_by"];
    if (!served.is_object()) served = nlohmann::json::object();
    served[model] = served.value(model, int64_t(0)) + 1;
  }

  nlohmann::json usage() const override {
    std::lock_guard lock(usage_mutex_);
    return usage_;
  }

  void parallel(size_t n, const std::function<void(size_t)>& f, const Progress& progress,
                const std::function<void(size_t)>& done_one) {
    parallel_for(n, options_.concurrency, f, done_one, progress);
  }

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                 const Progress& progress, const OnScored& each) override {
    std::vector<LoglikelihoodResult> out(requests.size());
    parallel(requests.size(), [&](size_t i) {
      nlohmann::json req = loglikelihood_echo_request(requests[i], options_.seed);
      if (!options_.model.empty()) req["model"] = options_.model;
      out[i] = loglikelihood_from_echo(call(router::Endpoint::completions, req), requests[i]);
    }, progress, [&](size_t i) { if (each) each(i, out[i]); });
    return out;
  }

  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                   const OnGenerated& each) override {
    std::vector<Generation> out(specs.size());
    parallel(specs.size(), [&](size_t i) {
      const auto& spec = specs[i];
      nlohmann::json req = {{"max_tokens", spec.max_tokens}, {"temperature", spec.temperature},
                            {"seed", spec.seed != 0 ? spec.seed : options_.seed}};
      if (!options_.model.empty()) req["model"] = options_.model;
      // OpenAI takes at most four stop strings; the rest are applied here.
      nlohmann::json stop = nlohmann::json::array();
      for (size_t k = 0; k < spec.until.size() && k < 4; ++k) stop.push_back(spec.until[k]);
      if (!stop.empty()) req["stop"] = stop;
      nlohmann::json answer;
      if (options_.chat) {
        req["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", spec.prompt}}});
        answer = call(router::Endpoint::chat, req);
      } else {
        req["prompt"] = spec.prompt;
        answer = call(router::Endpoint::completions, req);
      }
      out[i].text = cut_at_stop(router::answer_text(answer), spec.until);
    }, progress, [&](size_t i) { if (each) each(i, out[i]); });
    return out;
  }

 private:
  EndpointOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::shared_ptr<router::UpstreamDeployment> deployment_;
  std::thread thread_;
  mutable std::mutex usage_mutex_;
  nlohmann::json usage_ = nlohmann::json::object();
};

}  // namespace

std::unique_ptr<Backend> make_local_backend(std::shared_ptr<const Model> model, const LocalOptions& options,
                                            nlohmann::json identity) {
  return std::make_unique<LocalBackend>(std::move(model), options, std::move(identity));
}

std::unique_ptr<Backend> make_endpoint_backend(const EndpointOptions& options) {
  return std::make_unique<EndpointBackend>(options);
}

}  // namespace slm::eval
