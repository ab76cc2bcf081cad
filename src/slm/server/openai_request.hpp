// The OpenAI request bodies the server accepts, parsed and validated into plain structs. Every
// check throws ApiException (400, invalid_request_error) naming the field; unknown fields are
// ignored, known fields of the wrong type or out of range are errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace slm::server {

enum class ResponseFormatKind { text, json_object, json_schema };

struct ResponseFormat {
  ResponseFormatKind kind = ResponseFormatKind::text;
  nlohmann::ordered_json schema;  // json_schema: the schema object
  std::string name;               // json_schema: its name
  bool strict = false;
};

enum class ToolChoice { none, auto_, required, named };

// Fields /v1/chat/completions and /v1/completions share.
struct GenerationParams {
  std::string model;                    // "" when the request named none
  int64_t n = 1;
  std::vector<std::string> stop;        // at most 4, none empty
  std::optional<int64_t> max_tokens;    // max_tokens or max_completion_tokens
  double temperature = 1.0;
  double top_p = 1.0;
  std::optional<int64_t> top_k;         // extension (llama.cpp, vLLM)
  std::optional<double> min_p;          // extension
  std::optional<double> repetition_penalty;  // extension
  bool ignore_eos = false;              // extension: generate past end-of-generation tokens
  std::optional<uint64_t> seed;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  ResponseFormat response_format;
  std::string user;
  std::optional<double> timeout;        // extension: seconds the request may take (shortens the server's)
};

// One element of "content" or "messages": the conversation as the chat template gets it (content
// parts of type text joined into a string).
struct ChatRequest : GenerationParams {
  nlohmann::ordered_json messages;      // array of message objects
  nlohmann::ordered_json tools;         // null or an array of {"type":"function","function":{...}}
  ToolChoice tool_choice = ToolChoice::auto_;
  std::string tool_choice_name;         // ToolChoice::named
  bool parallel_tool_calls = true;
  std::optional<bool> enable_thinking;  // chat_template_kwargs.enable_thinking or reasoning_effort
  std::optional<int64_t> thinking_budget;  // extension: at most this many reasoning tokens, then </think>
  bool add_generation_prompt = true;
};

// A prompt is text or token ids.
struct PromptInput {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct CompletionRequest : GenerationParams {
  std::vector<PromptInput> prompts;     // one per prompt; each gets n choices
  bool echo = false;
  std::string suffix;
};

struct EmbeddingRequest {
  std::string model;
  std::vector<PromptInput> inputs;
  bool base64 = false;                  // encoding_format "base64"
  std::optional<int64_t> dimensions;
};

struct TokenizeRequest {
  std::string model;
  std::string content;                  // "content" (llama.cpp) or "prompt" or "text"
  nlohmann::ordered_json messages;      // alternatively a conversation to render first
  bool add_special = true;
  bool with_pieces = false;
};

struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

// `request` must be a JSON object; `ordered` is the same body parsed with key order kept (tool
// schemas keep their order in the prompt, response_format schemas their property order), or null
// to use `request`.
ChatRequest parse_chat_request(const nlohmann::json& request, const nlohmann::ordered_json* ordered = nullptr);
CompletionRequest parse_completion_request(const nlohmann::json& request, const nlohmann::ordered_json* ordered = nullptr);
EmbeddingRequest parse_embedding_request(const nlohmann::json& request);
TokenizeRequest parse_tokenize_request(const nlohmann::json& request);
DetokenizeRequest parse_detokenize_request(const nlohmann::json& request);

// The body of an embeddings answer in OpenAI's shape: each vector shortened to `r.dimensions` (then
// unit length again) and written as floats or base64, with the usage of `prompt_tokens` tokens.
// A `dimensions` above a vector's size is an invalid_request_error naming the parameter.
nlohmann::json embeddings_response(std::vector<std::vector<float>> vectors, const EmbeddingRequest& r,
                                   const std::string& model, int64_t prompt_tokens);

// The JSON type name as error messages say it ("string", "number", "array", ...).
std::string json_type_name(const nlohmann::json& value);

}  // namespace slm::server
