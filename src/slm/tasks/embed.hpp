// Embeddings of texts: BERT-family encoders (WordPiece, batched bidirectional forward) and decoder
// models (Qwen3-Embedding: last-token pooling over the final norm's output), pooled as the
// model's sentence-transformers files say unless the caller overrides it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "slm/engine/encoder.hpp"
#include "slm/engine/forward.hpp"
#include "slm/engine/kv_cache.hpp"
#include "slm/engine/scheduler.hpp"

namespace slm::tasks {

struct EmbedOptions {
  std::optional<Pooling> pooling;   // unset: the model's own (mean when its files say nothing)
  std::optional<bool> normalize;    // unset: the model's own (a Normalize module), else true
  int64_t max_tokens = 0;           // truncation; 0: the model's max_seq_length, else its positions
  int64_t batch_tokens = 4096;      // tokens of one batched forward
};

struct Embedding {
  std::vector<float> vector;
  int64_t tokens = 0;               // after truncation
  bool truncated = false;
};

class Embedder {
 public:
  // `path`: a resolved model path (folder or GGUF file). BERT-family folders and "bert" GGUF files
  // run on the encoder; anything else loads as a decoder.
  Embedder(const std::string& path, const EmbedOptions& options);
  ~Embedder();

  std::vector<Embedding> embed(const std::vector<std::string>& texts);
  // Embeddings of token sequences (each non-empty, at most max_tokens() long).
  std::vector<std::vector<float>> embed_tokens(const std::vector<std::vector<int32_t>>& sequences);

  bool is_encoder() const { return encoder_ != nullptr; }
  int64_t dim() const;
  Pooling pooling() const { return pooling_; }
  bool normalize() const { return normalize_; }
  int64_t max_tokens() const { return max_tokens_; }
  const std::string& pooling_source() const { return pooling_source_; }  // "" when defaults apply
  std::vector<int32_t> tokenize(const std::string& text, bool& truncated) const;

 private:
  std::vector<std::vector<float>> decoder_batch(const std::vector<std::vector<int32_t>>& sequences);

  EmbedOptions options_;
  std::shared_ptr<const Encoder> encoder_;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Forward> forward_;   // decoders: batches of whole sequences
  std::unique_ptr<KvCache> cache_;
  Pooling pooling_ = Pooling::mean;
  bool normalize_ = true;
  int64_t max_tokens_ = 0;
  std::string pooling_source_;
};

}  // namespace slm::tasks
