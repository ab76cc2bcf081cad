// The prototype Llama-family decode step: one line per operation, every buffer on the device.
#include "slm/backend/cuda/decoder.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "slm/backend/cuda/internal.hpp"
#include "slm/util/error.hpp"

namespace slm::cuda {

namespace {

struct Layer {
  DeviceBuffer attn_norm, ffn_norm, bq, bk, bv;
  DeviceMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
  DeviceBuffer k_cache, v_cache;
};

DeviceBuffer upload_floats(const float* host, int64_t n, const char* what) {
  if (host == nullptr) fail(ErrorKind::invalid_argument, "CUDA decoder: expected {} ({} floats), found null", what, n);
  DeviceBuffer buffer(size_t(n) * 4);
  buffer.upload(host, size_t(n) * 4);
  return buffer;
}

DeviceMatrix upload(const HostMatrix& m, int64_t rows, int64_t cols, const std::string& what) {
  if (m.rows != rows || m.cols != cols) {
    fail(ErrorKind::invalid_argument, "CUDA decoder: expected {} of {} x {}, found {} x {}", what, rows, cols, m.rows,
         m.cols);
  }
  return upload_matrix(m.type, m.data, rows, cols);
}

}  // namespace

struct LlamaDecoder::State {
  DecoderConfig config;
  AttentionShape shape;
  DeviceMatrix token_embd, output;
  DeviceBuffer output_norm, inv_freq;
  std::vector<Layer> layers;
  // activations
  DeviceBuffer x, h, q, k, v, attn, gate, up, logits, scratch, io;  // io: token, position, next token
  QuantizedVector hq;
  cudaStream_t stream = nullptr;
  cudaGraphExec_t graph = nullptr;
  int32_t* host_io = nullptr;  // pinned: token, position, next token

  ~State() {
    if (graph != nullptr) cudaGraphExecDestroy(graph);
    if (stream != nullptr) cudaStreamDestroy(stream);
    if (host_io != nullptr) cudaFreeHost(host_io);
  }
  void enqueue();  // the step's kernels on `stream`

