// Embedding models behind the OpenAI API: a server::Provider that answers POST /v1/embeddings for
// its encoder models (BERT-family folders and GGUF files, through tasks::Embedder) and lists them in
// GET /v1/models. Requests naming another model, or none while an inner provider exists, go to the
// inner provider (the chat engine); chat and text completions naming one of its models answer 400
// "model X is an embedding model".
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "slm/server/provider.hpp"
#include "slm/tasks/embed.hpp"
#include "slm/util/serial_worker.hpp"

namespace slm::tasks {

struct EmbeddingModel {
  std::string id;                     // the name clients use in "model"
  std::shared_ptr<Embedder> embedder;
};

class EmbeddingProvider : public server::Provider {
 public:
  // `inner` may be null when every model served is an embedding model. Throws
  // Error(invalid_argument) for no models, a null embedder or duplicate ids.
  EmbeddingProvider(std::vector<EmbeddingModel> models, std::shared_ptr<server::Provider> inner);
  ~EmbeddingProvider() override;

  nlohmann::json models() override;
  void chat_completions(const nlohmann::json& request, const server::RequestInfo& info,
                        std::shared_ptr<server::ResponseSink> sink) override;
  void completions(const nlohmann::json& request, const server::RequestInfo& info,
                   std::shared_ptr<server::ResponseSink> sink) override;
  void embeddings(const nlohmann::json& request, const server::RequestInfo& info,
                  std::shared_ptr<server::ResponseSink> sink) override;
  bool handle_other(const std::string& method, const std::string& path, const nlohmann::json& request,
                    const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) override;
  std::string metrics_text() override { return inner_ ? inner_->metrics_text() : std::string(); }
  bool healthy() override { return inner_ ? inner_->healthy() : true; }

 private:
  // The embedding model a request names; null when it belongs to the inner provider. Throws the
  // 404 for a name neither knows.
  const EmbeddingModel* find(const nlohmann::json& request) const;
  void refuse_generation(const nlohmann::json& request, const server::RequestInfo& info,
                         std::shared_ptr<server::ResponseSink> sink, bool chat);

  std::vector<EmbeddingModel> models_;
  std::shared_ptr<server::Provider> inner_;
  int64_t created_ = 0;

  // Embeddings are computed one request at a time off the HTTP thread (last member: stopped first).
  SerialWorker worker_;
};

}  // namespace slm::tasks
