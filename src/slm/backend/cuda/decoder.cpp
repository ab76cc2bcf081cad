// The prototype Llama-family decode step: one line per operation, every buffer on the device.
#include "slm/backend/cuda/decoder.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>

#include "slm/backend/cuda/internal.hpp"
#include "slm/util/error.hpp"

namespace slm::cuda {

namespace {

// Matrices that read the same input are fused into one product when their types agree: q, k and v
// (output [q | k | v]), gate and up (output [gate | up]); otherwise each has its own.
struct Layer {
  DeviceBuffer attn_norm, ffn_norm, bias;  // bias: [q | k | v] (zeros where a projection has none), or empty
  DeviceBuffer qk_norm;                    // [q norm | k norm] of head_dim each, or empty
  DeviceBuffer post_attn_norm, post_ffn_norm;  // or empty
  bool sliding = false;                    // uses the sliding window and the local RoPE frequencies
  std::vector<DeviceMatrix> qkv;           // one fused matrix, or wq, wk, wv
  std::vector<DeviceMatrix> gate_up;       // one fused matrix, or w_gate, w_up
  DeviceMatrix wo, w_down;
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

// The matrices stacked row-wise (same type and columns) as one upload, or each uploaded alone.
std::vector<DeviceMatrix> upload_stacked(const std::vector<HostMatrix>& parts, const std::vector<int64_t>& rows,
                                         int64_t cols, const std::string& what) {
  bool same = true;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].rows != rows[i] || parts[i].cols != cols) {
      fail(ErrorKind::invalid_argument, "CUDA decoder: expected {} part {} of {} x {}, found {} x {}", what, i, rows[i],
           cols, parts[i].rows, parts[i].cols);
    }
    if (parts[i].data == nullptr) fail(ErrorKind::invalid_argument, "CUDA decoder: {} part {} has no data", what, i);
    same = same && parts[i].type == parts[0].type;
  }
  std::vector<DeviceMatrix> out;
  if (!same) {
    for (const HostMatrix& m : parts) out.push_back(upload_matrix(m.type, m.data, m.rows, m.cols));
    return out;
  }
  const size_t row_bytes = dtype_row_bytes(parts[0].type, uint64_t(cols));
  std::vector<uint8_t> stacked;
  int64_t total_rows = 0;
  for (const HostMatrix& m : parts) {
    const auto* bytes = static_cast<const uint8_t*>(m.data);
    stacked.insert(stacked.end(), bytes, bytes + row_bytes * size_t(m.rows));
    total_rows += m.rows;
  }
  out.push_back(upload_matrix(parts[0].type, stacked.data(), total_rows, cols));
  return out;
}

// Programmatic dependent launch for the decode graph: on compute capability 9.0 and newer with
// kernels built for it, unless SLM_CUDA_PDL=0 asks for ordinary edges (to measure the difference).
bool programmatic_edges_wanted() {
  static const bool wanted = [] {
    const char* env = std::getenv("SLM_CUDA_PDL");
    if (env != nullptr && std::string(env) == "0") return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    return major >= 9 && detail::programmatic_launch_compiled();
  }();
  return wanted;
}

// Every kernel-to-kernel edge of a captured graph becomes programmatic: the downstream kernel may
// launch once every block of the upstream one has passed its wait_for_previous_kernel() (which
// also waits for the upstream kernel to finish before reading anything it wrote).
cudaError_t make_edges_programmatic(cudaGraph_t graph) {
  size_t n = 0;
  cudaError_t status = cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &n);
  if (status != cudaSuccess || n == 0) return status;
  std::vector<cudaGraphNode_t> from(n), to(n);
  std::vector<cudaGraphEdgeData> data(n);
  status = cudaGraphGetEdges(graph, from.data(), to.data(), data.data(), &n);
  if (status != cudaSuccess) return status;
  auto is_kernel = [](cudaGraphNode_t node) {
    cudaGraphNodeType type{};
    return cudaGraphNodeGetType(node, &type) == cudaSuccess && type == cudaGraphNodeTypeKernel;
  };
  for (size_t i = 0; i < n; ++i) {
    if (!is_kernel(from[i]) || !is_kernel(to[i]) || data[i].type != cudaGraphDependencyTypeDefault) continue;
    status = cudaGraphRemoveDependencies(graph, &from[i], &to[i], &data[i], 1);
    if (status != cudaSuccess) return status;
    cudaGraphEdgeData edge{};
    edge.from_port = cudaGraphKernelNodePortProgrammatic;
    edge.type = cudaGraphDependencyTypeProgrammatic;
    status = cudaGraphAddDependencies(graph, &from[i], &to[i], &edge, 1);
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

}  // namespace