  // y = W in, through the 8-bit activation kernel when the weights allow and `in_q` holds `in`.
  void product(const DeviceMatrix& w, const float* in, const QuantizedVector* in_q, float* y) {
    if (in_q != nullptr && matvec_quantized_supported(w.type)) {
      matvec(w, *in_q, y, stream);
    } else {
      matvec(w, in, y, stream);
    }
  }
  const QuantizedVector* quantized(const float* in, int64_t n, bool wanted) {
    if (!wanted || !config.int8_activations || n % 32 != 0) return nullptr;
    hq.quantize(in, n, stream);
    return &hq;
  }
};

LlamaDecoder::LlamaDecoder(const DecoderConfig& config, const DecoderWeights& weights)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.config = config;
  const int64_t q_dim = config.n_heads * config.head_dim, kv_dim = config.n_kv_heads * config.head_dim;
  if (config.dim <= 0 || config.n_layers <= 0 || config.n_heads <= 0 || config.n_kv_heads <= 0 ||
      config.head_dim <= 0 || config.ffn_dim <= 0 || config.vocab_size <= 0 || config.max_positions <= 0 ||
      config.n_heads % config.n_kv_heads != 0) {
    fail(ErrorKind::invalid_argument, "CUDA decoder: expected positive dimensions with n_heads a multiple of n_kv_heads");
  }
  if (int64_t(weights.layers.size()) != config.n_layers) {
    fail(ErrorKind::invalid_argument, "CUDA decoder: expected {} layers of weights, found {}", config.n_layers,
         weights.layers.size());
  }
  if (config.inv_freq.empty() || int64_t(config.inv_freq.size()) * 2 > config.head_dim) {
    fail(ErrorKind::invalid_argument, "CUDA decoder: expected 1 to head_dim / 2 inverse frequencies, found {}",
         config.inv_freq.size());
  }
  s.shape = AttentionShape{config.n_heads, config.n_kv_heads, config.head_dim, config.sliding_window,
                           1.0f / std::sqrt(float(config.head_dim))};
  s.token_embd = upload(weights.token_embd, config.vocab_size, config.dim, "token_embd");
  s.output = upload(weights.output, config.vocab_size, config.dim, "output");
  s.output_norm = upload_floats(weights.output_norm, config.dim, "output_norm");
  s.inv_freq = upload_floats(config.inv_freq.data(), int64_t(config.inv_freq.size()), "inv_freq");
  const size_t kv_bytes = size_t(config.max_positions * kv_dim) * (config.kv_type == DType::F16 ? 2 : 4);
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const DecoderLayerWeights& w = weights.layers[size_t(l)];
    const std::string name = "layer " + std::to_string(l) + " ";
    Layer layer;
    layer.attn_norm = upload_floats(w.attn_norm, config.dim, "attn_norm");
    layer.ffn_norm = upload_floats(w.ffn_norm, config.dim, "ffn_norm");
    if (w.bq != nullptr) layer.bq = upload_floats(w.bq, q_dim, "bq");
    if (w.bk != nullptr) layer.bk = upload_floats(w.bk, kv_dim, "bk");
    if (w.bv != nullptr) layer.bv = upload_floats(w.bv, kv_dim, "bv");
    layer.wq = upload(w.wq, q_dim, config.dim, name + "wq");
    layer.wk = upload(w.wk, kv_dim, config.dim, name + "wk");
    layer.wv = upload(w.wv, kv_dim, config.dim, name + "wv");
    layer.wo = upload(w.wo, config.dim, q_dim, name + "wo");
    layer.w_gate = upload(w.w_gate, config.ffn_dim, config.dim, name + "w_gate");
    layer.w_up = upload(w.w_up, config.ffn_dim, config.dim, name + "w_up");
    layer.w_down = upload(w.w_down, config.dim, config.ffn_dim, name + "w_down");
    layer.k_cache = DeviceBuffer(kv_bytes);
    layer.v_cache = DeviceBuffer(kv_bytes);
    s.layers.push_back(std::move(layer));
  }
  const auto floats = [](int64_t n) { return DeviceBuffer(size_t(n) * 4); };
  s.x = floats(config.dim);
  s.h = floats(config.dim);
  s.q = floats(q_dim);
  s.k = floats(kv_dim);
  s.v = floats(kv_dim);
  s.attn = floats(q_dim);
  s.gate = floats(config.ffn_dim);
  s.up = floats(config.ffn_dim);
  s.logits = floats(config.vocab_size);
  s.scratch = floats(int64_t(attention_scratch_floats(s.shape, config.max_positions)));
  s.io = DeviceBuffer(3 * sizeof(int32_t));
  detail::check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  detail::check(cudaMallocHost(reinterpret_cast<void**>(&s.host_io), 3 * sizeof(int32_t)), "cudaMallocHost");
  int64_t widest = 0;  // the longest vector that is rounded to 8 bits: allocated here, not while capturing
  for (const int64_t n : {config.dim, q_dim, config.ffn_dim}) {
    if (n % 32 == 0) widest = std::max(widest, n);
  }
  if (widest > 0) s.hq = QuantizedVector(widest);
}

LlamaDecoder::~LlamaDecoder() = default;

