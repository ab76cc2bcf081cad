#include "slm/tasks/llm.hpp"

#include <memory>
#include <nlohmann/json.hpp>

#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {

std::future<Completion> submit_collect(Scheduler& scheduler, GenerationRequest request) {
  auto promise = std::make_shared<std::promise<Completion>>();
  auto result = std::make_shared<Completion>();
  std::future<Completion> future = promise->get_future();
  scheduler.submit(std::move(request), [promise, result](const GenerationEvent& ev) {
    if (!ev.prompt_logprobs.empty()) result->prompt_logprobs = ev.prompt_logprobs;
    if (ev.token >= 0) result->tokens.push_back(ev.token);
    if (ev.finish != FinishReason::none) {
      result->finish = ev.finish;
      result->error = ev.error;
      promise->set_value(std::move(*result));
    }
    return true;
  });
  return future;
}

std::string fill_template(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    bool replaced = false;
    if (text[i] == '{') {
      for (const auto& [name, value] : values) {
        const std::string key = "{" + name + "}";
        if (text.compare(i, key.size(), key) == 0) {
          out += value;
          i += key.size();
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out.push_back(text[i++]);
  }
  return out;
}

std::vector<int32_t> encode_prompt(const Model& model, const std::string& text, bool chat) {
  const Tokenizer* tok = model.tokenizer();
  if (!tok) fail(ErrorKind::invalid_argument, "expected a model with a tokenizer, found none in '{}'", model.config().name);
  if (!chat) return tok->encode(text, true, false);
  if (tok->data().chat_template.empty()) {
    fail(ErrorKind::invalid_argument, "--chat needs a chat template, found none in '{}'", model.config().name);
  }
  const ChatTemplate tmpl = ChatTemplate::parse(tok->data().chat_template);
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", text}});
  const std::string rendered = tmpl.render(chat_context(tok->data(), messages, nullptr, true, std::nullopt));
  return tok->encode(rendered, false, true);
}

}  // namespace slm::tasks