struct LlamaDecoder::State {
  DecoderConfig config;
  AttentionShape shape;
  DeviceMatrix token_embd, output;
  DeviceBuffer output_norm, inv_freq, inv_freq_local;
  std::vector<Layer> layers;
  // activations
  DeviceBuffer x, h, qkv, attn, gate_up, logits, scratch, io;  // io: token, position, next token
  DeviceBuffer argmax_scratch;
  QuantizedVector hq;
  cudaStream_t stream = nullptr;
  cudaGraphExec_t graph = nullptr;
  int32_t* host_io = nullptr;  // pinned: token, position, next token
  float* host_logits = nullptr;  // pinned [vocab_size]
  // Prompt chunks (allocated by the first prefill): rows of x, h, [q | k | v], attention output,
  // [gate | up], the MLP's product input, token ids; logits of several rows.
  static constexpr int64_t kChunk = 512;
  static constexpr int64_t kLogitRows = 32;
  int64_t chunk = 0;
  DeviceBuffer px, ph, pqkv, pattn, pgate_up, pmlp, ptokens, plogits;
  std::unique_ptr<Blas> blas;

  ~State() {
    if (graph != nullptr) cudaGraphExecDestroy(graph);
    if (stream != nullptr) cudaStreamDestroy(stream);
    if (host_io != nullptr) cudaFreeHost(host_io);
    if (host_logits != nullptr) cudaFreeHost(host_logits);
    if (host_stage != nullptr) cudaFreeHost(host_stage);
    if (host_rows != nullptr) cudaFreeHost(host_rows);
    if (host_top != nullptr) cudaFreeHost(host_top);
  }
  // Paged batches: the host staging (pinned) and its device copy: tokens, positions and cache rows
  // of the rows, the sequences' block tables, the attention work items.
  int32_t* host_stage = nullptr;
  size_t stage_ints = 0;
  DeviceBuffer stage;

  void enqueue();  // the step's kernels on `stream`
  void ensure_rows();  // the row buffers of prompt chunks and batches (first use)
  void ensure_stage(size_t ints);
  // The layers over rows [0, n) of ptokens, the final norm into ph. `attend` puts a layer's keys and
  // values into the cache and its attention output into pattn, from the rows of [q | k | v] in pqkv.
  void rows_forward(int64_t n, const std::function<void(Layer&, float* qkv_rows)>& attend);
  void prefill_chunk(int64_t n, int64_t position);
  // out: rows `outputs` of ph (n_out of them, ascending) as logits [n_out][vocab] or hidden [n_out][dim], on the host.
  void gather_outputs(const int64_t* outputs, int64_t n_out, float* out, bool hidden, const PagedTop* top);
  // Output logits rows through pinned memory, and their device summaries (allocated on first use).
  float* host_rows = nullptr;  // pinned [kLogitRows][vocab_size]
  float* host_top = nullptr;   // pinned [kLogitRows][1 + 2 * kTopLogitsMaxK]: lse, ids, values
  DeviceBuffer ptop, top_scratch;

  // y rows (y_stride apart) = x rows times the stacked matrices (consecutive column ranges of y).
  void row_products(const std::vector<DeviceMatrix>& ws, const float* x, int64_t n, float* y, int64_t y_stride) {
    for (const DeviceMatrix& w : ws) {
      blas->matmul(w, x, n, y, stream, false, y_stride);
      y += w.n_out;
    }
  }

