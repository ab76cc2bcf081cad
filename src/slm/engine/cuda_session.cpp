#include "slm/engine/cuda_session.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "slm/util/error.hpp"
#include "slm/util/timing.hpp"

#ifdef SLM_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "slm/backend/cuda/cuda.hpp"
#include "slm/backend/cuda/decoder.hpp"
#include "slm/engine/cuda_decoder_setup.hpp"
#endif

namespace slm {

namespace {

std::string format_bytes(size_t bytes) { return fmt::format("{} bytes ({:.1f} MiB)", bytes, double(bytes) / (1 << 20)); }

// Every weight matrix the decoder uploads, with its canonical name.
template <typename F>
void for_each_matrix(const Weights& w, F&& f) {
  f(w.token_embd);
  f(w.output);
  for (const LayerWeights& l : w.layers) {
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) f(*m);
  }
}

int64_t effective_n_ctx(const ModelConfig& c, int64_t n_ctx) {
  if (n_ctx <= 0) fail(ErrorKind::invalid_argument, "expected a positive context size, found {}", n_ctx);
  return c.context_length > 0 ? std::min(n_ctx, c.context_length) : n_ctx;
}

}  // namespace

std::string_view device_name(Device device) { return device == Device::cuda ? "cuda" : "cpu"; }

bool cuda_built() {
#ifdef SLM_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_device_present() {
#ifdef SLM_HAVE_CUDA
  return cuda::cuda_available();
#else
  return false;
#endif
}

std::string cuda_unsupported_reason(const Model& model) {
#ifndef SLM_HAVE_CUDA
  (void)model;
  return "this slm was built without the CUDA backend";
#else
  const ModelConfig& c = model.config();
  std::vector<std::string> traits;
  if (c.qk_norm && c.qkv_bias) traits.push_back("q/k/v biases together with RMSNorm of q and k heads (qk_norm)");
  if (c.head_dim % 2 != 0 || c.rope_dim > c.head_dim) traits.push_back(fmt::format("rope_dim {} with head_dim {}", c.rope_dim, c.head_dim));
  std::vector<std::string> types;
  for_each_matrix(model.weights(), [&](const Matrix& m) {
    if (!cuda::matrix_type_supported(m.type)) {
      const std::string entry = fmt::format("{} ({})", m.name.empty() ? "a weight matrix" : m.name, dtype_name(m.type));
      if (types.size() < 4) types.push_back(entry);
    }
  });
  if (traits.empty() && types.empty()) return "";
  std::string reason = fmt::format("the GPU decoder does not support architecture '{}' of model '{}' yet:", c.arch, c.name);
  for (size_t i = 0; i < traits.size(); ++i) reason += (i ? ", " : " ") + traits[i];
  if (!types.empty()) {
    reason += fmt::format("{}weight types it cannot upload (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, IQ4_NL, Q4_K, Q5_K, Q6_K and IQ4_XS are supported):",
                          traits.empty() ? " " : "; ");
    for (size_t i = 0; i < types.size(); ++i) reason += (i ? ", " : " ") + types[i];
  }
  return reason;
#endif
}

