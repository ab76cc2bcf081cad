#include "slm/tasks/embed.hpp"

#include <algorithm>

#include "slm/model/model.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {
constexpr int64_t kMaxBatchSequences = 64;  // decoder inputs in one forward
}  // namespace

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
    limit = std::min<int64_t>(model_->config().context_length > 0 ? model_->config().context_length : 8192, 8192);
  }
  const PoolingConfig pc = read_pooling_config(path, default_mode);
  pooling_ = options.pooling.value_or(pc.mode);
  normalize_ = options.normalize.value_or(pc.normalize);
  pooling_source_ = pc.from_model ? pc.source : "";
  max_tokens_ = limit;
  if (pc.max_seq_length > 0) max_tokens_ = std::min(max_tokens_, pc.max_seq_length);
  if (options.max_tokens > 0) max_tokens_ = std::min(limit, options.max_tokens);
  if (max_tokens_ < 3) fail(ErrorKind::invalid_argument, "expected max_tokens of at least 3, found {}", max_tokens_);
  if (model_) {
    // One forward holds the longest input whole; the cache holds one batch (blocks of 16 positions).
    const int64_t rows = std::max(options_.batch_tokens, max_tokens_);
    forward_ = std::make_unique<Forward>(model_, rows, max_tokens_);
    cache_ = std::make_unique<KvCache>(model_->config(), rows / 16 + kMaxBatchSequences + 1, 16);
  }
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
  auto vectors = embed_tokens(ids);
  for (size_t i = 0; i < texts.size(); ++i) out[i].vector = std::move(vectors[i]);
  return out;
}

std::vector<std::vector<float>> Embedder::embed_tokens(const std::vector<std::vector<int32_t>>& ids) {
  for (const auto& s : ids) {
    if (s.empty() || int64_t(s.size()) > max_tokens_) {
      fail(ErrorKind::invalid_argument, "expected sequences of 1 to {} tokens, found {}", max_tokens_, s.size());
    }
  }
  std::vector<std::vector<float>> out(ids.size());
  const int64_t max_sequences = encoder_ ? int64_t(ids.size()) : kMaxBatchSequences;
  size_t begin = 0;
  while (begin < ids.size()) {
    size_t end = begin;
    int64_t rows = 0;
    while (end < ids.size() && int64_t(end - begin) < max_sequences &&
           (end == begin || rows + int64_t(ids[end].size()) <= options_.batch_tokens)) {
      rows += int64_t(ids[end].size());
      ++end;
    }
    const std::vector<std::vector<int32_t>> batch(ids.begin() + std::ptrdiff_t(begin), ids.begin() + std::ptrdiff_t(end));
    if (encoder_) {
      auto vectors = encoder_->embed(batch, pooling_, normalize_);
      for (size_t i = begin; i < end; ++i) out[i] = std::move(vectors[i - begin]);
    } else {
      auto vectors = decoder_batch(batch);
      for (size_t i = begin; i < end; ++i) out[i] = std::move(vectors[i - begin]);
    }
    begin = end;
  }
  return out;
}

std::vector<std::vector<float>> Embedder::decoder_batch(const std::vector<std::vector<int32_t>>& seqs) {
  const int64_t dim = model_->config().dim;
  const int64_t bs = cache_->block_size();
  std::vector<std::vector<int32_t>> tables(seqs.size());
  ForwardBatch batch;
  std::vector<std::pair<int64_t, int64_t>> spans;  // each sequence's first output and count
  auto release = [&] {
    for (auto& t : tables) {
      for (int32_t b : t) cache_->release(b);
      t.clear();
    }
  };
  std::vector<float> hidden;
  try {
    for (size_t i = 0; i < seqs.size(); ++i) {
      const auto n = int64_t(seqs[i].size());
      for (int64_t b = 0; b < (n + bs - 1) / bs; ++b) {
        const int32_t block = cache_->allocate();
        if (block < 0) fail(ErrorKind::internal, "embedding batch: the KV cache ran out of blocks");
        tables[i].push_back(block);
      }
      const int64_t row0 = batch.rows();
      for (int64_t p = 0; p < n; ++p) {
        batch.tokens.push_back(seqs[i][size_t(p)]);
        batch.positions.push_back(int32_t(p));
      }
      batch.sequences.push_back(BatchSequence{row0, n, tables[i]});
      const int64_t first_out = int64_t(batch.outputs.size());
      if (pooling_ == Pooling::mean) {
        for (int64_t p = 0; p < n; ++p) batch.outputs.push_back(row0 + p);
      } else {
        batch.outputs.push_back(pooling_ == Pooling::cls ? row0 : row0 + n - 1);
      }
      spans.emplace_back(first_out, int64_t(batch.outputs.size()) - first_out);
    }
    hidden.resize(batch.outputs.size() * size_t(dim));
    forward_->hidden(batch, *cache_, hidden.data());
  } catch (...) {
    release();
    throw;
  }
  release();
  std::vector<std::vector<float>> out;
  out.reserve(seqs.size());
  for (const auto& [first, count] : spans) {
    // The rows are the pooled ones already: mean over all of them, or the one row.
    out.push_back(pool_rows(hidden.data() + first * dim, count, dim, Pooling::mean, normalize_));
  }
  return out;
}

}  // namespace slm::tasks