  // y (+)= W in, through the 8-bit activation kernel when the weights allow and `in_q` holds `in`.
  void product(const DeviceMatrix& w, const float* in, const QuantizedVector* in_q, float* y, bool accumulate = false) {
    if (in_q != nullptr && matvec_quantized_supported(w.type)) {
      matvec(w, *in_q, y, stream, accumulate);
    } else {
      matvec(w, in, y, stream, accumulate);
    }
  }
  // Products of stacked matrices: consecutive row ranges of y.
  void products(const std::vector<DeviceMatrix>& ws, const float* in, const QuantizedVector* in_q, float* y) {
    for (const DeviceMatrix& w : ws) {
      product(w, in, in_q, y);
      y += w.n_out;
    }
  }
  const QuantizedVector* quantized(const float* in, int64_t n, bool wanted) {
    if (!wanted || !config.int8_activations || n % 32 != 0) return nullptr;
    hq.quantize(in, n, stream);
    return &hq;
  }
  // True when a product of one of `ws` would read n activations rounded to 8 bits.
  bool int8(const std::vector<DeviceMatrix>& ws, int64_t n) const {
    if (!config.int8_activations || n % 32 != 0) return false;
    return std::any_of(ws.begin(), ws.end(), [](const DeviceMatrix& w) { return matvec_quantized_supported(w.type); });
  }
  bool int8(std::initializer_list<std::reference_wrapper<const DeviceMatrix>> ws, int64_t n) const {
    if (!config.int8_activations || n % 32 != 0) return false;
    return std::any_of(ws.begin(), ws.end(), [](const DeviceMatrix& w) { return matvec_quantized_supported(w.type); });
  }
  // y (consecutive ranges for the stacked ws) = ws times rms_norm(x) * weight: through the 8-bit
  // rounding (one kernel for the norm and the rounding) when a product reads it; else each F32/F16/
  // BF16 product normalizes x itself (no launch for the norm); else through h.
  void normed_products(const std::vector<DeviceMatrix>& ws, const float* in, const float* weight, float* y) {
    float* hp = h.as<float>();
    if (int8(ws, config.dim)) {
      hq.quantize_rms_norm(in, weight, config.dim, config.norm_eps, hp, stream);
      return products(ws, hp, &hq, y);
    }
    const bool floats = std::all_of(ws.begin(), ws.end(), [](const DeviceMatrix& w) {
      return w.type == DType::F32 || w.type == DType::F16 || w.type == DType::BF16;
    });
    if (!floats) {
      rms_norm(in, weight, hp, 1, config.dim, config.norm_eps, stream);
      return products(ws, hp, nullptr, y);
    }
    for (const DeviceMatrix& w : ws) {
      matvec_rms_norm(w, in, weight, config.norm_eps, y, stream);
      y += w.n_out;
    }
  }
  // The attention shape and RoPE frequencies of a layer (a sliding layer's window and base).
  AttentionShape layer_shape(const Layer& layer) const {
    AttentionShape a = shape;
    a.sliding_window = layer.sliding ? config.sliding_window : 0;
    return a;
  }
  const float* layer_freq(const Layer& layer) const {
    return layer.sliding && inv_freq_local.data() != nullptr ? inv_freq_local.as<float>() : inv_freq.as<float>();
  }
  // x (+)= out, n rows of dim: after the post-norm when the layer has one (out is normalized in place).
  void residual(float* x, float* out, const DeviceBuffer& post_norm, int64_t n) {
    rms_norm(out, post_norm.as<float>(), out, n, config.dim, config.norm_eps, stream);
    add(x, out, n * config.dim, stream);
  }
  // Qwen3's per-head norms of q and k, in place in rows of [q | k | v] (nothing without them).
  void qk_norms(const Layer& layer, float* rows, int64_t n, int64_t stride) {
    if (layer.qk_norm.data() == nullptr) return;
    const float* w = layer.qk_norm.as<float>();
    head_rms_norm(rows, n, stride, config.n_heads, config.n_kv_heads, config.head_dim, w, w + config.head_dim,
                  config.norm_eps, stream);
  }
  // y = rms_norm(x) * weight [dim]; with `rounded`, also its 8-bit rounding (one kernel for both).
  const QuantizedVector* norm(const float* x, const float* weight, float* y, bool rounded) {
    if (!rounded) {
      rms_norm(x, weight, y, 1, config.dim, config.norm_eps, stream);
      return nullptr;
    }
    hq.quantize_rms_norm(x, weight, config.dim, config.norm_eps, y, stream);
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
                           config.attention_scale > 0.0f ? config.attention_scale
                                                         : 1.0f / std::sqrt(float(config.head_dim))};
  s.token_embd = upload(weights.token_embd, config.vocab_size, config.dim, "token_embd");
  s.output = upload(weights.output, config.vocab_size, config.dim, "output");
  s.output_norm = upload_floats(weights.output_norm, config.dim, "output_norm");
  s.inv_freq = upload_floats(config.inv_freq.data(), int64_t(config.inv_freq.size()), "inv_freq");
  if (!config.inv_freq_local.empty()) {
    if (config.inv_freq_local.size() != config.inv_freq.size()) {
      fail(ErrorKind::invalid_argument, "CUDA decoder: expected {} local inverse frequencies, found {}",
           config.inv_freq.size(), config.inv_freq_local.size());
    }
    s.inv_freq_local = upload_floats(config.inv_freq_local.data(), int64_t(config.inv_freq_local.size()), "inv_freq_local");
  }
  if (!config.layer_sliding.empty() && int64_t(config.layer_sliding.size()) != config.n_layers) {
    fail(ErrorKind::invalid_argument, "CUDA decoder: expected {} layer_sliding entries, found {}", config.n_layers,
         config.layer_sliding.size());
  }
  if (config.kv_rows < 0) fail(ErrorKind::invalid_argument, "CUDA decoder: expected kv_rows >= 0, found {}", config.kv_rows);
  const int64_t cache_rows = config.kv_rows > 0 ? config.kv_rows : config.max_positions;
  const size_t kv_bytes = size_t(cache_rows * kv_dim) * (config.kv_type == DType::F16 ? 2 : 4);
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const DecoderLayerWeights& w = weights.layers[size_t(l)];
    const std::string name = "layer " + std::to_string(l) + " ";
    Layer layer;
    layer.attn_norm = upload_floats(w.attn_norm, config.dim, "attn_norm");
    layer.ffn_norm = upload_floats(w.ffn_norm, config.dim, "ffn_norm");
    if ((w.post_attn_norm == nullptr) != (w.post_ffn_norm == nullptr)) {
      fail(ErrorKind::invalid_argument, "CUDA decoder: {}expected both post-norm weights or neither", name);
    }
    if (w.post_attn_norm != nullptr) {
      layer.post_attn_norm = upload_floats(w.post_attn_norm, config.dim, "post_attn_norm");
      layer.post_ffn_norm = upload_floats(w.post_ffn_norm, config.dim, "post_ffn_norm");
    }
    layer.sliding = config.sliding_window > 0 && (config.layer_sliding.empty() || config.layer_sliding[size_t(l)] != 0);
    if (w.bq != nullptr || w.bk != nullptr || w.bv != nullptr) {
      std::vector<float> bias(size_t(q_dim + 2 * kv_dim), 0.0f);
      if (w.bq != nullptr) std::copy(w.bq, w.bq + q_dim, bias.begin());
      if (w.bk != nullptr) std::copy(w.bk, w.bk + kv_dim, bias.begin() + q_dim);
      if (w.bv != nullptr) std::copy(w.bv, w.bv + kv_dim, bias.begin() + q_dim + kv_dim);
      layer.bias = upload_floats(bias.data(), int64_t(bias.size()), "q/k/v biases");
    }
    if ((w.q_norm == nullptr) != (w.k_norm == nullptr)) {
      fail(ErrorKind::invalid_argument, "CUDA decoder: {}expected both q and k norm weights or neither", name);
    }
    if (w.q_norm != nullptr) {
      // The norms act on the projections as they come out; a bias before them is not supported.
      if (layer.bias.data() != nullptr) {
        fail(ErrorKind::unsupported, "CUDA decoder: {}has q/k/v biases and q/k norms", name);
      }
      std::vector<float> norms(w.q_norm, w.q_norm + config.head_dim);
      norms.insert(norms.end(), w.k_norm, w.k_norm + config.head_dim);
      layer.qk_norm = upload_floats(norms.data(), int64_t(norms.size()), "q/k norms");
    }
    layer.qkv = upload_stacked({w.wq, w.wk, w.wv}, {q_dim, kv_dim, kv_dim}, config.dim, name + "wq/wk/wv");
    layer.wo = upload(w.wo, config.dim, q_dim, name + "wo");
    layer.gate_up = upload_stacked({w.w_gate, w.w_up}, {config.ffn_dim, config.ffn_dim}, config.dim,
                                   name + "w_gate/w_up");
    layer.w_down = upload(w.w_down, config.dim, config.ffn_dim, name + "w_down");
    layer.k_cache = DeviceBuffer(kv_bytes);
    layer.v_cache = DeviceBuffer(kv_bytes);
    s.layers.push_back(std::move(layer));
  }
  const auto floats = [](int64_t n) { return DeviceBuffer(size_t(n) * 4); };
  s.x = floats(config.dim);
  s.h = floats(config.dim);
  s.qkv = floats(q_dim + 2 * kv_dim);
  s.attn = floats(q_dim);
  s.gate_up = floats(2 * config.ffn_dim);
  s.logits = floats(config.vocab_size);
  s.scratch = floats(int64_t(attention_scratch_floats(s.shape, config.max_positions)));
  s.scratch.fill_bytes(0);
  s.io = DeviceBuffer(3 * sizeof(int32_t));
  s.argmax_scratch = DeviceBuffer(argmax_scratch_bytes());
  s.argmax_scratch.fill_bytes(0);
  detail::check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  detail::check(cudaMallocHost(reinterpret_cast<void**>(&s.host_io), 3 * sizeof(int32_t)), "cudaMallocHost");
  detail::check(cudaMallocHost(reinterpret_cast<void**>(&s.host_logits), size_t(config.vocab_size) * sizeof(float)),
                "cudaMallocHost logits");
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
  float* q = qkv.as<float>();
  float* gate = gate_up.as<float>();
  float* up = gate + c.ffn_dim;
  embedding(token_embd, token, 1, xp, stream);                                      // x [dim]
  if (c.embedding_scale > 0.0f) scale(xp, c.embedding_scale, c.dim, stream);
  for (Layer& layer : layers) {
    const bool post = layer.post_attn_norm.data() != nullptr;
    normed_products(layer.qkv, xp, layer.attn_norm.as<float>(), q);                 // [q | k | v] of rms_norm(x)
    qk_norms(layer, q, 1, q_dim + 2 * kv_dim);
    qkv_rows(q, layer.bias.as<float>(), 1, c.n_heads, c.n_kv_heads, c.head_dim, rope_dim, pos, 0, layer_freq(layer),
             c.rope_interleaved, layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim, c.max_positions,
             c.rope_cos_sin_scale, stream);  // bias, RoPE of q and k, k and v into the cache
    attention_decode(q, layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim, pos, c.max_positions,
                     layer_shape(layer), scratch.as<float>(), attn.as<float>(), stream);  // attn [q_dim]
    const QuantizedVector* attn_q = quantized(attn.as<float>(), q_dim, int8({layer.wo}, q_dim));
    if (post) {  // h = wo attn, then x += post_norm(h)
      product(layer.wo, attn.as<float>(), attn_q, hp);
      residual(xp, hp, layer.post_attn_norm, 1);
    } else {
      product(layer.wo, attn.as<float>(), attn_q, xp, true);                         // x += wo attn
    }
    normed_products(layer.gate_up, xp, layer.ffn_norm.as<float>(), gate);           // [gate | up] of rms_norm(x)
    float* mlp_out = post ? hp : xp;
    if (c.gelu) {                                                                    // gelu(gate) * up
      gelu_tanh_mul(gate, up, c.ffn_dim, stream);
      product(layer.w_down, gate, quantized(gate, c.ffn_dim, int8({layer.w_down}, c.ffn_dim)), mlp_out, !post);
    } else if (int8({layer.w_down}, c.ffn_dim)) {                                    // silu(gate) * up, rounded
      hq.quantize_silu_mul(gate, up, c.ffn_dim, stream);
      product(layer.w_down, gate, &hq, mlp_out, !post);                              // x += w_down mlp
    } else {
      matvec_silu_mul(layer.w_down, gate, up, mlp_out, stream, !post);              // the same, unrounded
    }
    if (post) residual(xp, hp, layer.post_ffn_norm, 1);
  }
  const QuantizedVector* hq_out = norm(xp, output_norm.as<float>(), hp, int8({output}, c.dim));
  product(output, hp, hq_out, logits.as<float>());                                  // logits [vocab]
  argmax(logits.as<float>(), c.vocab_size, next, argmax_scratch.data(), stream);
}

