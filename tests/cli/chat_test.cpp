// `slm chat` driven as a person drives it: in a terminal (tmux), keys sent with send-keys and the
// screen read with capture-pane.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "run_slm.hpp"
#include "slm/format/gguf.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/fp16.hpp"

namespace {

using namespace slm_test;
using namespace std::chrono_literals;

std::string demo_model() { return std::string(SLM_SOURCE_DIR) + "/models/demo/demo-q8_0.gguf"; }
std::string chatml() { return std::string(SLM_TEST_DATA) + "/chat_templates/chatml.jinja"; }

std::string shell_output(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

bool have_tmux() { return std::system("command -v tmux >/dev/null 2>&1") == 0; }

// A tmux server of its own (its own socket, no user configuration) running one command.
class Tmux {
 public:
  explicit Tmux(const std::string& command) {
    socket_ = "slmtest" + std::to_string(::getpid()) + "_" + std::to_string(counter_++);
    const std::string cmd = "tmux -L " + socket_ + " -f /dev/null new-session -d -s chat -x 200 -y 60 " + quote(command);
    started_ = std::system(cmd.c_str()) == 0;
  }
  ~Tmux() { std::system(("tmux -L " + socket_ + " kill-server >/dev/null 2>&1").c_str()); }
  bool started() const { return started_; }
  void keys(const std::string& keys) {
    std::system(("tmux -L " + socket_ + " send-keys -t chat " + keys).c_str());
  }
  void line(const std::string& text) {
    keys("-l " + quote(text));
    keys("Enter");
  }
  std::string screen() { return shell_output("tmux -L " + socket_ + " capture-pane -p -S -2000 -t chat 2>/dev/null"); }
  bool alive() { return std::system(("tmux -L " + socket_ + " has-session -t chat 2>/dev/null").c_str()) == 0; }
  // Waits until `pattern` occurs at least `count` times on the screen.
  bool wait_for(const std::string& pattern, size_t count = 1, std::chrono::seconds timeout = 90s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (occurrences(screen(), pattern) >= count) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  static size_t occurrences(const std::string& text, const std::string& pattern) {
    size_t n = 0;
    for (size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern, at + 1)) ++n;
    return n;
  }

 private:
  static std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  }
  static inline int counter_ = 0;
  std::string socket_;
  bool started_ = false;
};

// "[end: 12 tokens; prompt 9 new, 31 reused from the cache]" -> (new, reused) of the n-th such line.
std::pair<int, int> prompt_counts(const std::string& screen, size_t index) {
  static const std::regex re(R"(prompt (\d+) new, (\d+) reused from the cache\])");
  size_t i = 0;
  for (auto it = std::sregex_iterator(screen.begin(), screen.end(), re); it != std::sregex_iterator(); ++it, ++i) {
    if (i == index) return {std::stoi((*it)[1]), std::stoi((*it)[2])};
  }
  return {-1, -1};
}

TEST(Chat, TurnsReuseTheCacheAndSaveTheConversation) {
  if (!have_tmux()) GTEST_SKIP() << "tmux is not installed";
  const fs::path saved = scratch() / "conversation.json";
  // The demo model's own (ChatML) template.
  Tmux t(std::string(SLM_EXE) + " chat " + demo_model() + " --temp 0 -n 24 --system 'You tell stories.'");
  ASSERT_TRUE(t.started());
  ASSERT_TRUE(t.wait_for("\n>")) << t.screen();

  t.line("Tell me about the sea");
  ASSERT_TRUE(t.wait_for("reused from the cache]", 1)) << t.screen();
  t.line("And then\\");  // a backslash continues the message on the next line
  ASSERT_TRUE(t.wait_for("\n.")) << t.screen();
  t.line("what happened?");
  ASSERT_TRUE(t.wait_for("reused from the cache]", 2)) << t.screen();

  const std::string screen = t.screen();
  const auto [new1, reused1] = prompt_counts(screen, 0);
  const auto [new2, reused2] = prompt_counts(screen, 1);
  EXPECT_EQ(reused1, 0) << screen;
  EXPECT_GT(new1, 5) << screen;
  // The second turn evaluates only what follows the first turn: the system prompt, the first
  // message and the first reply come from the cache.
  EXPECT_GT(reused2, new1) << screen;
  EXPECT_LT(new2, reused2) << screen;

  t.line("/save " + saved.string());
  ASSERT_TRUE(t.wait_for("[saved to")) << t.screen();
  const auto conv = nlohmann::json::parse(slurp(saved));
  const auto& messages = conv.at("messages");
  ASSERT_EQ(messages.size(), 5u) << conv.dump();
  EXPECT_EQ(messages[0]["role"], "system");
  EXPECT_EQ(messages[1]["content"], "Tell me about the sea");
  EXPECT_EQ(messages[2]["role"], "assistant");
  EXPECT_FALSE(messages[2]["content"].get<std::string>().empty());
  EXPECT_EQ(messages[3]["content"], "And then\nwhat happened?");

  // Greedy: the same first question after /reset gives the same first answer, all of it new.
  t.line("/reset");
  ASSERT_TRUE(t.wait_for("[conversation reset]")) << t.screen();
  t.line("Tell me about the sea");
  ASSERT_TRUE(t.wait_for("reused from the cache]", 3)) << t.screen();
  const auto [new3, reused3] = prompt_counts(t.screen(), 2);
  EXPECT_EQ(new3 + reused3, new1);
  t.line("/save " + saved.string());
  ASSERT_TRUE(t.wait_for("[saved to", 2)) << t.screen();
  const auto again = nlohmann::json::parse(slurp(saved));
  ASSERT_EQ(again.at("messages").size(), 3u);
  EXPECT_EQ(again["messages"][2]["content"], messages[2]["content"]);

  t.line("/exit");
  for (int i = 0; i < 100 && t.alive(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(t.alive());
}

// A random-weight Llama model large enough that a reply takes seconds, with the demo tokenizer
// (without its chat template).
std::string slow_model() {
  const fs::path path = scratch() / "slow.gguf";
  if (fs::exists(path)) return path.string();
  const auto demo = slm::gguf::File::open(demo_model());
  slm::TokenizerData tok = slm::Tokenizer::data_from_gguf(demo);
  tok.chat_template.clear();  // and no chat template
  const uint64_t vocab = tok.tokens.size(), dim = 512, ffn = 1536, layers = 8, heads = 8;
  slm::gguf::Writer w;
  w.set("general.architecture", slm::gguf::Value::of_string("llama"));
  w.set("llama.context_length", slm::gguf::Value::of_u32(4096));
  w.set("llama.embedding_length", slm::gguf::Value::of_u32(uint32_t(dim)));
  w.set("llama.block_count", slm::gguf::Value::of_u32(uint32_t(layers)));
  w.set("llama.feed_forward_length", slm::gguf::Value::of_u32(uint32_t(ffn)));
  w.set("llama.attention.head_count", slm::gguf::Value::of_u32(uint32_t(heads)));
  w.set("llama.attention.head_count_kv", slm::gguf::Value::of_u32(uint32_t(heads)));
  w.set("llama.attention.layer_norm_rms_epsilon", slm::gguf::Value::of_f32(1e-5f));
  slm::Tokenizer::write_gguf(tok, w);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<std::vector<uint16_t>> store;
  std::vector<std::vector<float>> norms;
  auto matrix = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    auto& data = store.emplace_back(rows * cols);
    for (auto& v : data) v = slm::f32_to_f16(normal(rng));
    w.add_tensor(name, slm::DType::F16, {cols, rows}, data.data());
  };
  auto norm = [&](const std::string& name) {
    auto& data = norms.emplace_back(dim, 1.0f);
    w.add_tensor(name, slm::DType::F32, {dim}, data.data());
  };
  matrix("token_embd.weight", vocab, dim);
  norm("output_norm.weight");
  for (uint64_t l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    norm(p + "ffn_norm.weight");
    for (const char* m : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight"}) matrix(p + m, dim, dim);
    matrix(p + "ffn_gate.weight", ffn, dim);
    matrix(p + "ffn_up.weight", ffn, dim);
    matrix(p + "ffn_down.weight", dim, ffn);
  }
  w.write(path.string());
  return path.string();
}

TEST(Chat, CtrlCStopsAReplyAndTheChatGoesOn) {
  if (!have_tmux()) GTEST_SKIP() << "tmux is not installed";
  Tmux t(std::string(SLM_EXE) + " chat " + slow_model() + " --chat-template " + chatml() +
         " --temp 0 -n 100000 --ctx 4096 --ignore-eos");
  ASSERT_TRUE(t.started());
  ASSERT_TRUE(t.wait_for("\n>")) << t.screen();
  t.line("Go on and on");
  // Wait until the reply has started to stream, then interrupt it.
  const auto prompt_end = [&] {
    const std::string s = t.screen();
    const size_t at = s.rfind("Go on and on");
    return at == std::string::npos ? std::string() : s.substr(at + 12);
  };
  for (int i = 0; i < 600 && prompt_end().find_first_not_of(" \n") == std::string::npos; ++i) std::this_thread::sleep_for(50ms);
  t.keys("C-c");
  ASSERT_TRUE(t.wait_for("[stopped: ", 1, 30s)) << t.screen();
  EXPECT_TRUE(t.alive());
  // The program is still there and answers the next message.
  t.line("Again");
  std::this_thread::sleep_for(300ms);
  t.keys("C-c");
  ASSERT_TRUE(t.wait_for("[stopped: ", 2, 30s)) << t.screen();
  t.line("/exit");
  for (int i = 0; i < 100 && t.alive(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(t.alive());
}

TEST(Chat, AModelWithoutATemplateIsAClearError) {
  // Without a template in the file or --chat-template, chat says what to do.
  const auto r = run_slm("chat " + slow_model(), "");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--chat-template"), std::string::npos) << r.err;
}

}  // namespace
