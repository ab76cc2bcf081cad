// `slm serve` with a BERT-family encoder beside a chat model: /v1/embeddings from the encoder (its
// own pooling, checked against the transformers reference), /v1/models listing both, generation
// requests to the encoder refused with a 400, everything else still reaching the chat model. Also an
// encoder checkpoint carrying an integer buffer (embeddings.position_ids) beside its weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/vectors.hpp"
#include "../server/server_process.hpp"
#include "slm/engine/encoder.hpp"
#include "slm/format/safetensors.hpp"
#include "slm/tasks/embed.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using slm_test::http;

const std::string kBert = std::string(SLM_TEST_DATA) + "/models/bert_tiny";

using slm_test::cosine;
using slm_test::norm;
using slm_test::read_json;

class EmbedServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new slm_test::ServerProcess({kBert, slm_test::demo_model(), "--parallel", "1"}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static slm_test::HttpResponse post(const std::string& path, const json& body) {
    return http(server_->port(), "POST", path, body.dump());
  }
  static slm_test::ServerProcess* server_;
};

slm_test::ServerProcess* EmbedServe::server_ = nullptr;

TEST_F(EmbedServe, EmbeddingsComeFromTheEncoderWithItsPooling) {
  const json ref = read_json(fs::path(kBert) / "reference.json");
  json texts = json::array();
  for (size_t i = 0; i < 4; ++i) texts.push_back(ref["items"][i]["text"]);
  const auto r = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", texts}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  EXPECT_EQ(body["object"], "list");
  EXPECT_EQ(body["model"], "bert_tiny");
  ASSERT_EQ(body["data"].size(), 4u);
  int64_t tokens = 0;
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(body["data"][i]["index"], i);
    const auto v = body["data"][i]["embedding"].get<std::vector<float>>();
    // The fixture's modules.json says CLS pooling, then Normalize.
    EXPECT_NEAR(norm(v), 1.0, 1e-5) << i;
    EXPECT_GT(cosine(v, ref["items"][i]["cls"].get<std::vector<float>>()), 0.9999) << i;
    EXPECT_LT(cosine(v, ref["items"][i]["mean"].get<std::vector<float>>()), 0.9999) << i;
    tokens += int64_t(ref["items"][i]["ids"].size());
  }
  EXPECT_EQ(body["usage"]["prompt_tokens"], tokens);

  // Token ids, "dimensions" (shortened, unit length again) and base64.
  const auto ids = ref["items"][0]["ids"];
  const auto short_r = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", ids}, {"dimensions", 8}});
  ASSERT_EQ(short_r.status, 200) << short_r.body;
  const auto v8 = json::parse(short_r.body)["data"][0]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(v8.size(), 8u);
  EXPECT_NEAR(norm(v8), 1.0, 1e-5);
  const auto full = json::parse(r.body)["data"][0]["embedding"].get<std::vector<float>>();
  std::vector<float> head(full.begin(), full.begin() + 8);
  EXPECT_GT(cosine(v8, head), 0.99999);
  const auto b64 = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", "Hello, world!"}, {"encoding_format", "base64"}});
  ASSERT_EQ(b64.status, 200) << b64.body;
  EXPECT_TRUE(json::parse(b64.body)["data"][0]["embedding"].is_string());
}