int32_t LlamaDecoder::step(int32_t token, int32_t position, float* logits) {
  State& s = *state_;
  const DecoderConfig& c = s.config;
  if (c.kv_rows > 0) fail(ErrorKind::invalid_argument, "CUDA decoder: a paged cache runs forward_paged, not step");
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
      cudaError_t status = programmatic_edges_wanted() ? make_edges_programmatic(graph) : cudaSuccess;
      if (status == cudaSuccess) status = cudaGraphInstantiate(&s.graph, graph, 0);
      cudaGraphDestroy(graph);
      detail::check(status, "cudaGraphInstantiate");
    }
    detail::check(cudaGraphLaunch(s.graph, s.stream), "cudaGraphLaunch");
  }
  detail::check(cudaMemcpyAsync(s.host_io + 2, s.io.as<int32_t>() + 2, sizeof(int32_t), cudaMemcpyDeviceToHost, s.stream),
                "cudaMemcpyAsync next token");
  if (logits != nullptr) {  // through pinned memory: a direct copy to pageable memory is slower
    detail::check(cudaMemcpyAsync(s.host_logits, s.logits.data(), size_t(c.vocab_size) * sizeof(float),
                                  cudaMemcpyDeviceToHost, s.stream),
                  "cudaMemcpyAsync logits");
  }
  detail::check(cudaStreamSynchronize(s.stream), "decode step");
  if (logits != nullptr) std::memcpy(logits, s.host_logits, size_t(c.vocab_size) * sizeof(float));
  return s.host_io[2];
}

