#include "slm/tasks/embed.hpp"

#include <algorithm>

#include "slm/model/model.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {

Embedder::Embedder(const std::string& path, const EmbedOptions& options) : options_(options) {
  if (options.max_tokens < 0) fail(ErrorKind::invalid_argument, "expected max_tokens >= 0, found {}", options.max_tokens);
  if (options.batch_tokens <= 0) fail(ErrorKind::invalid_argument, "expected batch_tokens > 0, found {}", options.batch_tokens);
  int64_t limit = 0;
  Pooling default_mode = Pooling::mean;
  if (Encoder::is_encoder(path)) {
    encoder_ = Encoder::load(path);
    if (!encoder_->tokenizer()) fail(ErrorKind::not_found, "{}: the encoder has no WordPiece tokenizer (tokenizer.json)", path);
    limit = encoder_->config().max_positions;
  } else {
    model_ = Model::load(path);
    if (!model_->tokenizer()) fail(ErrorKind::not_found, "{}: the model has no tokenizer", path);
    SchedulerOptions so;
    so.max_sequences = 1;
    so.n_ctx = std::min<int64_t>(model_->config().context_length > 0 ? model_->config().context_length : 8192, 8192);
    so.max_batch_tokens = 512;
    scheduler_ = std::make_unique<Scheduler>(model_, so);
    limit = scheduler_->options().n_ctx;
  }
  const PoolingConfig pc = read_pooling_config(path, default_mode);
  pooling_ = options.pooling.value_or(pc.mode);
  normalize_ = options.normalize.value_or(pc.normalize);
  pooling_source_ = pc.from_model ? pc.source : "";
  max_tokens_ = limit;
  if (pc.max_seq_length > 0) max_tokens_ = std::min(max_tokens_, pc.max_seq_length);
  if (options.max_tokens > 0) max_tokens_ = std::min(limit, options.max_tokens);
  if (max_tokens_ < 3) fail(ErrorKind::invalid_argument, "expected max_tokens of at least 3, found {}", max_tokens_);
}

Embedder::~Embedder() = default;

int64_t Embedder::dim() const { return encoder_ ? encoder_->config().dim : model_->config().dim; }

std::vector<int32_t> Embedder::tokenize(const std::string& text, bool& truncated) const {
  truncated = false;
  if (encoder_) {
    const auto& tok = *encoder_->tokenizer();
    std::vector<int32_t> ids = tok.encode(text, true, 0);
    if (int64_t(ids.size()) > max_tokens_) {
      truncated = true;
      ids = tok.encode(text, true, size_t(max_tokens_));
    }
    return ids;
  }
  const Tokenizer& tok = *model_->tokenizer();
  std::vector<int32_t> ids = tok.encode(text, true, true);
  if (int64_t(ids.size()) > max_tokens_) {
    truncated = true;
    // Keep an end-of-text token the tokenizer appends: last-token pooling reads its state.
    const bool keep_last = tok.data().add_eos && !ids.empty() && ids.back() == tok.data().eos_id;
    const int32_t last = ids.back();
    ids.resize(size_t(max_tokens_));
    if (keep_last) ids.back() = last;
  }
  return ids;
}

std::vector<Embedding> Embedder::embed(const std::vector<std::string>& texts) {
  std::vector<Embedding> out(texts.size());
  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ids[i] = tokenize(texts[i], out[i].truncated);
    if (ids[i].empty()) fail(ErrorKind::invalid_argument, "input {} gives no tokens", i);
    out[i].tokens = int64_t(ids[i].size());
  }
  if (encoder_) {
    size_t begin = 0;
    while (begin < ids.size()) {
      size_t end = begin;
      int64_t rows = 0;
      while (end < ids.size() && (end == begin || rows + int64_t(ids[end].size()) <= options_.batch_tokens)) {
        rows += int64_t(ids[end].size());
        ++end;
      }
      const std::vector<std::vector<int32_t>> batch(ids.begin() + std::ptrdiff_t(begin), ids.begin() + std::ptrdiff_t(end));
      auto vectors = encoder_->embed(batch, pooling_, normalize_);
      for (size_t i = begin; i < end; ++i) out[i].vector = std::move(vectors[i - begin]);
      begin = end;
    }
    return out;
  }
  std::vector<std::future<std::vector<float>>> futures;
  futures.reserve(ids.size());
  for (auto& t : ids) futures.push_back(scheduler_->embed(t, pooling_, normalize_));
  for (size_t i = 0; i < futures.size(); ++i) out[i].vector = futures[i].get();
  return out;
}

}  // namespace slm::tasks
