#include "slm/server/generation_job.hpp"

#include "slm/server/errors.hpp"

namespace slm::server {
namespace {

using json = nlohmann::json;

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

json legacy_record() {
  return {{"tokens", json::array()}, {"token_logprobs", json::array()}, {"top_logprobs", json::array()},
          {"text_offset", json::array()}};
}

}  // namespace

std::string token_text(const Tokenizer& tokenizer, int32_t token) { return tokenizer.token_bytes(token); }

GenerationJob::GenerationJob(JobOptions options, std::vector<ChoiceSpec> specs, const Tokenizer& tokenizer,
                             std::shared_ptr<ResponseSink> sink, GenerationMetrics& metrics)
    : options_(std::move(options)),
      tokenizer_(tokenizer),
      sink_(std::move(sink)),
      metrics_(metrics),
      start_(std::chrono::steady_clock::now()),
      remaining_(specs.size()) {
  choices_.reserve(specs.size());
  for (auto& spec : specs) {
    Choice c;
    c.spec = std::move(spec);
    c.stop = StopMatcher(options_.stop);
    c.decoder = std::make_unique<StreamDecoder>(tokenizer_, true);
    if (options_.split_reasoning) c.reasoning.emplace(c.spec.start_in_reasoning);
    if (options_.parse_tools) c.tools.emplace();
    if (!options_.chat) c.logprobs = legacy_record();
    choices_.push_back(std::move(c));
  }
}

void GenerationJob::set_sequence(size_t i, uint64_t id) {
  std::lock_guard lock(mutex_);
  choices_[i].sequence = id;
}

std::vector<uint64_t> GenerationJob::sequences() const {
  std::lock_guard lock(mutex_);
  std::vector<uint64_t> ids;
  for (const auto& c : choices_) ids.push_back(c.sequence);
  return ids;
}

std::string GenerationJob::decode(Choice& c, int32_t token) {
  if (tokenizer_.is_control(token)) {
    const std::string text = tokenizer_.token_bytes(token);
    if (is_structural_marker(text)) return c.decoder->flush() + text;
  }
  return c.decoder->push(token);
}

json GenerationJob::logprob_entry(int32_t token, float logprob, const std::vector<TokenLogprob>& top) const {
  const std::string text = token_text(tokenizer_, token);
  json alternatives = json::array();
  for (const auto& t : top) {
    const std::string s = token_text(tokenizer_, t.token);
    alternatives.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", bytes_of(s)}});
  }
  return {{"token", text}, {"logprob", logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", alternatives}};
}

void GenerationJob::append_legacy(json& record, int32_t token, const json& logprob, const json& top, int64_t& offset) const {
  const std::string text = token_text(tokenizer_, token);
  record["tokens"].push_back(text);
  record["token_logprobs"].push_back(logprob);
  record["top_logprobs"].push_back(top);
  record["text_offset"].push_back(offset);
  offset += int64_t(text.size());
}

json GenerationJob::chunk(size_t index, json delta_or_text, const json& logprobs, const json& finish_reason) const {
  json choice = {{"index", index}};
  if (options_.chat) choice["delta"] = std::move(delta_or_text);
  else choice["text"] = std::move(delta_or_text);
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason;
  json c = {{"id", options_.id},
            {"object", options_.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", options_.created},
            {"model", options_.model},
            {"system_fingerprint", "slm"},
            {"choices", json::array({choice})}};
  if (options_.include_usage) c["usage"] = nullptr;
  return c;
}

json GenerationJob::usage() const {
  int64_t prompt = 0, cached = 0, completion = 0;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    if (i % size_t(std::max<int64_t>(options_.n, 1)) == 0) {
      prompt += c.prompt_tokens;
      cached += c.cached_tokens;
    }
    completion += c.completion_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

void GenerationJob::echo_prompt(Choice& c, size_t index, const std::vector<TokenLogprob>& prompt_logprobs,
                                const std::vector<std::vector<TokenLogprob>>& prompt_top) {
  if (c.echo_sent) return;
  c.echo_sent = true;
  if (!options_.echo) return;
  json record = legacy_record();
  if (options_.logprobs) {
    int64_t offset = c.text_offset;
    for (size_t k = 0; k < c.spec.prompt.size(); ++k) {
      json lp = nullptr, top = nullptr;
      if (k > 0 && k - 1 < prompt_logprobs.size()) {
        lp = prompt_logprobs[k - 1].logprob;
        // As OpenAI's legacy completions did: the position's most likely tokens, and the prompt's
        // own token among them even when it is not one of those.
        top = json::object();
        if (k - 1 < prompt_top.size()) {
          for (const auto& t : prompt_top[k - 1]) top[token_text(tokenizer_, t.token)] = t.logprob;
        }
        top[token_text(tokenizer_, c.spec.prompt[k])] = prompt_logprobs[k - 1].logprob;
      }
      append_legacy(record, c.spec.prompt[k], lp, top, offset);
      append_legacy(c.logprobs, c.spec.prompt[k], lp, top, c.text_offset);
    }
  } else {
    c.text_offset += int64_t(c.spec.prompt_text.size());
  }
  c.content += c.spec.prompt_text;
  if (options_.stream) sink_->send_event(chunk(index, c.spec.prompt_text, options_.logprobs ? record : json(), nullptr).dump(-1, ' ', false, json::error_handler_t::replace));
}

void GenerationJob::route_text(Choice& c, size_t index, const std::string& text, json step_logprobs, bool final) {
  std::string visible = c.stop.push(text);
  if (final) visible += c.stop.flush();
  std::string reasoning, content;
  if (c.reasoning) {
    auto out = c.reasoning->push(visible);
    reasoning = std::move(out.reasoning);
    content = std::move(out.content);
    if (final) {
      auto rest = c.reasoning->flush();
      reasoning += rest.reasoning;
      content += rest.content;
    }
  } else {
    content = std::move(visible);
  }
  if (c.tools) {
    content = c.tools->push(content);
    if (final) {
      ParsedToolCalls parsed = c.tools->finish();
      content += parsed.content;
      c.calls = std::move(parsed.calls);
    }
  }
  c.content += content;
  c.reasoning_text += reasoning;
  if (!options_.stream) return;
  if (options_.chat) {
    json delta = json::object();
    if (!c.role_sent) {
      delta["role"] = "assistant";
      delta["content"] = "";
      c.role_sent = true;
    }
    if (!content.empty()) delta["content"] = content;
    if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
    const bool has_logprobs = !step_logprobs.is_null();
    if (delta.empty() && !has_logprobs) return;
    sink_->send_event(chunk(index, delta, has_logprobs ? json{{"content", json::array({step_logprobs})}} : json(), nullptr)
                          .dump(-1, ' ', false, json::error_handler_t::replace));
  } else {
    if (content.empty() && step_logprobs.is_null()) return;
    sink_->send_event(
        chunk(index, content, step_logprobs, nullptr).dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

bool GenerationJob::on_event(size_t i, const GenerationEvent& event) {
  std::lock_guard lock(mutex_);
  Choice& c = choices_[i];
  if (failed_ || c.done) return false;
  const auto now = std::chrono::steady_clock::now();
  try {
    echo_prompt(c, i, event.prompt_logprobs, event.prompt_top_logprobs);
    if (event.token >= 0) {
      const double since = std::chrono::duration<double>(now - (c.got_token ? c.last_token : start_)).count();
      (c.got_token ? metrics_.inter_token_latency : metrics_.time_to_first_token).observe(since);
      c.got_token = true;
      c.last_token = now;
      json step = nullptr;
      if (options_.logprobs) {
        if (options_.chat) {
          step = logprob_entry(event.token, event.logprob, event.top_logprobs);
          c.logprobs.push_back(step);
        } else {
          json top = json::object();
          for (const auto& t : event.top_logprobs) top[token_text(tokenizer_, t.token)] = t.logprob;
          json record = legacy_record();
          int64_t offset = c.text_offset;
          append_legacy(record, event.token, event.logprob, top, offset);
          append_legacy(c.logprobs, event.token, event.logprob, top, c.text_offset);
          step = std::move(record);
        }
      }
      route_text(c, i, decode(c, event.token), std::move(step), false);
    }
    if (event.finish == FinishReason::none) return !c.stop.stopped() && !sink_->cancelled();

    if (event.finish == FinishReason::error) {
      failed_ = true;
      sink_->fail(make_error(500, "server_error", "generation failed: " + event.error));
      return false;
    }
    c.prompt_tokens = event.prompt_tokens > 0 ? event.prompt_tokens : int64_t(c.spec.prompt.size());
    c.cached_tokens = event.cached_prompt_tokens;
    c.completion_tokens = event.completion_tokens;
    route_text(c, i, c.decoder->flush(), nullptr, true);
    // A request's time limit ends it as max_tokens would: what was generated, finish "length".
    c.finish_reason = event.finish == FinishReason::length || event.finish == FinishReason::timeout ? "length" : "stop";
    if (!c.calls.empty()) c.finish_reason = "tool_calls";
    if (options_.stream) {
      if (options_.chat && !c.calls.empty()) {
        json calls = json::array();
        for (size_t k = 0; k < c.calls.size(); ++k) {
          calls.push_back({{"index", k},
                           {"id", c.calls[k].id},
                           {"type", "function"},
                           {"function", {{"name", c.calls[k].name}, {"arguments", c.calls[k].arguments}}}});
        }
        sink_->send_event(chunk(i, {{"tool_calls", calls}}, nullptr, nullptr).dump(-1, ' ', false, json::error_handler_t::replace));
      }
      sink_->send_event(chunk(i, options_.chat ? json::object() : json(""), nullptr, c.finish_reason).dump());
    }
    c.done = true;
    metrics_.prompt_tokens += uint64_t(c.prompt_tokens);
    metrics_.completion_tokens += uint64_t(c.completion_tokens);
    if (--remaining_ == 0) finish_all();
  } catch (...) {
    failed_ = true;
    sink_->fail(error_from_current_exception());
  }
  return false;
}

void GenerationJob::finish_all() {
  metrics_.request_duration.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  if (options_.stream) {
    if (options_.include_usage) {
      json last = {{"id", options_.id},
                   {"object", options_.chat ? "chat.completion.chunk" : "text_completion"},
                   {"created", options_.created},
                   {"model", options_.model},
                   {"system_fingerprint", "slm"},
                   {"choices", json::array()},
                   {"usage", usage()}};
      sink_->send_event(last.dump());
    }
    sink_->end_stream();
    return;
  }
  json out = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    json choice = {{"index", i}};
    if (options_.chat) {
      json message = {{"role", "assistant"}, {"content", c.content}};
      if (c.content.empty() && !c.calls.empty()) message["content"] = nullptr;
      if (options_.split_reasoning && !c.reasoning_text.empty()) message["reasoning_content"] = c.reasoning_text;
      if (!c.calls.empty()) {
        json calls = json::array();
        for (const auto& call : c.calls) {
          calls.push_back({{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
        }
        message["tool_calls"] = calls;
      }
      choice["message"] = message;
      choice["logprobs"] = options_.logprobs ? json{{"content", c.logprobs}} : json();
    } else {
      choice["text"] = c.content;
      choice["logprobs"] = options_.logprobs ? c.logprobs : json();
    }
    choice["finish_reason"] = c.finish_reason;
    out.push_back(std::move(choice));
  }
  json body = {{"id", options_.id},
               {"object", options_.chat ? "chat.completion" : "text_completion"},
               {"created", options_.created},
               {"model", options_.model},
               {"system_fingerprint", "slm"},
               {"choices", out},
               {"usage", usage()}};
  sink_->finish_json(body);
}

}  // namespace slm::server