bool LlamaDecoder::prefill_supported() const { return attention_rows_supported(state_->config.head_dim); }

void LlamaDecoder::State::rows_forward(int64_t n, const std::function<void(Layer&, float*)>& attend) {
  const DecoderConfig& c = config;
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t qkv_dim = q_dim + 2 * kv_dim;
  float* xp = px.as<float>();
  float* hp = ph.as<float>();
  embedding(token_embd, ptokens.as<int32_t>(), n, xp, stream);
  if (c.embedding_scale > 0.0f) scale(xp, c.embedding_scale, n * c.dim, stream);
  for (Layer& layer : layers) {
    const bool post = layer.post_attn_norm.data() != nullptr;
    rms_norm(xp, layer.attn_norm.as<float>(), hp, n, c.dim, c.norm_eps, stream);
    row_products(layer.qkv, hp, n, pqkv.as<float>(), qkv_dim);
    qk_norms(layer, pqkv.as<float>(), n, qkv_dim);
    attend(layer, pqkv.as<float>());
    if (post) {  // h = attn wo^T, then x += post_norm(h)
      blas->matmul(layer.wo, pattn.as<float>(), n, hp, stream, false);
      residual(xp, hp, layer.post_attn_norm, n);
    } else {
      blas->matmul(layer.wo, pattn.as<float>(), n, xp, stream, true);  // x += attn wo^T
    }
    rms_norm(xp, layer.ffn_norm.as<float>(), hp, n, c.dim, c.norm_eps, stream);
    row_products(layer.gate_up, hp, n, pgate_up.as<float>(), 2 * c.ffn_dim);
    if (c.gelu) {
      gelu_tanh_mul_rows(pgate_up.as<float>(), n, c.ffn_dim, pmlp.as<float>(), stream);
    } else {
      silu_mul_rows(pgate_up.as<float>(), n, c.ffn_dim, pmlp.as<float>(), stream);
    }
    if (post) {
      blas->matmul(layer.w_down, pmlp.as<float>(), n, hp, stream, false);
      residual(xp, hp, layer.post_ffn_norm, n);
    } else {
      blas->matmul(layer.w_down, pmlp.as<float>(), n, xp, stream, true);  // x += mlp w_down^T
    }
  }
  rms_norm(xp, output_norm.as<float>(), hp, n, c.dim, c.norm_eps, stream);
}

void LlamaDecoder::State::prefill_chunk(int64_t n, int64_t position) {
  const DecoderConfig& c = config;
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t rope_dim = int64_t(c.inv_freq.size()) * 2;
  rows_forward(n, [&](Layer& layer, float* rows) {
    qkv_rows(rows, layer.bias.as<float>(), n, c.n_heads, c.n_kv_heads, c.head_dim, rope_dim, nullptr, position,
             layer_freq(layer), c.rope_interleaved, layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim,
             c.max_positions, c.rope_cos_sin_scale, stream);
    attention_rows(rows, q_dim + 2 * kv_dim, layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim, n,
                   position, c.max_positions, layer_shape(layer), pattn.as<float>(), q_dim, stream);
  });
}