TEST_F(EmbedServe, ModelsListsBothAndGenerationOnTheEncoderIs400) {
  const auto r = http(server_->port(), "GET", "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> ids;
  const json listing = json::parse(r.body);
  for (const json& m : listing["data"]) ids.push_back(m["id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "bert_tiny"), ids.end()) << r.body;
  EXPECT_NE(std::find(ids.begin(), ids.end(), "demo-q8_0"), ids.end()) << r.body;

  const json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  const auto chat = post("/v1/chat/completions", {{"model", "bert_tiny"}, {"messages", messages}});
  EXPECT_EQ(chat.status, 400) << chat.body;
  const json err = json::parse(chat.body)["error"];
  EXPECT_EQ(err["type"], "invalid_request_error");
  EXPECT_EQ(err["param"], "model");
  EXPECT_NE(err["message"].get<std::string>().find("model 'bert_tiny' is an embedding model"), std::string::npos) << chat.body;
  const auto text = post("/v1/completions", {{"model", "bert_tiny"}, {"prompt", "hi"}});
  EXPECT_EQ(text.status, 400) << text.body;

  // The chat model still answers, and an unknown name is a 404.
  const auto ok = post("/v1/chat/completions", {{"model", "demo-q8_0"}, {"messages", messages}, {"max_tokens", 2}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  const auto none = post("/v1/embeddings", {{"model", "no-such-model"}, {"input", "x"}});
  EXPECT_EQ(none.status, 404) << none.body;
  const auto empty = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", json::array({"a", ""})}});
  EXPECT_EQ(empty.status, 400) << empty.body;
  const auto long_ids = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", std::vector<int>(49, 5)}});
  EXPECT_EQ(long_ids.status, 400) << long_ids.body;
  const auto bad_id = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", std::vector<int>{2, 1000000, 3}}});
  EXPECT_EQ(bad_id.status, 400) << bad_id.body;
  const auto too_many = post("/v1/embeddings", {{"model", "bert_tiny"}, {"input", "x"}, {"dimensions", 100000}});
  EXPECT_EQ(too_many.status, 400) << too_many.body;
}

// A router tier whose in-process deployment is an encoder: embeddings through the route's alias.
TEST(EmbedServeRouter, EncoderTierAnswersEmbeddings) {
  const fs::path dir = fs::temp_directory_path() / ("slm_embed_router_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "router.yaml") << "tiers:\n"
                                        "  - name: small\n    deployments: [{model: '" << slm_test::demo_model() << "'}]\n"
                                        "  - name: vectors\n    deployments: [{model: '" << kBert << "'}]\n"
                                        "routes:\n  - {model: auto, tier: small}\n  - {model: embed, tier: vectors}\n";
  slm_test::ServerProcess server({"--config", (dir / "router.yaml").string(), "--ctx", "128", "--parallel", "1"});
  const auto r = http(server.port(), "POST", "/v1/embeddings", json{{"model", "embed"}, {"input", "Hello, world!"}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json ref = read_json(fs::path(kBert) / "reference.json");
  const auto v = json::parse(r.body)["data"][0]["embedding"].get<std::vector<float>>();
  EXPECT_NEAR(norm(v), 1.0, 1e-5);
  EXPECT_GT(cosine(v, ref["items"][0]["cls"].get<std::vector<float>>()), 0.9999);
  const json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  const auto chat = http(server.port(), "POST", "/v1/chat/completions", json{{"model", "embed"}, {"messages", messages}}.dump());
  EXPECT_NE(chat.status, 200) << chat.body;
  EXPECT_NE(chat.body.find("is an embedding model"), std::string::npos) << chat.body;
  fs::remove_all(dir);
}

// A checkpoint that stores BERT's embeddings.position_ids buffer (I64) beside the weights loads, and
// its embeddings equal the fixture's.
TEST(EncoderCheckpoint, IntegerPositionIdsBufferIsSkipped) {
  const fs::path dir = fs::temp_directory_path() / ("slm_bert_position_ids_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::recursive_directory_iterator(kBert)) {
    const fs::path rel = fs::relative(e.path(), kBert);
    if (e.is_directory()) fs::create_directories(dir / rel);
    else if (rel != "model.safetensors") fs::copy_file(e.path(), dir / rel);
  }
  // The original file with one more tensor appended to its data area.
  std::ifstream in(fs::path(kBert) / "model.safetensors", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 8u);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  json header = json::parse(std::string(bytes.data() + 8, size_t(header_len)));
  const uint64_t data_len = bytes.size() - 8 - header_len;
  const int64_t positions = 48;
  header["embeddings.position_ids"] = {{"dtype", "I64"}, {"shape", {1, positions}}, {"data_offsets", {data_len, data_len + 8 * positions}}};
  const std::string new_header = header.dump();
  const uint64_t new_len = new_header.size();
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&new_len), 8);
  out.write(new_header.data(), std::streamsize(new_len));
  out.write(bytes.data() + 8 + header_len, std::streamsize(data_len));
  for (int64_t p = 0; p < positions; ++p) out.write(reinterpret_cast<const char*>(&p), 8);
  out.close();

  const auto archive = safetensors::Archive::open(dir.string());
  const auto* pos = archive.find("embeddings.position_ids");
  ASSERT_NE(pos, nullptr);
  EXPECT_EQ(pos->type, DType::I64);
  int64_t last = 0;
  std::memcpy(&last, pos->data + 8 * (positions - 1), 8);
  EXPECT_EQ(last, positions - 1);

  tasks::Embedder with_buffer(dir.string(), {});
  tasks::Embedder original(kBert, {});
  const std::vector<std::string> texts = {"Hello, world!", "Embeddings map text to vectors"};
  const auto a = with_buffer.embed(texts);
  const auto b = original.embed(texts);
  ASSERT_EQ(a.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(a[i].vector, b[i].vector) << i;
  fs::remove_all(dir);
}

// A Dense module after pooling is refused rather than silently left out of the embeddings.
TEST(EncoderCheckpoint, DenseModuleIsRefused) {
  const fs::path dir = fs::temp_directory_path() / ("slm_bert_dense_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(kBert, dir, fs::copy_options::recursive);
  json modules = read_json(dir / "modules.json");
  modules.push_back({{"idx", 3}, {"name", "3"}, {"path", "3_Dense"}, {"type", "sentence_transformers.models.Dense"}});
  std::ofstream(dir / "modules.json") << modules.dump();
  try {
    tasks::Embedder embedder(dir.string(), {});
    ADD_FAILURE() << "a Dense module was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("Dense"), std::string::npos) << e.what();
  }
  tasks::Embedder plain(kBert, {});  // the fixture itself still loads
  EXPECT_EQ(plain.dim(), 32);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace slm
