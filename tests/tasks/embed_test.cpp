// Embedding parity with transformers (tools/ref/make_encoder_fixtures.py): a random-weight BERT
// (CLS and mean pooling, WordPiece ids, truncation) and a Qwen3-Embedding-shaped decoder
// (last-token pooling); pooling settings from sentence-transformers files; `slm embed` end to end.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/vectors.hpp"
#include "slm/engine/encoder.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/format/gguf.hpp"
#include "slm/format/safetensors.hpp"
#include "slm/model/model.hpp"
#include "slm/server/engine_provider.hpp"
#include "slm/tasks/embed.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kModels = std::string(SLM_TEST_DATA) + "/models";

using slm_test::cosine;
using slm_test::norm;
using slm_test::read_json;

// Relative L2 distance: stricter than the cosine (it also sees the scale).
double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double d = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    r += double(ref[i]) * ref[i];
  }
  return std::sqrt(d / r);
}

TEST(Encoder, BertFixtureMatchesTransformers) {
  const auto enc = Encoder::load(kModels + "/bert_tiny");
  ASSERT_NE(enc->tokenizer(), nullptr);
  EXPECT_EQ(enc->config().dim, 32);
  EXPECT_EQ(enc->config().n_layers, 2);
  const json ref = read_json(kModels + "/bert_tiny/reference.json");
  const auto max_len = ref["max_seq_length"].get<size_t>();
  const auto& items = ref["items"];
  ASSERT_GE(items.size(), 12u);
  std::vector<std::vector<int32_t>> seqs;
  for (const json& item : items) {
    const auto ids = item["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(enc->tokenizer()->encode(item["text"].get<std::string>(), true, max_len), ids) << item["text"];
    seqs.push_back(ids);
  }
  const auto cls = enc->embed(seqs, Pooling::cls, false);
  const auto mean = enc->embed(seqs, Pooling::mean, false);
  double worst = 1.0;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto ref_cls = items[i]["cls"].get<std::vector<float>>();
    const auto ref_mean = items[i]["mean"].get<std::vector<float>>();
    worst = std::min({worst, cosine(cls[i], ref_cls), cosine(mean[i], ref_mean)});
    EXPECT_GT(cosine(cls[i], ref_cls), 0.9999) << i;
    EXPECT_GT(cosine(mean[i], ref_mean), 0.9999) << i;
    EXPECT_LT(rel_l2(cls[i], ref_cls), 1e-4) << i;
    EXPECT_LT(rel_l2(mean[i], ref_mean), 1e-4) << i;
  }
  // The texts are told apart: CLS vectors of different texts are far from each other.
  EXPECT_LT(cosine(cls[0], cls[1]), 0.99);
  // One sequence at a time gives what the batch gave (attention stays within each sequence).
  for (size_t i : {size_t(0), size_t(5), items.size() - 1}) {
    const auto one = enc->embed({seqs[i]}, Pooling::mean, false);
    EXPECT_LT(rel_l2(one[0], mean[i]), 1e-5);
  }
}