void LlamaDecoder::State::enqueue() {
  const DecoderConfig& c = config;
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t rope_dim = int64_t(c.inv_freq.size()) * 2;
  const int32_t* token = io.as<int32_t>();
  const int32_t* pos = io.as<int32_t>() + 1;
  int32_t* next = io.as<int32_t>() + 2;
  float* xp = x.as<float>();
  float* hp = h.as<float>();
  const float* freq = inv_freq.as<float>();
  embedding(token_embd, token, 1, xp, stream);                                      // x [dim]
  for (Layer& layer : layers) {
    rms_norm(xp, layer.attn_norm.as<float>(), hp, 1, c.dim, c.norm_eps, stream);   // h [dim]
    const QuantizedVector* hq_in = quantized(hp, c.dim, true);
    product(layer.wq, hp, hq_in, q.as<float>());                                    // q [q_dim]
    product(layer.wk, hp, hq_in, k.as<float>());                                    // k [kv_dim]
    product(layer.wv, hp, hq_in, v.as<float>());                                    // v [kv_dim]
    if (layer.bq.data() != nullptr) add(q.as<float>(), layer.bq.as<float>(), q_dim, stream);
    if (layer.bk.data() != nullptr) add(k.as<float>(), layer.bk.as<float>(), kv_dim, stream);
    if (layer.bv.data() != nullptr) add(v.as<float>(), layer.bv.as<float>(), kv_dim, stream);
    rope(q.as<float>(), 1, c.n_heads, c.head_dim, rope_dim, pos, freq, c.rope_interleaved, stream);
    rope(k.as<float>(), 1, c.n_kv_heads, c.head_dim, rope_dim, pos, freq, c.rope_interleaved, stream);
    store_kv(k.as<float>(), v.as<float>(), layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim, kv_dim, pos,
             c.max_positions, stream);
    attention_decode(q.as<float>(), layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim, pos,
                     c.max_positions, shape, scratch.as<float>(), attn.as<float>(), stream);  // attn [q_dim]
    product(layer.wo, attn.as<float>(), quantized(attn.as<float>(), q_dim, true), hp);  // h [dim]
    add(xp, hp, c.dim, stream);                                                     // x += attention
    rms_norm(xp, layer.ffn_norm.as<float>(), hp, 1, c.dim, c.norm_eps, stream);
    const QuantizedVector* fq = quantized(hp, c.dim, true);
    product(layer.w_gate, hp, fq, gate.as<float>());                                // gate [ffn]
    product(layer.w_up, hp, fq, up.as<float>());                                    // up [ffn]
    silu_mul(gate.as<float>(), up.as<float>(), c.ffn_dim, stream);
    product(layer.w_down, gate.as<float>(), quantized(gate.as<float>(), c.ffn_dim, true), hp);
    add(xp, hp, c.dim, stream);                                                     // x += mlp
  }
  rms_norm(xp, output_norm.as<float>(), hp, 1, c.dim, c.norm_eps, stream);
  product(output, hp, quantized(hp, c.dim, true), logits.as<float>());             // logits [vocab]
  argmax(logits.as<float>(), c.vocab_size, next, stream);
}

int32_t LlamaDecoder::step(int32_t token, int32_t position, float* logits) {
  State& s = *state_;
  const DecoderConfig& c = s.config;
  if (token < 0 || token >= c.vocab_size) {
    fail(ErrorKind::invalid_argument, "CUDA decoder: expected a token in [0, {}), found {}", c.vocab_size, token);
  }
  if (position < 0 || position >= c.max_positions) {
    fail(ErrorKind::out_of_range, "CUDA decoder: expected a position in [0, {}), found {}", c.max_positions, position);
  }
  s.host_io[0] = token;
  s.host_io[1] = position;
  detail::check(cudaMemcpyAsync(s.io.data(), s.host_io, 2 * sizeof(int32_t), cudaMemcpyHostToDevice, s.stream),
                "cudaMemcpyAsync token");
  if (!c.cuda_graph) {
    s.enqueue();
  } else {
    if (s.graph == nullptr) {
      cudaGraph_t graph = nullptr;
      detail::check(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
      try {
        s.enqueue();
      } catch (...) {
        cudaStreamEndCapture(s.stream, &graph);
        if (graph != nullptr) cudaGraphDestroy(graph);
        throw;
      }
      detail::check(cudaStreamEndCapture(s.stream, &graph), "cudaStreamEndCapture");
      const cudaError_t status = cudaGraphInstantiate(&s.graph, graph, 0);
      cudaGraphDestroy(graph);
      detail::check(status, "cudaGraphInstantiate");
    }
    detail::check(cudaGraphLaunch(s.graph, s.stream), "cudaGraphLaunch");
  }
  detail::check(cudaMemcpyAsync(s.host_io + 2, s.io.as<int32_t>() + 2, sizeof(int32_t), cudaMemcpyDeviceToHost, s.stream),
                "cudaMemcpyAsync next token");
  if (logits != nullptr) {
    detail::check(cudaMemcpyAsync(logits, s.logits.data(), size_t(c.vocab_size) * sizeof(float), cudaMemcpyDeviceToHost,
                                  s.stream),
                  "cudaMemcpyAsync logits");
  }
  detail::check(cudaStreamSynchronize(s.stream), "decode step");
  return s.host_io[2];
}

}  // namespace slm::cuda
