// slm chat [MODEL] [--system TEXT] [--chat-template FILE] [--enable-thinking true|false]
//          [--reasoning show|hide]: an interactive terminal chat.
//
// Each turn renders the whole conversation with the model's chat template and evaluates only the
// tokens past the longest prefix already in the KV cache, so earlier turns are not processed again.
// Reasoning (<think>...</think>) is shown dimmed or hidden. Ctrl-C stops a reply; Ctrl-D or /exit
// leaves. A line ending in a backslash continues on the next line.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common.hpp"
#include "slm/engine/sampler.hpp"
#include "slm/engine/session.hpp"
#include "slm/server/output_parser.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

struct ChatArgs {
  std::string model;
  std::string system;
  std::string chat_template;
  std::string enable_thinking;
  std::string reasoning = "show";
  int64_t n_predict = 1024;
  int64_t ctx = 4096;
  int threads = 0;
  bool ignore_eos = false;
  SamplerOptions sampling;
  int64_t seed = -1;
  CacheTypeArgs cache_types;
};

// Where the output goes: dims reasoning on a terminal, and says how each reply went on stderr.
class Terminal {
 public:
  Terminal() : tty_(::isatty(STDOUT_FILENO) != 0) {}
  void text(const std::string& s) { write(s); }
  void reasoning(const std::string& s) {
    if (s.empty()) return;
    if (tty_ && !dim_) write("\x1b[2m");
    dim_ = tty_;
    write(s);
  }
  void end_reasoning() {
    if (dim_) write("\x1b[0m");
    dim_ = false;
  }
  void flush() { std::fflush(stdout); }

 private:
  void write(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  }
  bool tty_;
  bool dim_ = false;
};

// Reads one message: lines ending in '\' continue. nullopt at end of input. An interrupted read
// (Ctrl-C at the prompt) gives an empty message.
std::optional<std::string> read_message() {
  std::string message;
  for (;;) {
    std::string line;
    if (!std::getline(std::cin, line)) {
      if (g_interrupted.exchange(false)) {
        std::cin.clear();
        return std::string();
      }
      if (message.empty()) return std::nullopt;
      return message;
    }
    if (!line.empty() && line.back() == '\\') {
      line.pop_back();
      message += line + "\n";
      std::fputs(". ", stdout);
      std::fflush(stdout);
      continue;
    }
    message += line;
    return message;
  }
}

class Chat {
 public:
  Chat(const ChatArgs& args, std::shared_ptr<const Model> model)
      : args_(args), model_(std::move(model)), tok_(require_tokenizer(*model_)) {
    std::string source = args.chat_template.empty() ? tok_.data().chat_template : read_file(args.chat_template);
    if (source.empty()) {
      fail(ErrorKind::invalid_argument, "'{}' has no chat template; give one with --chat-template FILE",
           model_->path());
    }
    template_.emplace(ChatTemplate::parse(source));
    SessionOptions so;
    so.n_ctx = args.ctx;
    std::tie(so.cache_type_k, so.cache_type_v) = cache_types(args.cache_types);
    session_.emplace(model_, so);
    if (!args.enable_thinking.empty()) thinking_ = args.enable_thinking == "true";
    reset();
  }

  void reset() {
    messages_ = nlohmann::ordered_json::array();
    if (!args_.system.empty()) messages_.push_back({{"role", "system"}, {"content", args_.system}});
    session_->reset();
    kv_tokens_.clear();
  }

  int64_t n_ctx() const { return session_->n_ctx(); }

  void save(const std::string& path) const {
    std::ofstream out(path);
    if (!out) fail(ErrorKind::io, "cannot write '{}'", path);
    out << nlohmann::ordered_json{{"messages", messages_}}.dump(1) << "\n";
    if (!out) fail(ErrorKind::io, "cannot write '{}'", path);
  }