// A model folder written as llama.cpp writes GGUF files of architecture `arch` ("bert" or
// "nomic-bert"): tensor names, keys, the "▁" vocabulary, pooling_type.
std::string write_encoder_gguf(const std::string& folder, const std::string& arch, uint32_t pooling_type,
                               const fs::path& dir) {
  const auto archive = safetensors::Archive::open(folder);
  const auto model = Encoder::load(folder);
  const auto& c = model->config();
  gguf::Writer w;
  w.set("general.architecture", gguf::Value::of_string(arch));
  w.set(arch + ".embedding_length", gguf::Value::of_u32(uint32_t(c.dim)));
  w.set(arch + ".block_count", gguf::Value::of_u32(uint32_t(c.n_layers)));
  w.set(arch + ".feed_forward_length", gguf::Value::of_u32(uint32_t(c.ffn_dim)));
  w.set(arch + ".attention.head_count", gguf::Value::of_u32(uint32_t(c.n_heads)));
  w.set(arch + ".attention.layer_norm_epsilon", gguf::Value::of_f32(c.norm_eps));
  w.set(arch + ".context_length", gguf::Value::of_u32(uint32_t(c.max_positions)));
  w.set(arch + ".pooling_type", gguf::Value::of_u32(pooling_type));
  if (c.rotary) w.set(arch + ".rope.freq_base", gguf::Value::of_f32(c.rope_theta));
  const WordPieceTokenizer& tok = *model->tokenizer();
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (size_t i = 0; i < tok.vocab_size(); ++i) {
    const std::string& t = tok.data().tokens[i];
    const bool control = t.size() > 2 && t.front() == '[' && t.back() == ']';
    types.push_back(control ? 3 : 1);
    tokens.push_back(control ? t : t.starts_with("##") ? t.substr(2) : "\xE2\x96\x81" + t);
  }
  w.set("tokenizer.ggml.model", gguf::Value::of_string("bert"));
  w.set("tokenizer.ggml.tokens", gguf::Value::of_strings(tokens));
  w.set("tokenizer.ggml.token_type", gguf::Value::of_i32s(types));
  w.set("tokenizer.ggml.unknown_token_id", gguf::Value::of_u32(uint32_t(tok.unk_id())));
  w.set("tokenizer.ggml.cls_token_id", gguf::Value::of_u32(uint32_t(tok.token_id("[CLS]"))));
  w.set("tokenizer.ggml.seperator_token_id", gguf::Value::of_u32(uint32_t(tok.token_id("[SEP]"))));
  std::vector<std::vector<float>> keep;
  size_t n_tensors = 0;
  for (const auto& t : archive.tensors()) {
    const std::string name = c.rotary ? nomic_bert_tensor_name(t.name) : bert_tensor_name(t.name);
    if (name.empty()) continue;
    std::vector<float> data(t.n_bytes / sizeof(float));
    std::memcpy(data.data(), t.data, t.n_bytes);
    keep.push_back(std::move(data));
    std::vector<uint64_t> dims(t.shape.rbegin(), t.shape.rend());
    w.add_tensor(name, DType::F32, dims, keep.back().data());
    ++n_tensors;
  }
  const auto layers = size_t(c.n_layers);
  EXPECT_EQ(n_tensors, c.rotary ? 4u + 9u * layers : 5u + 16u * layers);
  fs::create_directories(dir);
  const std::string path = (dir / (arch + ".gguf")).string();
  w.write(path);
  return path;
}

// The fixtures as GGUF files give the same ids, embeddings and pooling as their folders.
TEST(Encoder, GgufFileMatchesTransformers) {
  const fs::path dir = fs::temp_directory_path() / ("slm_bert_gguf_" + std::to_string(::getpid()));
  struct Case {
    const char* folder;
    const char* arch;
    uint32_t pooling_type;
    Pooling pooling;
    const char* key;
  };
  for (const Case& k : {Case{"bert_tiny", "bert", 2, Pooling::cls, "cls"},
                        Case{"nomic_bert_tiny", "nomic-bert", 1, Pooling::mean, "mean"}}) {
    const std::string path = write_encoder_gguf(kModels + "/" + k.folder, k.arch, k.pooling_type, dir);
    const auto folder = Encoder::load(kModels + "/" + k.folder);
    EXPECT_TRUE(Encoder::is_encoder(path));
    const auto enc = Encoder::load(path);
    EXPECT_EQ(enc->config().vocab_size, folder->config().vocab_size);
    EXPECT_EQ(enc->config().max_positions, folder->config().max_positions);
    EXPECT_EQ(enc->config().type_vocab_size, folder->config().type_vocab_size);
    EXPECT_EQ(enc->config().rotary, folder->config().rotary);
    EXPECT_EQ(read_pooling_config(path, Pooling::last).mode, k.pooling);
    const json ref = read_json(kModels + "/" + k.folder + "/reference.json");
    for (const json& item : ref["items"]) {
      const std::string text = item["text"].get<std::string>();
      const auto ids = enc->tokenizer()->encode(text, true, ref["max_seq_length"].get<size_t>());
      EXPECT_EQ(ids, item["ids"].get<std::vector<int32_t>>()) << text;
      const auto v = enc->embed({ids}, k.pooling, false);
      EXPECT_GT(cosine(v[0], item[k.key].get<std::vector<float>>()), 0.9999) << k.arch << ": " << text;
    }
  }
  fs::remove_all(dir);
}