size_t cuda_session_bytes(const Model& model, const CudaSessionOptions& options) {
  const ModelConfig& c = model.config();
  const int64_t n_ctx = effective_n_ctx(c, options.n_ctx);
  size_t weights = 0;
  for_each_matrix(model.weights(), [&](const Matrix& m) {
    size_t bytes = m.bytes();  // as cuda::device_matrix_bytes (this part also builds without CUDA)
    if (m.type == DType::Q4_K) bytes = bytes / 144 * 148;  // the device layouts' unpacked scales
    if (m.type == DType::Q5_K) bytes = bytes / 176 * 180;
    if (m.type == DType::IQ4_XS) bytes = bytes / 136 * 138;
    weights += bytes;
  });
  // Norms (q/k and post norms where the model has them) and biases in f32.
  weights += size_t(c.n_layers) * size_t(4 * c.dim + c.q_dim() + 2 * c.kv_dim() + 2 * c.head_dim) * 4 + size_t(c.dim) * 4;
  const size_t kv_elem = options.kv_type == DType::F16 ? 2 : 4;
  const size_t kv = 2 * size_t(c.n_layers) * size_t(n_ctx) * size_t(c.kv_dim()) * kv_elem;
  // Activations, logits and the split-key attention scratch (per head and chunk of 128 keys: the
  // partial output and its maximum and sum).
  const size_t chunks = size_t((n_ctx + 127) / 128);
  const size_t scratch = (size_t(4 * c.dim + 2 * c.q_dim() + 4 * c.kv_dim() + 3 * c.ffn_dim + c.vocab_size) +
                          size_t(c.n_heads) * chunks * size_t(c.head_dim + 2)) *
                         4;
  // The batched prompt path: rows of a chunk (x, h, q/k/v, attention, gate/up, MLP input), cuBLAS
  // scratch (activations in f16, a 64 MiB tile of dequantized weights) and 32 rows of logits.
  const size_t chunk = size_t(std::min<int64_t>(512, n_ctx));
  const size_t prompt = chunk * size_t(2 * c.dim + 2 * c.q_dim() + 2 * c.kv_dim() + 3 * c.ffn_dim) * 4 +
                        chunk * size_t(std::max({c.dim, c.q_dim(), c.ffn_dim})) * 2 + (size_t(64) << 20) +
                        32 * size_t(c.vocab_size) * 4;
  return weights + kv + scratch + prompt;
}

Device choose_device(const std::string& name, const Model& model, int64_t n_ctx, std::string* why_cpu) {
  if (name == "cpu") return Device::cpu;
  if (name != "cuda" && name != "auto") {
    fail(ErrorKind::invalid_argument, "expected --device cpu, cuda or auto, found '{}'", name);
  }
  if (!cuda_built()) {
    if (name == "cuda") fail(ErrorKind::unsupported, "--device cuda: this slm was built without the CUDA backend");
    if (why_cpu) *why_cpu = "built without CUDA";
    return Device::cpu;
  }
  if (!cuda_device_present()) {
    if (name == "cuda") fail(ErrorKind::unsupported, "--device cuda: expected a CUDA device, found none");
    if (why_cpu) *why_cpu = "no CUDA device found";
    return Device::cpu;
  }
  if (name == "cuda") return Device::cuda;  // the session reports what it cannot run
  const std::string reason = cuda_unsupported_reason(model);
  if (!reason.empty()) {
    if (why_cpu) *why_cpu = reason;
    return Device::cpu;
  }
  CudaSessionOptions options;
  options.n_ctx = n_ctx;
  const size_t need = cuda_session_bytes(model, options);
  const CudaDeviceSummary device = cuda_device_summary();
  if (need + (size_t(256) << 20) > device.free_bytes) {
    if (why_cpu) *why_cpu = fmt::format("the model needs {} of GPU memory, {} free", format_bytes(need), format_bytes(device.free_bytes));
    return Device::cpu;
  }
  return Device::cuda;
}

#ifdef SLM_HAVE_CUDA

struct CudaSession::Impl {
  std::unique_ptr<cuda::LlamaDecoder> decoder;
  bool batched_prompt = true;
};

namespace {
cuda::HostMatrix host(const Matrix& m) { return {m.type, m.rows, m.cols, m.data}; }
const float* optional(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }
}  // namespace