void LlamaDecoder::State::ensure_rows() {
  if (chunk != 0) return;
  const DecoderConfig& c = config;
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  chunk = c.kv_rows > 0 ? kChunk : std::min(kChunk, c.max_positions);
  const auto rows = [&](int64_t width) { return DeviceBuffer(size_t(chunk * width) * 4); };
  px = rows(c.dim);
  ph = rows(c.dim);
  pqkv = rows(q_dim + 2 * kv_dim);
  pattn = rows(q_dim);
  pgate_up = rows(2 * c.ffn_dim);
  pmlp = rows(c.ffn_dim);
  ptokens = rows(1);
  blas = std::make_unique<Blas>();
}

void LlamaDecoder::State::ensure_stage(size_t ints) {
  if (ints <= stage_ints) return;
  if (host_stage != nullptr) {
    detail::check(cudaStreamSynchronize(stream), "stage");
    cudaFreeHost(host_stage);
    host_stage = nullptr;
  }
  const size_t n = std::max(ints, size_t(4096));
  detail::check(cudaMallocHost(reinterpret_cast<void**>(&host_stage), n * sizeof(int32_t)), "cudaMallocHost stage");
  stage = DeviceBuffer(n * sizeof(int32_t));
  stage_ints = n;
}

void LlamaDecoder::State::gather_outputs(const int64_t* outputs, int64_t n_out, float* out, bool hidden,
                                         const PagedTop* top) {
  const DecoderConfig& c = config;
  const float* hp = ph.as<float>();
  if (hidden) {
    for (int64_t i = 0; i < n_out; ++i) {
      detail::check(cudaMemcpyAsync(out + i * c.dim, hp + outputs[i] * c.dim, size_t(c.dim) * 4, cudaMemcpyDeviceToHost,
                                    stream),
                    "cudaMemcpyAsync hidden");
    }
    return;
  }
  const size_t row_bytes = size_t(c.vocab_size) * 4;
  if (plogits.data() == nullptr) plogits = DeviceBuffer(size_t(kLogitRows) * row_bytes);
  if (host_rows == nullptr) {
    detail::check(cudaMallocHost(reinterpret_cast<void**>(&host_rows), size_t(kLogitRows) * row_bytes),
                  "cudaMallocHost logits rows");
  }
  const int k = top != nullptr ? top->k_max : 0;
  const int64_t top_floats = 1 + 2 * int64_t(k);  // per row: lse, ids, values
  if (k > 0 && host_top == nullptr) {
    const size_t bytes = size_t(kLogitRows) * (1 + 2 * kTopLogitsMaxK) * 4;
    detail::check(cudaMallocHost(reinterpret_cast<void**>(&host_top), bytes), "cudaMallocHost top logits");
    ptop = DeviceBuffer(bytes);
    top_scratch = DeviceBuffer(top_logits_scratch_bytes(kLogitRows, c.vocab_size, kTopLogitsMaxK));
  }
  float* gathered = px.as<float>();  // x is not needed after the final norm
  for (int64_t i = 0; i < n_out; ++i) {
    detail::check(cudaMemcpyAsync(gathered + i * c.dim, hp + outputs[i] * c.dim, size_t(c.dim) * 4,
                                  cudaMemcpyDeviceToDevice, stream),
                  "cudaMemcpyAsync output row");
  }
  for (int64_t i0 = 0; i0 < n_out; i0 += kLogitRows) {
    const int64_t r = std::min(kLogitRows, n_out - i0);
    blas->matmul(output, gathered + i0 * c.dim, r, plogits.as<float>(), stream);
    // Whole rows for the outputs that need them (runs of consecutive ones in one copy each).
    for (int64_t j = 0; j < r;) {
      if (k > 0 && top->k[i0 + j] > 0) {
        ++j;
        continue;
      }
      int64_t e = j + 1;
      while (e < r && !(k > 0 && top->k[i0 + e] > 0)) ++e;
      detail::check(cudaMemcpyAsync(host_rows + j * c.vocab_size, plogits.as<float>() + j * c.vocab_size,
                                    size_t(e - j) * row_bytes, cudaMemcpyDeviceToHost, stream),
                    "cudaMemcpyAsync logits");
      j = e;
    }
    if (k > 0) {  // the summaries of every row of the group (cheap), copied in one piece
      float* d_lse = ptop.as<float>();
      auto* d_ids = reinterpret_cast<int32_t*>(d_lse + r);
      float* d_values = d_lse + r + r * k;
      top_logits(plogits.as<float>(), r, c.vocab_size, k, d_lse, d_ids, d_values, top_scratch.data(), stream);
      detail::check(cudaMemcpyAsync(host_top, d_lse, size_t(r * top_floats) * 4, cudaMemcpyDeviceToHost, stream),
                    "cudaMemcpyAsync top logits");
    }
    // The next group reuses plogits and the pinned buffers: its copies must be done first.
    detail::check(cudaStreamSynchronize(stream), "logits");
    for (int64_t j = 0; j < r; ++j) {
      const int64_t i = i0 + j;
      if (k > 0 && top->k[i] > 0) {
        top->lse[i] = host_top[j];
        std::memcpy(top->ids + i * k, host_top + r + j * k, size_t(k) * 4);
        std::memcpy(top->values + i * k, host_top + r + r * k + j * k, size_t(k) * 4);
      } else {
        std::memcpy(out + i * c.vocab_size, host_rows + j * c.vocab_size, row_bytes);
      }
    }
  }
}