// nomic_bert (nomic-embed-text's architecture: rotary positions, fused Wqkv, SwiGLU, no biases)
// against the independent float64 forward of tools/ref/make_encoder_fixtures.py.
TEST(Encoder, NomicBertMatchesReference) {
  const auto enc = Encoder::load(kModels + "/nomic_bert_tiny");
  EXPECT_TRUE(enc->config().rotary);
  EXPECT_TRUE(enc->config().gated_mlp);
  EXPECT_EQ(enc->config().rope_dim, 8);
  EXPECT_FLOAT_EQ(enc->config().rope_theta, 1000.0f);
  const json ref = read_json(kModels + "/nomic_bert_tiny/reference.json");
  std::vector<std::vector<int32_t>> seqs;
  for (const json& item : ref["items"]) seqs.push_back(item["ids"].get<std::vector<int32_t>>());
  const auto mean = enc->embed(seqs, Pooling::mean, false);
  const auto cls = enc->embed(seqs, Pooling::cls, false);
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_GT(cosine(mean[i], ref["items"][i]["mean"].get<std::vector<float>>()), 0.9999) << i;
    EXPECT_LT(rel_l2(mean[i], ref["items"][i]["mean"].get<std::vector<float>>()), 1e-4) << i;
    EXPECT_LT(rel_l2(cls[i], ref["items"][i]["cls"].get<std::vector<float>>()), 1e-4) << i;
  }
  tasks::Embedder embedder(kModels + "/nomic_bert_tiny", {});
  EXPECT_EQ(embedder.pooling(), Pooling::mean);
  const auto out = embedder.embed({ref["items"][3]["text"].get<std::string>()});
  EXPECT_GT(cosine(out[0].vector, ref["items"][3]["mean"].get<std::vector<float>>()), 0.9999);
  EXPECT_EQ(nomic_bert_tensor_name("encoder.layers.3.mlp.fc12.weight"), "blk.3.ffn_gate.weight");
  EXPECT_EQ(nomic_bert_tensor_name("encoder.layers.0.attn.Wqkv.weight"), "blk.0.attn_qkv.weight");
  EXPECT_EQ(nomic_bert_tensor_name("emb_ln.bias"), "token_embd_norm.bias");
  EXPECT_EQ(nomic_bert_tensor_name("encoder.layers.0.attn.rotary_emb.inv_freq"), "");
}

TEST(Encoder, RejectsBadInputs) {
  const auto enc = Encoder::load(kModels + "/bert_tiny");
  EXPECT_THROW(enc->forward({{}}), Error);
  EXPECT_THROW(enc->forward({{2, int32_t(enc->config().vocab_size), 3}}), Error);
  EXPECT_THROW(enc->forward({std::vector<int32_t>(size_t(enc->config().max_positions) + 1, 5)}), Error);
  EXPECT_THROW(Encoder::load(kModels + "/qwen3_embed_tiny"), Error);  // not a BERT config
  EXPECT_FALSE(Encoder::is_encoder(kModels + "/qwen3_embed_tiny"));
  EXPECT_TRUE(Encoder::is_encoder(kModels + "/bert_tiny"));
}

TEST(Encoder, TensorNames) {
  EXPECT_EQ(bert_tensor_name("embeddings.word_embeddings.weight"), "token_embd.weight");
  EXPECT_EQ(bert_tensor_name("bert.embeddings.LayerNorm.gamma"), "token_embd_norm.weight");
  EXPECT_EQ(bert_tensor_name("encoder.layer.11.attention.output.LayerNorm.bias"), "blk.11.attn_output_norm.bias");
  EXPECT_EQ(bert_tensor_name("encoder.layer.0.output.dense.weight"), "blk.0.ffn_down.weight");
  EXPECT_EQ(bert_tensor_name("encoder.layer.0.intermediate.dense.bias"), "blk.0.ffn_up.bias");
  EXPECT_EQ(bert_tensor_name("pooler.dense.weight"), "");
  EXPECT_EQ(bert_tensor_name("encoder.layer.x.output.dense.weight"), "");
}

