#include "slm/tasks/embed_provider.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "slm/server/errors.hpp"
#include "slm/server/openai_request.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {

using json = nlohmann::json;

std::string model_field(const json& request) {
  if (!request.is_object()) return "";
  auto it = request.find("model");
  return it != request.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

EmbeddingProvider::EmbeddingProvider(std::vector<EmbeddingModel> models, std::shared_ptr<server::Provider> inner)
    : models_(std::move(models)), inner_(std::move(inner)) {
  if (models_.empty()) fail(ErrorKind::invalid_argument, "the embedding provider needs at least one model");
  for (size_t i = 0; i < models_.size(); ++i) {
    if (!models_[i].embedder) fail(ErrorKind::invalid_argument, "embedding model '{}' has no embedder", models_[i].id);
    for (size_t j = 0; j < i; ++j) {
      if (models_[j].id == models_[i].id) fail(ErrorKind::invalid_argument, "two models are named '{}'; name them apart", models_[i].id);
    }
  }
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

EmbeddingProvider::~EmbeddingProvider() = default;

const EmbeddingModel* EmbeddingProvider::find(const json& request) const {
  const std::string name = model_field(request);
  if (name.empty()) return inner_ ? nullptr : &models_.front();
  for (const auto& m : models_) {
    if (m.id == name) return &m;
  }
  if (inner_) return nullptr;
  throw server::ApiException(server::make_error(404, "invalid_request_error", fmt::format("The model '{}' does not exist", name),
                                                "model", "model_not_found"));
}

json EmbeddingProvider::models() {
  json data = json::array();
  for (const auto& m : models_) {
    data.push_back({{"id", m.id},
                    {"object", "model"},
                    {"created", created_},
                    {"owned_by", "slm"},
                    {"meta", {{"embedding", true}, {"dimensions", m.embedder->dim()}, {"max_tokens", m.embedder->max_tokens()}}}});
  }
  if (inner_) {
    json rest = inner_->models();
    if (rest.is_object() && rest.contains("data") && rest["data"].is_array()) {
      for (auto& item : rest["data"]) data.push_back(std::move(item));
    }
  }
  return {{"object", "list"}, {"data", data}};
}

void EmbeddingProvider::refuse_generation(const json& request, const server::RequestInfo& info,
                                          std::shared_ptr<server::ResponseSink> sink, bool chat) {
  const EmbeddingModel* m = find(request);
  if (!m) {
    if (chat) inner_->chat_completions(request, info, std::move(sink));
    else inner_->completions(request, info, std::move(sink));
    return;
  }
  throw server::ApiException(server::make_error(
      400, "invalid_request_error",
      fmt::format("model '{}' is an embedding model; it answers POST /v1/embeddings, not {}", m->id,
                  chat ? "/v1/chat/completions" : "/v1/completions"),
      "model", "model_not_supported"));
}

void EmbeddingProvider::chat_completions(const json& request, const server::RequestInfo& info,
                                         std::shared_ptr<server::ResponseSink> sink) {
  refuse_generation(request, info, std::move(sink), true);
}

void EmbeddingProvider::completions(const json& request, const server::RequestInfo& info,
                                    std::shared_ptr<server::ResponseSink> sink) {
  refuse_generation(request, info, std::move(sink), false);
}

bool EmbeddingProvider::handle_other(const std::string& method, const std::string& path, const json& request,
                                     const server::RequestInfo& info, std::shared_ptr<server::ResponseSink> sink) {
  return inner_ ? inner_->handle_other(method, path, request, info, std::move(sink)) : false;
}

void EmbeddingProvider::embeddings(const json& request, const server::RequestInfo& info,
                                   std::shared_ptr<server::ResponseSink> sink) {
  const EmbeddingModel* m = find(request);
  if (!m) {
    inner_->embeddings(request, info, std::move(sink));
    return;
  }
  const server::EmbeddingRequest r = server::parse_embedding_request(request);
  if (r.dimensions && *r.dimensions > m->embedder->dim()) {
    server::throw_invalid("dimensions", fmt::format("'dimensions': the model's embeddings have {} dimensions, {} asked",
                                                    m->embedder->dim(), *r.dimensions));
  }
  // Texts are tokenized (and truncated to the model's limit) here; token arrays must fit as they are.
  auto sequences = std::make_shared<std::vector<std::vector<int32_t>>>();
  int64_t total = 0;
  for (const auto& input : r.inputs) {
    if (!input.is_tokens && input.text.empty()) {
      server::throw_invalid("input", "'input': expected non-empty strings, found an empty one");
    }
    bool truncated = false;
    std::vector<int32_t> ids = input.is_tokens ? input.tokens : m->embedder->tokenize(input.text, truncated);
    if (ids.empty()) server::throw_invalid("input", "'input': expected non-empty inputs, found an empty one");
    if (int64_t(ids.size()) > m->embedder->max_tokens()) {
      throw server::ApiException(server::make_error(
          400, "invalid_request_error",
          fmt::format("an input of {} tokens exceeds the model's limit of {} tokens", ids.size(), m->embedder->max_tokens()),
          "input", "context_length_exceeded"));
    }
    total += int64_t(ids.size());
    sequences->push_back(std::move(ids));
  }
  auto embedder = m->embedder;
  worker_.post([sequences, embedder, sink, r, total, id = m->id] {
    if (sink->cancelled()) return;
    try {
      sink->finish_json(server::embeddings_response(embedder->embed_tokens(*sequences), r, id, total));
    } catch (...) {
      sink->fail(server::error_from_current_exception());
    }
  });
}

}  // namespace slm::tasks
