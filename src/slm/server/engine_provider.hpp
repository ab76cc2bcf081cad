// The in-process Provider: one or more local models, each behind its own continuous-batching
// Scheduler. Validates OpenAI requests, renders chat templates, tokenizes, submits one sequence
// per choice, and streams the answers back through the sink.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "slm/engine/constraint.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/server/generation_job.hpp"
#include "slm/server/openai_request.hpp"
#include "slm/server/provider.hpp"
#include "slm/server/tool_constraint.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/serial_worker.hpp"

namespace slm::server {

// Builds the constraint for a response_format (json_object / json_schema); throws
// Error(invalid_argument / unsupported) for schemas it cannot compile.
using ConstraintFactory =
    std::function<std::shared_ptr<TokenConstraint>(const ResponseFormat& format, const Model& model)>;

struct LocalModel {
  std::string id;                       // the name clients use in "model"
  std::shared_ptr<Scheduler> scheduler;
  std::string chat_template;            // "" : the tokenizer's own
  double request_timeout = 0.0;         // seconds a request may take (queued and generating); 0: no limit
};

class EngineProvider : public Provider {
 public:
  // Throws Error(invalid_argument) for no models, a model without a tokenizer, or duplicate ids.
  // `constraints` null: json_constraints().
  EngineProvider(std::vector<LocalModel> models, ConstraintFactory constraints = nullptr);
  ~EngineProvider() override;

  nlohmann::json models() override;
  void chat_completions(const nlohmann::json& request, const RequestInfo& info, std::shared_ptr<ResponseSink> sink) override;
  void completions(const nlohmann::json& request, const RequestInfo& info, std::shared_ptr<ResponseSink> sink) override;
  void embeddings(const nlohmann::json& request, const RequestInfo& info, std::shared_ptr<ResponseSink> sink) override;
  bool handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                    const RequestInfo& info, std::shared_ptr<ResponseSink> sink) override;
  std::string metrics_text() override;
  bool healthy() override { return true; }

  // The prompt tokens a chat request becomes (template rendered, tokenized) and whether the prompt
  // leaves the model inside a <think> block. For tests and /tokenize.
  struct ChatPrompt {
    std::vector<int32_t> tokens;
    std::string text;
    bool start_in_reasoning = false;
  };

 private:
  struct Entry {
    std::string id;
    std::shared_ptr<Scheduler> scheduler;
    std::optional<ChatTemplate> chat_template;
    bool thinking = false;     // the model knows <think>...</think>
    ToolCallFormat tool_format = ToolCallFormat::hermes;
    double request_timeout = 0.0;
    int64_t created = 0;
    const Tokenizer* tokenizer = nullptr;
    int64_t n_ctx = 0;
  };

  Entry& find(const std::string& model);
  ChatPrompt render_chat(const Entry& entry, const ChatRequest& request) const;
  std::vector<int32_t> encode_prompt(const Entry& entry, const PromptInput& input, const char* param) const;
  void check_length(const Entry& entry, size_t n_tokens, const char* param) const;
  // response_format's constraint, or null for text.
  std::shared_ptr<TokenConstraint> format_constraint(const Entry& entry, const GenerationParams& params) const;
  // The constraint of a chat request: tool_choice, thinking_budget and response_format together.
  std::shared_ptr<TokenConstraint> chat_constraint(const Entry& entry, const ChatRequest& request,
                                                   const ChatPrompt& prompt) const;
  // `constraint` null: response_format's.
  void start(Entry& entry, const GenerationParams& params, JobOptions options, std::vector<ChoiceSpec> specs,
             std::shared_ptr<ResponseSink> sink, std::shared_ptr<TokenConstraint> constraint = nullptr);
  void post(std::function<void()> work);

  std::vector<Entry> models_;
  ConstraintFactory constraints_;
  GenerationMetrics metrics_;

  // Waits for embedding results off the HTTP thread (last member: stopped first).
  SerialWorker worker_;
};

// response_format through the JSON-schema grammar compiler (slm::grammar).
ConstraintFactory json_constraints();

// A model's name for "model": the store name's repository part or the file name without .gguf.
std::string model_id_from_path(const std::string& path);

}  // namespace slm::server