TEST(Pooling, ReadsSentenceTransformersFiles) {
  const PoolingConfig bert = read_pooling_config(kModels + "/bert_tiny", Pooling::mean);
  EXPECT_TRUE(bert.from_model);
  EXPECT_EQ(bert.mode, Pooling::cls);
  EXPECT_TRUE(bert.normalize);
  EXPECT_EQ(bert.max_seq_length, 48);
  const PoolingConfig qwen = read_pooling_config(kModels + "/qwen3_embed_tiny", Pooling::mean);
  EXPECT_EQ(qwen.mode, Pooling::last);
  const PoolingConfig none = read_pooling_config(kModels + "/qwen3", Pooling::mean);
  EXPECT_FALSE(none.from_model);
  EXPECT_EQ(none.mode, Pooling::mean);

  const fs::path dir = fs::temp_directory_path() / ("slm_pool_" + std::to_string(::getpid()));
  fs::create_directories(dir / "1_Pooling");
  std::ofstream(dir / "modules.json") << R"([{"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])";
  std::ofstream(dir / "1_Pooling" / "config.json") << R"({"pooling_mode_max_tokens": true})";
  EXPECT_THROW(read_pooling_config(dir.string(), Pooling::mean), Error);
  std::ofstream(dir / "1_Pooling" / "config.json") << R"({"pooling_mode_mean_tokens": true})";
  const PoolingConfig mean = read_pooling_config(dir.string(), Pooling::cls);
  EXPECT_EQ(mean.mode, Pooling::mean);
  EXPECT_FALSE(mean.normalize);  // no Normalize module
  fs::remove_all(dir);
}

TEST(Pooling, PoolRows) {
  const std::vector<float> rows = {1, 2, 3, 4, -2, 6};  // 3 rows of 2
  EXPECT_EQ(pool_rows(rows.data(), 3, 2, Pooling::cls, false), (std::vector<float>{1, 2}));
  EXPECT_EQ(pool_rows(rows.data(), 3, 2, Pooling::last, false), (std::vector<float>{-2, 6}));
  EXPECT_EQ(pool_rows(rows.data(), 3, 2, Pooling::mean, false), (std::vector<float>{2.0f / 3.0f, 4}));
  const auto n = pool_rows(rows.data(), 3, 2, Pooling::last, true);
  EXPECT_NEAR(n[0], -2 / std::sqrt(40.0), 1e-6);
  EXPECT_NEAR(norm(n), 1.0, 1e-6);
  EXPECT_EQ(parse_pooling("lasttoken"), Pooling::last);
  EXPECT_THROW(parse_pooling("max"), Error);
  EXPECT_THROW(pool_rows(rows.data(), 0, 2, Pooling::mean, false), Error);
}

TEST(Embedder, BertUsesTheModelsPooling) {
  tasks::Embedder embedder(kModels + "/bert_tiny", {});
  EXPECT_TRUE(embedder.is_encoder());
  EXPECT_EQ(embedder.pooling(), Pooling::cls);
  EXPECT_TRUE(embedder.normalize());
  EXPECT_EQ(embedder.max_tokens(), 48);
  const json ref = read_json(kModels + "/bert_tiny/reference.json");
  std::vector<std::string> texts;
  for (const json& item : ref["items"]) texts.push_back(item["text"].get<std::string>());
  const auto out = embedder.embed(texts);
  ASSERT_EQ(out.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_NEAR(norm(out[i].vector), 1.0, 1e-5);
    EXPECT_GT(cosine(out[i].vector, ref["items"][i]["cls"].get<std::vector<float>>()), 0.9999) << i;
    EXPECT_EQ(out[i].tokens, int64_t(ref["items"][i]["ids"].size()));
  }
  EXPECT_TRUE(out.back().truncated);
  EXPECT_FALSE(out.front().truncated);

  tasks::EmbedOptions o;
  o.pooling = Pooling::mean;
  o.normalize = false;
  o.batch_tokens = 20;  // several batches
  tasks::Embedder mean(kModels + "/bert_tiny", o);
  const auto m = mean.embed(texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_LT(rel_l2(m[i].vector, ref["items"][i]["mean"].get<std::vector<float>>()), 1e-4) << i;
  }
}