int64_t LlamaDecoder::max_batch_rows() const { return State::kChunk; }

void LlamaDecoder::forward_paged(const PagedBatch& batch, float* out, bool hidden, const PagedTop* top) {
  State& s = *state_;
  const DecoderConfig& c = s.config;
  const int64_t n = batch.n_rows;
  if (c.kv_rows <= 0) fail(ErrorKind::invalid_argument, "CUDA decoder: forward_paged needs a paged cache (kv_rows)");
  if (!prefill_supported()) {
    fail(ErrorKind::unsupported, "CUDA batch: expected head_dim <= 256 (within the device's shared memory), found {}",
         c.head_dim);
  }
  if (n <= 0 || n > State::kChunk) {
    fail(ErrorKind::invalid_argument, "CUDA batch: expected 1 to {} rows, found {}", State::kChunk, n);
  }
  if (top != nullptr && (top->k_max < 1 || top->k_max > kTopLogitsMaxK || top->k == nullptr)) {
    fail(ErrorKind::invalid_argument, "CUDA batch: expected 1 to {} top logits per row, found {}", kTopLogitsMaxK,
         top->k_max);
  }
  const int64_t bs = batch.block_size;
  if (bs <= 0 || c.kv_rows % bs != 0) {
    fail(ErrorKind::invalid_argument, "CUDA batch: expected a block size dividing the cache's {} rows, found {}",
         c.kv_rows, bs);
  }
  const int64_t pool_blocks = c.kv_rows / bs;
  for (int64_t i = 0; i < n; ++i) {
    if (batch.tokens[i] < 0 || batch.tokens[i] >= c.vocab_size) {
      fail(ErrorKind::invalid_argument, "CUDA batch: expected tokens in [0, {}), found {}", c.vocab_size, batch.tokens[i]);
    }
  }
  // Staging: tokens [n] | positions [n] | cache rows [n] | tables | work items.
  size_t table_ints = 0;
  std::vector<AttentionSpan> spans;
  int64_t next_row = 0;
  for (int64_t i = 0; i < batch.n_sequences; ++i) {
    const PagedSequence& q = batch.sequences[i];
    if (q.row_begin != next_row || q.n_rows <= 0 || q.row_begin + q.n_rows > n) {
      fail(ErrorKind::invalid_argument, "CUDA batch: expected sequences covering rows in order, found rows [{}, {})",
           q.row_begin, q.row_begin + q.n_rows);
    }
    next_row = q.row_begin + q.n_rows;
    const int64_t p0 = batch.positions[q.row_begin];
    for (int64_t t = 0; t < q.n_rows; ++t) {
      if (batch.positions[q.row_begin + t] != p0 + t) {
        fail(ErrorKind::invalid_argument, "CUDA batch: expected consecutive positions within a sequence");
      }
    }
    if (p0 < 0 || p0 + q.n_rows > c.max_positions || (p0 + q.n_rows + bs - 1) / bs > q.n_blocks) {
      fail(ErrorKind::out_of_range, "CUDA batch: positions [{}, {}) pass the context {} or the sequence's {} blocks", p0,
           p0 + q.n_rows, c.max_positions, q.n_blocks);
    }
    for (int64_t b = 0; b < q.n_blocks; ++b) {
      if (q.blocks[b] < 0 || q.blocks[b] >= pool_blocks) {
        fail(ErrorKind::out_of_range, "CUDA batch: block {} outside the pool of {}", q.blocks[b], pool_blocks);
      }
    }
    spans.push_back({q.row_begin, q.n_rows, p0, int64_t(table_ints)});
    table_ints += size_t(q.n_blocks);
  }
  if (next_row != n) fail(ErrorKind::invalid_argument, "CUDA batch: expected every row in a sequence");
  for (int64_t i = 0; i < batch.n_outputs; ++i) {
    if (batch.outputs[i] < 0 || batch.outputs[i] >= n || (i > 0 && batch.outputs[i] <= batch.outputs[i - 1])) {
      fail(ErrorKind::invalid_argument, "CUDA batch: expected ascending output rows within the batch");
    }
  }
  const std::vector<AttentionWork> work = attention_work(spans);
  const size_t total = 3 * size_t(n) + table_ints + 4 * work.size();
  s.ensure_rows();
  s.ensure_stage(total);
  int32_t* h = s.host_stage;
  std::copy(batch.tokens, batch.tokens + n, h);
  std::copy(batch.positions, batch.positions + n, h + n);
  int32_t* tables = h + 3 * n;
  for (int64_t i = 0; i < batch.n_sequences; ++i) {
    const PagedSequence& q = batch.sequences[i];
    std::copy(q.blocks, q.blocks + q.n_blocks, tables + spans[size_t(i)].table);
    for (int64_t t = 0; t < q.n_rows; ++t) {
      const int64_t p = batch.positions[q.row_begin + t];
      h[2 * n + q.row_begin + t] = int32_t(int64_t(q.blocks[p / bs]) * bs + p % bs);
    }
  }
  std::memcpy(tables + table_ints, work.data(), work.size() * sizeof(AttentionWork));
  detail::check(cudaMemcpyAsync(s.stage.data(), h, total * sizeof(int32_t), cudaMemcpyHostToDevice, s.stream),
                "cudaMemcpyAsync batch");
  const int32_t* d = s.stage.as<int32_t>();
  detail::check(cudaMemcpyAsync(s.ptokens.data(), d, size_t(n) * 4, cudaMemcpyDeviceToDevice, s.stream),
                "cudaMemcpyAsync tokens");
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t rope_dim = int64_t(c.inv_freq.size()) * 2;
  const auto* d_work = reinterpret_cast<const AttentionWork*>(d + 3 * n + table_ints);
  s.rows_forward(n, [&](Layer& layer, float* rows) {
    qkv_rows_paged(rows, layer.bias.as<float>(), n, c.n_heads, c.n_kv_heads, c.head_dim, rope_dim, d + n, d + 2 * n,
                   s.layer_freq(layer), c.rope_interleaved, layer.k_cache.data(), layer.v_cache.data(), c.kv_type,
                   kv_dim, c.kv_rows, c.rope_cos_sin_scale, s.stream);
    attention_rows_paged(rows, q_dim + 2 * kv_dim, layer.k_cache.data(), layer.v_cache.data(), c.kv_type, kv_dim,
                         d_work, int64_t(work.size()), d + 3 * n, bs, s.layer_shape(layer), s.pattn.as<float>(), q_dim,
                         s.stream);
  });
  if (out != nullptr && batch.n_outputs > 0) s.gather_outputs(batch.outputs, batch.n_outputs, out, hidden, top);
  detail::check(cudaStreamSynchronize(s.stream), "batch");
}

