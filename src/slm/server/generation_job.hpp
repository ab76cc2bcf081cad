// One chat or completion request in flight: its choices (n per prompt), each a scheduler sequence
// whose tokens are detokenized, cut at stop strings, split into reasoning and content, searched for
// tool calls, and sent to the client as stream chunks or as one body at the end.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "slm/engine/scheduler.hpp"
#include "slm/server/metrics.hpp"
#include "slm/server/output_parser.hpp"
#include "slm/server/provider.hpp"

namespace slm::server {

// Figures the provider keeps across requests.
struct GenerationMetrics {
  Histogram time_to_first_token{latency_buckets()};
  Histogram inter_token_latency{latency_buckets()};
  Histogram request_duration{latency_buckets()};
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> completion_tokens{0};
  std::atomic<uint64_t> rejected{0};  // queue full
};

struct ChoiceSpec {
  std::vector<int32_t> prompt;
  std::string prompt_text;  // echo
  bool start_in_reasoning = false;
};

struct JobOptions {
  bool chat = true;
  int64_t n = 1;                  // choices per prompt (usage counts each prompt once)
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool echo = false;              // completions: the prompt text (and its logprobs) come first
  bool split_reasoning = false;   // chat: <think>...</think> to reasoning_content
  bool parse_tools = false;       // chat: tool calls to tool_calls
  std::vector<std::string> stop;
  std::string id;                 // "chatcmpl-..." / "cmpl-..."
  std::string model;
  int64_t created = 0;
};

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  GenerationJob(JobOptions options, std::vector<ChoiceSpec> choices, const Tokenizer& tokenizer,
                std::shared_ptr<ResponseSink> sink, GenerationMetrics& metrics);

  // The scheduler callback of choice i.
  bool on_event(size_t i, const GenerationEvent& event);
  // Records the scheduler id of choice i (for cancellation).
  void set_sequence(size_t i, uint64_t id);
  std::vector<uint64_t> sequences() const;
  size_t size() const { return choices_.size(); }

 private:
  struct Choice {
    ChoiceSpec spec;
    uint64_t sequence = 0;
    std::unique_ptr<StreamDecoder> decoder;
    StopMatcher stop;
    std::optional<ReasoningSplitter> reasoning;
    std::optional<ToolCallStream> tools;
    std::string content;
    std::string reasoning_text;
    std::vector<ToolCall> calls;
    nlohmann::json logprobs = nlohmann::json::array();  // chat entries, or legacy per-token records
    int64_t text_offset = 0;                              // legacy logprobs: bytes of text so far
    bool echo_sent = false;
    bool role_sent = false;
    bool done = false;
    std::string finish_reason;
    int64_t prompt_tokens = 0;
    int64_t cached_tokens = 0;
    int64_t completion_tokens = 0;
    std::chrono::steady_clock::time_point last_token;
    bool got_token = false;
  };

  // Text of one step through stop strings, reasoning and tool calls; streamed when streaming.
  void route_text(Choice& c, size_t index, const std::string& text, nlohmann::json step_logprobs, bool final);
  nlohmann::json chunk(size_t index, nlohmann::json delta_or_text, const nlohmann::json& logprobs,
                       const nlohmann::json& finish_reason) const;
  nlohmann::json logprob_entry(int32_t token, float logprob, const std::vector<TokenLogprob>& top) const;
  nlohmann::json usage() const;
  void finish_all();
  void echo_prompt(Choice& c, size_t index, const std::vector<TokenLogprob>& prompt_logprobs,
                   const std::vector<std::vector<TokenLogprob>>& prompt_top);
  std::string decode(Choice& c, int32_t token);
  void append_legacy(nlohmann::json& record, int32_t token, const nlohmann::json& logprob, const nlohmann::json& top,
                     int64_t& offset) const;

  JobOptions options_;
  const Tokenizer& tokenizer_;
  std::shared_ptr<ResponseSink> sink_;
  GenerationMetrics& metrics_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mutex_;
  std::vector<Choice> choices_;
  size_t remaining_;
  bool failed_ = false;
};

std::string token_text(const Tokenizer& tokenizer, int32_t token);

}  // namespace slm::server