  // One user turn: the reply streams to the terminal.
  void reply(const std::string& user_text, Terminal& term) {
    messages_.push_back({{"role", "user"}, {"content", user_text}});
    const std::string prompt = template_->render(chat_context(tok_.data(), messages_, nullptr, true, thinking_));
    // The template writes BOS itself where the model wants one.
    const std::vector<int32_t> tokens = tok_.encode(prompt, false, true);
    if (int64_t(tokens.size()) + 1 >= session_->n_ctx()) {
      messages_.erase(messages_.end() - 1);
      fail(ErrorKind::out_of_range, "the conversation has {} tokens; the context holds {} (use /reset or --ctx)",
           tokens.size(), session_->n_ctx());
    }
    // Keep the longest prefix already evaluated; at least one token is evaluated for the logits.
    size_t common = 0;
    while (common < kv_tokens_.size() && common < tokens.size() && kv_tokens_[common] == tokens[common]) ++common;
    if (common == tokens.size()) --common;
    session_->truncate(int64_t(common));
    kv_tokens_.resize(common);
    const std::span<const int32_t> fresh(tokens.data() + common, tokens.size() - common);
    std::vector<float> logits(size_t(model_->config().vocab_size));
    session_->forward(fresh, logits.data(), false);
    kv_tokens_.insert(kv_tokens_.end(), fresh.begin(), fresh.end());

    // A fixed seed gives each turn its own reproducible stream.
    Sampler sampler(with_seed(args_.sampling, args_.seed < 0 ? -1 : args_.seed + int64_t(turn_++)));
    for (int32_t t : tokens) sampler.accept(t);
    StreamDecoder decoder(tok_);
    // A prompt that ends inside an open <think> block starts the answer in reasoning.
    const bool opened = prompt.rfind("<think>") != std::string::npos &&
                        prompt.rfind("<think>") > (prompt.rfind("</think>") == std::string::npos ? 0 : prompt.rfind("</think>"));
    server::ReasoningSplitter splitter(opened);
    std::string content;
    auto show = [&](const server::ReasoningSplitter::Out& out) {
      if (args_.reasoning == "show") term.reasoning(out.reasoning);
      if (!out.content.empty()) {
        term.end_reasoning();
        term.text(out.content);
        content += out.content;
      }
    };
    int64_t generated = 0;
    const char* ending = "length";
    while (generated < args_.n_predict) {
      if (g_interrupted.exchange(false)) {
        ending = "stopped";
        break;
      }
      if (session_->n_past() + 1 >= session_->n_ctx()) {
        ending = "context full";
        break;
      }
      const int32_t token = sampler.sample(logits);
      sampler.accept(token);
      if (!args_.ignore_eos && tok_.is_eog(token)) {
        ending = "end";
        break;
      }
      ++generated;
      show(splitter.push(decoder.push(token)));
      session_->forward(std::span<const int32_t>(&token, 1), logits.data(), false);
      kv_tokens_.push_back(token);
    }
    auto rest = splitter.push(decoder.flush());
    auto tail = splitter.flush();
    rest.reasoning += tail.reasoning;
    rest.content += tail.content;
    show(rest);
    term.end_reasoning();
    term.text("\n");
    messages_.push_back({{"role", "assistant"}, {"content", content}});
    std::cerr << fmt::format("[{}: {} tokens; prompt {} new, {} reused from the cache]\n", ending, generated,
                             fresh.size(), common);
  }

 private:
  const ChatArgs& args_;
  std::shared_ptr<const Model> model_;
  const Tokenizer& tok_;
  std::optional<ChatTemplate> template_;
  std::optional<Session> session_;
  std::optional<bool> thinking_;
  nlohmann::ordered_json messages_;
  std::vector<int32_t> kv_tokens_;  // exactly the tokens in the session's KV cache
  uint64_t turn_ = 0;
};

void print_help() {
  std::cout << "commands: /reset (forget the conversation), /save FILE (write it as JSON), /exit; "
               "end a line with \\ to continue it; Ctrl-C stops a reply\n";
}

}  // namespace

Command add_chat(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model in the terminal");
  cmd->add_option("model", args->model, "GGUF file, Hugging Face folder or store name (default: the demo model)");
  cmd->add_option("--system", args->system, "System prompt");
  cmd->add_option("--chat-template", args->chat_template, "Jinja file to use instead of the model's own template");
  cmd->add_option("--enable-thinking", args->enable_thinking, "Pass enable_thinking to the template (true or false)")
      ->check(CLI::IsMember({"true", "false"}));
  cmd->add_option("--reasoning", args->reasoning, "Show the reasoning of thinking models dimmed, or hide it")
      ->check(CLI::IsMember({"show", "hide"}))
      ->capture_default_str();
  cmd->add_option("-n,--n-predict", args->n_predict, "Most tokens per reply")->capture_default_str();
  cmd->add_option("-c,--ctx", args->ctx, "Context size (tokens) for the whole conversation")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  add_sampling_options(cmd, args->sampling, args->seed);
  add_cache_type_options(cmd, args->cache_types);
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Keep generating past end-of-generation tokens");
  return {cmd, [args]() {
            set_threads(args->threads);
            if (args->n_predict <= 0) fail(ErrorKind::invalid_argument, "-n must be positive, found {}", args->n_predict);
            auto model = load_model(args->model);
            Chat chat(*args, model);
            struct sigaction sa = {};
            sa.sa_handler = on_sigint;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = 0;  // no SA_RESTART: Ctrl-C at the prompt interrupts the read
            sigaction(SIGINT, &sa, nullptr);
            Terminal term;
            std::cout << fmt::format("slm chat: {} ({} tokens of context). /help for commands.\n", model->path(),
                                     chat.n_ctx());
            for (;;) {
              g_interrupted.store(false);  // a Ctrl-C from now on stops the next reply (or this read)
              std::fputs("> ", stdout);
              std::fflush(stdout);
              auto message = read_message();
              if (!message) break;
              if (message->empty()) {
                std::fputs("\n", stdout);
                continue;
              }
              if (*message == "/exit" || *message == "/quit") break;
              if (*message == "/help") {
                print_help();
                continue;
              }
              if (*message == "/reset") {
                chat.reset();
                std::cout << "[conversation reset]\n";
                continue;
              }
              if (message->rfind("/save", 0) == 0) {
                std::string path = message->substr(5);
                path.erase(0, path.find_first_not_of(' '));
                if (path.empty()) {
                  std::cout << "usage: /save FILE\n";
                  continue;
                }
                try {
                  chat.save(path);
                  std::cout << fmt::format("[saved to {}]\n", path);
                } catch (const Error& e) {
                  std::cout << "error: " << e.what() << "\n";
                }
                continue;
              }
              try {
                chat.reply(*message, term);
              } catch (const Error& e) {
                std::cout << "\nerror: " << e.what() << "\n";
              }
            }
            std::fputs("\n", stdout);
            return 0;
          }};
}

}  // namespace slm::cli
