// A CudaSession is one sequence evaluated on the GPU: the Llama-family decode step of the CUDA backend
// (every layer's weights and the KV cache in device memory) behind the same forward / n_past /
// truncate contract as Session. Several tokens at once (a prompt) run as one batched forward per
// chunk of 512: cuBLAS products on the tensor cores and causal attention over the cache. In builds
// without the CUDA backend the class exists but its constructor reports that CUDA is not available.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "slm/engine/device.hpp"
#include "slm/engine/generate.hpp"
#include "slm/engine/sampler.hpp"
#include "slm/format/dtype.hpp"
#include "slm/model/model.hpp"

namespace slm {

// True when this build has the CUDA backend.
bool cuda_built();
// True when this build has the CUDA backend and a CUDA device can be used. Never throws.
bool cuda_device_present();
std::string_view device_name(Device device);

// Why the GPU decoder cannot run `model` yet: the architecture and each unsupported trait or
// weight type by name; empty when it can.
std::string cuda_unsupported_reason(const Model& model);

// "cpu", "cuda" or "auto" (CUDA when the build has it, a device is present and the model is
// supported and fits in the device's free memory; otherwise the CPU). Errors: another name
// (invalid_argument); "cuda" without the backend or a device (unsupported).
// `why_cpu` (optional) receives the reason auto chose the CPU.
Device choose_device(const std::string& name, const Model& model, int64_t n_ctx, std::string* why_cpu = nullptr);

struct CudaSessionOptions {
  int64_t n_ctx = 4096;           // KV cache positions; capped at the model's trained context
  DType kv_type = DType::F32;     // F32 or F16
  bool int8_activations = true;   // block-quantized matrices take activations rounded to 8 bits
  bool batched_prompt = true;     // several tokens in one forward (cuBLAS products); false: one step per token
};

// Device bytes a CudaSession of `model` with `options` allocates (weights in their device layouts,
// the KV cache, scratch), estimated from the shapes.
size_t cuda_session_bytes(const Model& model, const CudaSessionOptions& options);

class CudaSession {
 public:
  // Errors: unsupported (no CUDA, no device, or an architecture / trait / weight type the GPU
  // decoder does not handle, named); out_of_range (the model does not fit: bytes needed and free).
  CudaSession(std::shared_ptr<const Model> model, const CudaSessionOptions& options = {});
  ~CudaSession();
  CudaSession(const CudaSession&) = delete;
  CudaSession& operator=(const CudaSession&) = delete;

  // Evaluates `tokens` at positions n_past() .. n_past()+n-1 and appends them to the cache.
  // logits: when all_logits, [n][vocab_size]; else [vocab_size] for the last token only.
  void forward(std::span<const int32_t> tokens, float* logits, bool all_logits);
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  void reset() { n_past_ = 0; }
  // Forgets every position from n on (n <= n_past()).
  void truncate(int64_t n);
  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  size_t device_bytes() const { return device_bytes_; }

 private:
  struct Impl;
  std::shared_ptr<const Model> model_;
  int64_t n_ctx_ = 0;
  int64_t n_past_ = 0;
  size_t device_bytes_ = 0;
  std::unique_ptr<Impl> impl_;
};

// The generation loop of generate.hpp over a CudaSession (same stopping rules and figures).
GenerationStats generate(CudaSession& session, Sampler& sampler, std::span<const int32_t> prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& on_token);

struct CudaDeviceSummary {
  std::string name;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
};
// The current device; Error(unsupported) without CUDA or a device.
CudaDeviceSummary cuda_device_summary();
// Device-to-device copy bandwidth in bytes per second (bytes read plus written; a 1 GiB copy, the
// median of 10 after 2 warm-ups). Error(unsupported) without CUDA or a device.
double cuda_copy_bandwidth();

}  // namespace slm