cuda::DecoderConfig cuda_decoder_config(const ModelConfig& mc, int64_t max_positions) {
  cuda::DecoderConfig config;
  config.dim = mc.dim;
  config.n_layers = mc.n_layers;
  config.n_heads = mc.n_heads;
  config.n_kv_heads = mc.n_kv_heads;
  config.head_dim = mc.head_dim;
  config.ffn_dim = mc.ffn_dim;
  config.vocab_size = mc.vocab_size;
  config.max_positions = max_positions;
  config.sliding_window = mc.sliding_window;
  config.norm_eps = mc.norm_eps;
  config.attention_scale = mc.attention_scale_or_default();
  config.layer_sliding = mc.layer_sliding;
  // Sliding layers take their own RoPE base and no scaling, as the CPU forward does.
  if (mc.sliding_window > 0) config.inv_freq_local = mc.rope_inv_freq(true, max_positions);
  config.embedding_scale = mc.embedding_scale;
  config.gelu = mc.activation == Activation::gelu_tanh;
  config.inv_freq = mc.rope_inv_freq(false, max_positions);
  config.rope_interleaved = mc.rope_style == RopeStyle::interleaved;
  config.rope_cos_sin_scale = mc.rope_cos_sin_scale();
  return config;
}

cuda::DecoderWeights cuda_decoder_weights(const Model& model) {
  const Weights& w = model.weights();
  cuda::DecoderWeights weights;
  weights.token_embd = host(w.token_embd);
  weights.output = host(w.output);
  weights.output_norm = w.output_norm.data();
  for (const LayerWeights& l : w.layers) {
    cuda::DecoderLayerWeights d;
    d.attn_norm = l.attn_norm.data();
    d.ffn_norm = l.ffn_norm.data();
    d.wq = host(l.wq);
    d.wk = host(l.wk);
    d.wv = host(l.wv);
    d.wo = host(l.wo);
    d.bq = optional(l.bq);
    d.bk = optional(l.bk);
    d.bv = optional(l.bv);
    d.q_norm = optional(l.q_norm);
    d.k_norm = optional(l.k_norm);
    d.post_attn_norm = optional(l.post_attn_norm);
    d.post_ffn_norm = optional(l.post_ffn_norm);
    d.w_gate = host(l.w_gate);
    d.w_up = host(l.w_up);
    d.w_down = host(l.w_down);
    weights.layers.push_back(d);
  }
  return weights;
}

CudaSession::CudaSession(std::shared_ptr<const Model> model, const CudaSessionOptions& options)
    : model_(std::move(model)) {
  if (!model_) fail(ErrorKind::invalid_argument, "CudaSession: expected a model, found null");
  const ModelConfig& mc = model_->config();
  n_ctx_ = effective_n_ctx(mc, options.n_ctx);
  if (options.kv_type != DType::F32 && options.kv_type != DType::F16) {
    fail(ErrorKind::invalid_argument, "CudaSession: expected an F32 or F16 KV cache, found {}", dtype_name(options.kv_type));
  }
  if (!cuda::cuda_available()) fail(ErrorKind::unsupported, "CUDA: expected a CUDA device, found none");
  const std::string reason = cuda_unsupported_reason(*model_);
  if (!reason.empty()) fail(ErrorKind::unsupported, "CUDA: {} (use --device cpu)", reason);
  CudaSessionOptions sized = options;
  sized.n_ctx = n_ctx_;
  const size_t need = cuda_session_bytes(*model_, sized);
  const CudaDeviceSummary device = cuda_device_summary();
  if (need + (size_t(64) << 20) > device.free_bytes) {
    fail(ErrorKind::out_of_range,
         "CUDA: the model does not fit in GPU memory: expected about {} (weights and a KV cache of {} positions) plus "
         "64 MiB of headroom, found {} free of {} on {} (a smaller --ctx or --device cpu may do)",
         format_bytes(need), n_ctx_, format_bytes(device.free_bytes), format_bytes(device.total_bytes), device.name);
  }
  device_bytes_ = need;

  cuda::DecoderConfig config = cuda_decoder_config(mc, n_ctx_);
  config.kv_type = options.kv_type;
  config.int8_activations = options.int8_activations;
  const cuda::DecoderWeights weights = cuda_decoder_weights(*model_);
  impl_ = std::make_unique<Impl>();
  impl_->decoder = std::make_unique<cuda::LlamaDecoder>(config, weights);
  impl_->batched_prompt = options.batched_prompt;
}

