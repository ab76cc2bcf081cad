// What the HTTP front needs from whatever answers requests: the in-process engine (one or more
// local models) or the tier router. The front parses HTTP, checks the API key and body size, parses
// the JSON body, and hands the request to a Provider with a ResponseSink; the Provider answers
// through the sink, from any thread, now or later. Request bodies follow the OpenAI API.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace slm::server {

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  int status = 500;
  std::string message;
  std::string type = "server_error";  // invalid_request_error, authentication_error, rate_limit_error, ...
  std::string param;                   // empty: null
  std::string code;                    // empty: null
  nlohmann::json to_json() const;
};

struct RequestInfo {
  std::string request_id;                       // "req-..." assigned by the front
  std::string api_key;                          // bearer token the client sent ("" if none)
  std::map<std::string, std::string> headers;   // lower-cased names
  std::string body;                             // the raw request body (key order of tool schemas)
};

// Receives one response. All methods are thread-safe. Exactly one of finish_json / end_stream /
// fail ends the response; later calls are ignored.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // Non-streaming: the whole body with status 200.
  virtual void finish_json(const nlohmann::json& body) = 0;
  // Streaming: one server-sent event `data: <text>\n\n`; the first call sends the headers.
  virtual void send_event(const std::string& data) = 0;
  // Streaming: `data: [DONE]` and the end of the response.
  virtual void end_stream() = 0;
  // Before anything was sent: the error with its status. After events were sent: an error event,
  // then the end of the stream.
  virtual void fail(const ApiError& error) = 0;
  // True once the client has gone away; providers stop work and free resources.
  virtual bool cancelled() const = 0;
  // Called once, on some thread, when the client goes away before the response ended.
  virtual void on_cancel(std::function<void()> callback) = 0;
};

class Provider {
 public:
  virtual ~Provider() = default;
  // GET /v1/models body.
  virtual nlohmann::json models() = 0;
  // POST /v1/chat/completions, /v1/completions, /v1/embeddings. The request is parsed JSON that the
  // provider validates (ApiError 400 naming the field). Return at once; answer through the sink.
  virtual void chat_completions(const nlohmann::json& request, const RequestInfo& info,
                                std::shared_ptr<ResponseSink> sink) = 0;
  virtual void completions(const nlohmann::json& request, const RequestInfo& info,
                           std::shared_ptr<ResponseSink> sink) = 0;
  virtual void embeddings(const nlohmann::json& request, const RequestInfo& info,
                          std::shared_ptr<ResponseSink> sink) = 0;
  // Other routes a provider serves (POST /tokenize, /detokenize, /v1/router/stats, ...): return
  // false when the path is not one of them.
  virtual bool handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                            const RequestInfo& info, std::shared_ptr<ResponseSink> sink) {
    return false;
  }
  // Lines appended to GET /metrics (Prometheus text format).
  virtual std::string metrics_text() { return {}; }
  // GET /health: true when ready to serve.
  virtual bool healthy() { return true; }
};

}  // namespace slm::server
