#include "slm/engine/cuda_forward.hpp"

#include <fmt/format.h>

#include <vector>

#include "slm/engine/cuda_session.hpp"
#include "slm/util/error.hpp"

#ifdef SLM_HAVE_CUDA
#include "slm/backend/cuda/decoder.hpp"
#include "slm/engine/cuda_decoder_setup.hpp"
#endif

namespace slm {

size_t cuda_forward_bytes(const Model& model, int64_t kv_rows, DType kv_type) {
  // The one-sequence estimate with a context of zero rows, plus the pool and the batch rows.
  CudaSessionOptions none;
  none.n_ctx = 1;
  none.kv_type = kv_type;
  const ModelConfig& c = model.config();
  const size_t elem = kv_type == DType::F16 ? 2 : 4;
  return cuda_session_bytes(model, none) + 2 * size_t(c.n_layers) * size_t(kv_rows) * size_t(c.kv_dim()) * elem;
}

#ifdef SLM_HAVE_CUDA

namespace {

class CudaForward : public BatchForward {
 public:
  CudaForward(std::unique_ptr<cuda::LlamaDecoder> decoder, int64_t max_rows, int64_t vocab)
      : decoder_(std::move(decoder)), max_rows_(max_rows), vocab_(vocab) {}

  void logits(const ForwardBatch& batch, KvCache& cache, float* logits) override { run(batch, cache, logits, false); }
  // Summaries on the device: only lse and the top logits of those rows cross to the host.
  void logits_top(const ForwardBatch& batch, KvCache& cache, float* logits, TopLogits& top) override {
    if (top.k_max <= 0) return run(batch, cache, logits, false);
    if (vocab_ > cuda::top_logits_max_vocab() || top.k_max > cuda::kTopLogitsMaxK) {  // beyond the device's summary
      return BatchForward::logits_top(batch, cache, logits, top);
    }
    top.resize_outputs();
    cuda::PagedTop t;
    t.k = top.k.data();
    t.k_max = top.k_max;
    t.lse = top.lse.data();
    t.ids = top.ids.data();
    t.values = top.values.data();
    run(batch, cache, logits, false, &t);
  }
  void hidden(const ForwardBatch& batch, KvCache& cache, float* hidden) override { run(batch, cache, hidden, true); }
  int64_t max_rows() const override { return max_rows_; }
  int64_t vocab_size() const override { return vocab_; }

 private:
  void run(const ForwardBatch& batch, const KvCache& cache, float* out, bool hidden,
           const cuda::PagedTop* top = nullptr) {
    if (batch.rows() > max_rows_) {
      fail(ErrorKind::invalid_argument, "CUDA forward: expected at most {} rows, found {}", max_rows_, batch.rows());
    }
    sequences_.clear();
    for (const BatchSequence& s : batch.sequences) {
      sequences_.push_back({s.row_begin, s.n_rows, s.blocks.data(), int64_t(s.blocks.size())});
    }
    cuda::PagedBatch b;
    b.tokens = batch.tokens.data();
    b.positions = batch.positions.data();
    b.n_rows = batch.rows();
    b.sequences = sequences_.data();
    b.n_sequences = int64_t(sequences_.size());
    b.outputs = batch.outputs.data();
    b.n_outputs = int64_t(batch.outputs.size());
    b.block_size = cache.block_size();
    decoder_->forward_paged(b, out, hidden, top);
  }

  std::unique_ptr<cuda::LlamaDecoder> decoder_;
  int64_t max_rows_;
  int64_t vocab_;
  std::vector<cuda::PagedSequence> sequences_;
};

}  // namespace

std::unique_ptr<BatchForward> make_cuda_forward(std::shared_ptr<const Model> model, int64_t max_rows, int64_t n_ctx,
                                                const KvCache& cache) {
  if (!model) fail(ErrorKind::invalid_argument, "CUDA forward: expected a model, found null");
  const DType kv_type = cache.k_type();
  if ((kv_type != DType::F32 && kv_type != DType::F16) || cache.v_type() != kv_type) {
    fail(ErrorKind::unsupported, "CUDA: expected an f32 or f16 KV cache, the same for keys and values, found {} and {}",
         dtype_name(kv_type), dtype_name(cache.v_type()));
  }
  if (!cuda_device_present()) fail(ErrorKind::unsupported, "CUDA: expected a CUDA device, found none");
  const std::string reason = cuda_unsupported_reason(*model);
  if (!reason.empty()) fail(ErrorKind::unsupported, "CUDA: {} (use --device cpu)", reason);
  const ModelConfig& mc = model->config();
  const int64_t kv_rows = cache.n_blocks() * cache.block_size();
  const size_t need = cuda_forward_bytes(*model, kv_rows, kv_type);
  const CudaDeviceSummary device = cuda_device_summary();
  if (need + (size_t(64) << 20) > device.free_bytes) {
    const auto mib = [](size_t bytes) { return double(bytes) / double(1 << 20); };
    fail(ErrorKind::out_of_range,
         "CUDA: the model does not fit in GPU memory: expected about {:.1f} MiB (weights and a KV cache of {} "
         "positions) plus 64 MiB of headroom, found {:.1f} MiB free of {:.1f} MiB on {} (fewer --parallel sequences, "
         "a smaller --ctx or --device cpu may do)",
         mib(need), kv_rows, mib(device.free_bytes), mib(device.total_bytes), device.name);
  }
  cuda::DecoderConfig config = cuda_decoder_config(mc, n_ctx > 0 ? n_ctx : mc.context_length);
  config.kv_type = kv_type;
  config.kv_rows = kv_rows;
  config.cuda_graph = false;
  auto decoder = std::make_unique<cuda::LlamaDecoder>(config, cuda_decoder_weights(*model));
  if (!decoder->prefill_supported()) {
    fail(ErrorKind::unsupported,
         "CUDA: batched serving needs head_dim <= 256 within the device's shared memory, found {} (use --device cpu)",
         mc.head_dim);
  }
  if (max_rows > decoder->max_batch_rows()) {
    fail(ErrorKind::out_of_range, "CUDA: expected at most {} tokens per batch on the GPU, found {}",
         decoder->max_batch_rows(), max_rows);
  }
  return std::make_unique<CudaForward>(std::move(decoder), max_rows, mc.vocab_size);
}

#else

std::unique_ptr<BatchForward> make_cuda_forward(std::shared_ptr<const Model>, int64_t, int64_t, const KvCache&) {
  fail(ErrorKind::unsupported, "--device cuda: this slm was built without the CUDA backend");
}

#endif

}  // namespace slm