void CudaSession::forward(std::span<const int32_t> tokens, float* logits, bool all_logits) {
  if (tokens.empty()) fail(ErrorKind::invalid_argument, "forward: expected at least one token, found none");
  if (logits == nullptr) fail(ErrorKind::invalid_argument, "forward: expected a logits buffer, found null");
  if (n_past_ + int64_t(tokens.size()) > n_ctx_) {
    fail(ErrorKind::out_of_range, "forward: {} tokens after {} would pass the context of {}", tokens.size(), n_past_,
         n_ctx_);
  }
  const int64_t vocab = config().vocab_size;
  for (int32_t t : tokens) {
    if (t < 0 || t >= vocab) fail(ErrorKind::invalid_argument, "forward: expected token ids in [0, {}), found {}", vocab, t);
  }
  if (tokens.size() > 1 && impl_->batched_prompt && impl_->decoder->prefill_supported()) {
    impl_->decoder->prefill(tokens.data(), int64_t(tokens.size()), int32_t(n_past_), logits, all_logits);
    n_past_ += int64_t(tokens.size());
    return;
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* out = nullptr;
    if (all_logits) {
      out = logits + i * size_t(vocab);
    } else if (i + 1 == tokens.size()) {
      out = logits;
    }
    impl_->decoder->step(tokens[i], int32_t(n_past_), out);
    ++n_past_;
  }
}

CudaDeviceSummary cuda_device_summary() {
  const cuda::DeviceInfo info = cuda::device_info();
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (status != cudaSuccess) {
    fail(ErrorKind::unsupported, "CUDA: cannot read the device's free memory: {}", cudaGetErrorString(status));
  }
  return {info.name, total_bytes, free_bytes};
}

double cuda_copy_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  cuda::DeviceBuffer a(bytes), b(bytes);
  a.fill_bytes(0x3c);
  cudaEvent_t start = nullptr, stop = nullptr;
  const auto check = [](cudaError_t status, const char* what) {
    if (status != cudaSuccess) fail(ErrorKind::internal, "CUDA copy bandwidth: {}: {}", what, cudaGetErrorString(status));
  };
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  std::vector<double> rates;
  for (int r = 0; r < 12; ++r) {
    check(cudaEventRecord(start, nullptr), "record");
    check(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, nullptr), "copy");
    check(cudaEventRecord(stop, nullptr), "record");
    check(cudaEventSynchronize(stop), "synchronize");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed time");
    if (r >= 2 && ms > 0.0f) rates.push_back(2.0 * double(bytes) / (double(ms) * 1e-3));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(rates.begin(), rates.end());
  return rates.empty() ? 0.0 : rates[rates.size() / 2];
}

#else  // no CUDA backend

struct CudaSession::Impl {};

CudaSession::CudaSession(std::shared_ptr<const Model> model, const CudaSessionOptions&) : model_(std::move(model)) {
  fail(ErrorKind::unsupported, "CUDA: this slm was built without the CUDA backend (use --device cpu)");
}

void CudaSession::forward(std::span<const int32_t>, float*, bool) {
  fail(ErrorKind::unsupported, "CUDA: this slm was built without the CUDA backend");
}

CudaDeviceSummary cuda_device_summary() {
  fail(ErrorKind::unsupported, "CUDA: this slm was built without the CUDA backend");
}

double cuda_copy_bandwidth() { fail(ErrorKind::unsupported, "CUDA: this slm was built without the CUDA backend"); }

#endif

CudaSession::~CudaSession() = default;

void CudaSession::truncate(int64_t n) {
  if (n < 0 || n > n_past_) fail(ErrorKind::out_of_range, "truncate: expected 0 <= n <= {}, found {}", n_past_, n);
  n_past_ = n;  // later steps overwrite the cache rows from n on
}

GenerationStats generate(CudaSession& session, Sampler& sampler, std::span<const int32_t> prompt, int64_t max_tokens,
                         const std::function<bool(int32_t)>& on_token) {
  return generate_tokens(session, sampler, prompt, max_tokens, on_token);
}

}  // namespace slm