TEST(Embedder, Qwen3EmbeddingLastToken) {
  const auto model = Model::load(kModels + "/qwen3_embed_tiny");
  EXPECT_EQ(model->config().arch, "qwen3");
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 256;
  Scheduler scheduler(model, so);
  const json ref = read_json(kModels + "/qwen3_embed_tiny/reference.json");
  ASSERT_GE(ref["items"].size(), 12u);
  for (const json& item : ref["items"]) {
    const auto ids = item["ids"].get<std::vector<int32_t>>();
    const auto last = scheduler.embed(ids, Pooling::last, false).get();
    const auto mean = scheduler.embed(ids, Pooling::mean, false).get();
    EXPECT_GT(cosine(last, item["lasttoken"].get<std::vector<float>>()), 0.9999) << ids.size();
    EXPECT_LT(rel_l2(last, item["lasttoken"].get<std::vector<float>>()), 1e-4) << ids.size();
    EXPECT_LT(rel_l2(mean, item["mean"].get<std::vector<float>>()), 1e-4) << ids.size();
    const auto normalized = scheduler.embed(ids, Pooling::last, true).get();
    EXPECT_NEAR(norm(normalized), 1.0, 1e-5);
  }
}

// A byte-level tokenizer of exactly 256 tokens (GPT-2's byte alphabet, no merges), so that a copy of
// the Qwen3-Embedding fixture can be served.
std::string byte_tokenizer_json() {
  json vocab = json::object();
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
    std::string piece;
    if (cp < 0x80) {
      piece.push_back(char(cp));
    } else {
      piece.push_back(char(0xC0 | (cp >> 6)));
      piece.push_back(char(0x80 | (cp & 0x3F)));
    }
    vocab[piece] = b;
  }
  return json({{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
               {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
               {"decoder", {{"type", "ByteLevel"}}},
               {"added_tokens", json::array()}})
      .dump();
}

struct CollectSink : server::ResponseSink {
  std::promise<json> result;
  void finish_json(const json& body) override { result.set_value(body); }
  void send_event(const std::string&) override {}
  void end_stream() override {}
  void fail(const server::ApiError& e) override { result.set_value(json{{"error", e.message}}); }
  bool cancelled() const override { return false; }
  void on_cancel(std::function<void()>) override {}
};

// /v1/embeddings pools as the model's files say: last token with the sentence-transformers files,
// mean without them.
TEST(EmbedServer, UsesTheModelsPooling) {
  const json ref = read_json(kModels + "/qwen3_embed_tiny/reference.json");
  for (const bool with_files : {true, false}) {
    const fs::path dir = fs::temp_directory_path() / ("slm_embed_srv_" + std::to_string(::getpid()) + (with_files ? "a" : "b"));
    fs::remove_all(dir);
    fs::copy(kModels + "/qwen3_embed_tiny", dir, fs::copy_options::recursive);
    if (!with_files) fs::remove(dir / "modules.json");
    std::ofstream(dir / "tokenizer.json") << byte_tokenizer_json();
    {
      SchedulerOptions so;
      so.max_sequences = 2;
      so.n_ctx = 256;
      auto scheduler = std::make_shared<Scheduler>(Model::load(dir.string()), so);
      server::EngineProvider provider({server::LocalModel{"m", scheduler, "", 0.0}});
      json inputs = json::array();
      for (size_t i : {size_t(2), size_t(7)}) inputs.push_back(ref["items"][i]["ids"]);
      auto sink = std::make_shared<CollectSink>();
      auto answer = sink->result.get_future();
      provider.embeddings({{"model", "m"}, {"input", inputs}}, {}, sink);
      const json body = answer.get();
      ASSERT_TRUE(body.contains("data")) << body.dump();
      ASSERT_EQ(body["data"].size(), 2u);
      for (size_t k = 0; k < 2; ++k) {
        const auto& item = ref["items"][k == 0 ? 2 : 7];
        const auto v = body["data"][k]["embedding"].get<std::vector<float>>();
        const auto want = item[with_files ? "lasttoken" : "mean"].get<std::vector<float>>();
        const auto other = item[with_files ? "mean" : "lasttoken"].get<std::vector<float>>();
        EXPECT_GT(cosine(v, want), 0.9999) << with_files << " " << k;
        EXPECT_LT(cosine(v, other), 0.99) << with_files << " " << k;
        EXPECT_NEAR(norm(v), 1.0, 1e-5);
      }
    }
    fs::remove_all(dir);
  }
}

// The decoder path of `slm embed`: several sequences per forward (each in its own KV blocks),
// pooling from the model's files, or as asked.
TEST(Embedder, DecoderBatchesMatchTransformers) {
  const json ref = read_json(kModels + "/qwen3_embed_tiny/reference.json");
  const fs::path dir = fs::temp_directory_path() / ("slm_embed_dec_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(kModels + "/qwen3_embed_tiny", dir, fs::copy_options::recursive);
  std::ofstream(dir / "tokenizer.json") << byte_tokenizer_json();
  std::vector<std::vector<int32_t>> seqs;
  for (const json& item : ref["items"]) seqs.push_back(item["ids"].get<std::vector<int32_t>>());
  for (const int64_t batch_tokens : {int64_t(40), int64_t(4096)}) {
    tasks::EmbedOptions o;
    o.batch_tokens = batch_tokens;
    tasks::Embedder last(dir.string(), o);
    EXPECT_FALSE(last.is_encoder());
    EXPECT_EQ(last.pooling(), Pooling::last);
    EXPECT_TRUE(last.normalize());
    const auto v = last.embed_tokens(seqs);
    o.pooling = Pooling::mean;
    o.normalize = false;
    tasks::Embedder mean(dir.string(), o);
    const auto m = mean.embed_tokens(seqs);
    for (size_t i = 0; i < seqs.size(); ++i) {
      EXPECT_NEAR(norm(v[i]), 1.0, 1e-5);
      EXPECT_GT(cosine(v[i], ref["items"][i]["lasttoken"].get<std::vector<float>>()), 0.9999) << i;
      EXPECT_LT(rel_l2(m[i], ref["items"][i]["mean"].get<std::vector<float>>()), 1e-4) << i;
    }
    const auto texts = last.embed({"hello", "a longer text to embed"});
    ASSERT_EQ(texts.size(), 2u);
    EXPECT_EQ(texts[0].tokens, 5);
    EXPECT_NEAR(norm(texts[1].vector), 1.0, 1e-5);
  }
  fs::remove_all(dir);
}

struct CmdResult {
  int status;
  std::string out;
};

CmdResult run_slm(const std::string& args) {
  const std::string cmd = std::string(SLM_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

TEST(CliEmbed, JsonlOutAndThroughput) {
  const json ref = read_json(kModels + "/bert_tiny/reference.json");
  const fs::path input = fs::temp_directory_path() / ("slm_embed_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream out(input);
    for (size_t i = 0; i < 3; ++i) out << json({{"id", "t" + std::to_string(i)}, {"text", ref["items"][i]["text"]}}).dump() << "\n";
  }
  const CmdResult r = run_slm("embed --model " + kModels + "/bert_tiny " + input.string());
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  size_t n = 0;
  bool throughput = false;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.front() != '{') {
      throughput = throughput || line.find("embeddings/s") != std::string::npos;
      continue;
    }
    const json j = json::parse(line);
    EXPECT_EQ(j["id"], "t" + std::to_string(n));
    const auto v = j["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), 32u);
    EXPECT_NEAR(norm(v), 1.0, 1e-4);
    EXPECT_GT(cosine(v, ref["items"][n]["cls"].get<std::vector<float>>()), 0.9999);
    ++n;
  }
  EXPECT_EQ(n, 3u);
  EXPECT_TRUE(throughput) << r.out;
  fs::remove(input);

  const CmdResult texts = run_slm("embed -q --model " + kModels + "/bert_tiny --pooling mean --no-normalize 'Hello, world!' a");
  ASSERT_EQ(texts.status, 0) << texts.out;
  std::istringstream tl(texts.out);
  std::getline(tl, line);
  const auto v0 = json::parse(line)["embedding"].get<std::vector<float>>();
  EXPECT_LT(rel_l2(v0, ref["items"][0]["mean"].get<std::vector<float>>()), 1e-4);
  std::getline(tl, line);
  EXPECT_EQ(json::parse(line)["index"], 1);

  EXPECT_EQ(run_slm("embed --model " + kModels + "/bert_tiny --pooling max x").status, 2);
  EXPECT_EQ(run_slm("embed --model " + kModels + "/bert_tiny --normalize --no-normalize x").status, 2);
}

}  // namespace
}  // namespace slm
