// libFuzzer target: arbitrary bytes as an OpenAI request body through the server's JSON parse and
// the chat / completions / embeddings / tokenize validators. Anything but ApiException (or a JSON
// parse failure) escaping, a crash or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "slm/server/errors.hpp"
#include "slm/server/openai_request.hpp"

using namespace slm::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const nlohmann::json request = nlohmann::json::parse(body, nullptr, false);
  if (request.is_discarded()) return 0;
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(body, nullptr, false);
  auto attempt = [](auto&& parse) {
    try {
      parse();
    } catch (const ApiException& e) {
      if (e.error().status != 400 || e.error().message.empty()) __builtin_trap();
      (void)e.error().to_json().dump();
    }
  };
  attempt([&] {
    const ChatRequest r = parse_chat_request(request, ordered.is_object() ? &ordered : nullptr);
    if (r.n < 1 || r.stop.size() > 4 || r.messages.empty()) __builtin_trap();
  });
  attempt([&] {
    const CompletionRequest r = parse_completion_request(request);
    if (r.prompts.empty()) __builtin_trap();
  });
  attempt([&] { parse_embedding_request(request); });
  attempt([&] { parse_tokenize_request(request); });
  attempt([&] { parse_detokenize_request(request); });
  return 0;
}