int32_t LlamaDecoder::prefill(const int32_t* tokens, int64_t n, int32_t position, float* logits, bool all_logits) {
  State& s = *state_;
  const DecoderConfig& c = s.config;
  if (c.kv_rows > 0) fail(ErrorKind::invalid_argument, "CUDA decoder: a paged cache runs forward_paged, not prefill");
  if (n <= 0 || tokens == nullptr) fail(ErrorKind::invalid_argument, "CUDA prefill: expected tokens, found none");
  if (!prefill_supported()) {
    fail(ErrorKind::unsupported, "CUDA prefill: expected head_dim <= 256 (within the device's shared memory), found {}",
         c.head_dim);
  }
  if (position < 0 || int64_t(position) + n > c.max_positions) {
    fail(ErrorKind::out_of_range, "CUDA prefill: positions [{}, {}) pass the cache of {}", position,
         int64_t(position) + n, c.max_positions);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
      fail(ErrorKind::invalid_argument, "CUDA prefill: expected tokens in [0, {}), found {}", c.vocab_size, tokens[i]);
    }
  }
  s.ensure_rows();
  if (all_logits && logits != nullptr && s.plogits.data() == nullptr) {
    s.plogits = DeviceBuffer(size_t(State::kLogitRows * c.vocab_size) * 4);
  }
  int32_t next = -1;
  for (int64_t done = 0; done < n;) {
    const int64_t rows = std::min(s.chunk, n - done);
    detail::check(cudaMemcpyAsync(s.ptokens.data(), tokens + done, size_t(rows) * 4, cudaMemcpyHostToDevice, s.stream),
                  "cudaMemcpyAsync prompt tokens");
    s.prefill_chunk(rows, position + done);
    if (all_logits && logits != nullptr) {
      for (int64_t r0 = 0; r0 < rows; r0 += State::kLogitRows) {
        const int64_t r = std::min(State::kLogitRows, rows - r0);
        s.blas->matmul(s.output, s.ph.as<float>() + r0 * c.dim, r, s.plogits.as<float>(), s.stream);
        detail::check(cudaMemcpyAsync(logits + (done + r0) * c.vocab_size, s.plogits.data(),
                                      size_t(r * c.vocab_size) * 4, cudaMemcpyDeviceToHost, s.stream),
                      "cudaMemcpyAsync prompt logits");
      }
    }
    done += rows;
    if (done == n) {  // the last row's logits and greedy token through the decode step's buffers
      const float* last = s.ph.as<float>() + (rows - 1) * c.dim;
      detail::check(cudaMemcpyAsync(s.h.data(), last, size_t(c.dim) * 4, cudaMemcpyDeviceToDevice, s.stream),
                    "cudaMemcpyAsync last row");
      s.product(s.output, s.h.as<float>(), s.quantized(s.h.as<float>(), c.dim, s.int8({s.output}, c.dim)),
                s.logits.as<float>());
      argmax(s.logits.as<float>(), c.vocab_size, s.io.as<int32_t>() + 2, s.argmax_scratch.data(), s.stream);
      detail::check(cudaMemcpyAsync(s.host_io + 2, s.io.as<int32_t>() + 2, sizeof(int32_t), cudaMemcpyDeviceToHost,
                                    s.stream),
                    "cudaMemcpyAsync next token");
      if (logits != nullptr && !all_logits) {
        detail::check(cudaMemcpyAsync(logits, s.logits.data(), size_t(c.vocab_size) * 4, cudaMemcpyDeviceToHost,
                                      s.stream),
                      "cudaMemcpyAsync logits");
      }
      detail::check(cudaStreamSynchronize(s.stream), "prefill");
      next = s.host_io[2];
    }
  }
  return next;
}

}  // namespace slm::cuda
