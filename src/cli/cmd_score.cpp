// slm score MODEL (--text | --file | --tokens): log-probability of each token and the perplexity.
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "slm/util/error.hpp"
#include "slm/backend/cpu/ops.hpp"
#include "slm/engine/session.hpp"
#include "slm/util/npy.hpp"

namespace slm::cli {
namespace {
struct ScoreArgs {
  std::string model;
  std::string text;
  std::string file;
  std::string tokens;
  std::string logits_out;
  bool json = false;
  bool no_special = false;
  int64_t ctx = 0;
  int64_t chunk = 0;
  int threads = 0;
  bool summary = false;
};

// Log-probabilities of ids[1..] given the ids before them, in one context; logits optional.
std::vector<double> score_sequence(const std::shared_ptr<const Model>& model, const std::vector<int32_t>& ids,
                                   int64_t n_ctx, std::vector<float>* all_logits) {
  const int64_t n = int64_t(ids.size());
  const int64_t vocab = model->config().vocab_size;
  SessionOptions so;
  so.n_ctx = n_ctx > 0 ? n_ctx : n;
  if (n > so.n_ctx || (model->config().context_length > 0 && n > model->config().context_length)) {
    fail(ErrorKind::out_of_range, "{} tokens do not fit the context ({}; model trained for {}); use --chunk N", n,
         so.n_ctx, model->config().context_length);
  }
  Session session(model, so);
  std::vector<float> logits(static_cast<size_t>(n * vocab));
  session.forward(ids, logits.data(), true);
  std::vector<double> logprobs(static_cast<size_t>(n), 0.0);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (int64_t t = 1; t < n; ++t) {
    cpu::log_softmax(logits.data() + (t - 1) * vocab, row.data(), vocab);
    logprobs[size_t(t)] = row[size_t(ids[size_t(t)])];
  }
  if (all_logits) *all_logits = std::move(logits);
  return logprobs;
}
}  // namespace

Command add_score(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand("score", "Log-probability of each token of a text, and its perplexity");
  cmd->add_option("model", args->model, "GGUF file, Hugging Face folder or store name (default: the demo model)");
  auto* text = cmd->add_option("--text", args->text, "Text to score");
  auto* file = cmd->add_option("--file", args->file, "File whose text to score");
  auto* tokens = cmd->add_option("--tokens", args->tokens, "Token ids to score, e.g. 1,2,3");
  text->excludes(file)->excludes(tokens);
  file->excludes(tokens);
  cmd->add_option("--logits-out", args->logits_out, "Write every position's logits as float32 .npy [n_tokens, vocab]");
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS/EOS tokens to the text");
  cmd->add_option("-c,--ctx", args->ctx, "Context size (0: the number of tokens)");
  cmd->add_option("--chunk", args->chunk,
                  "Score in non-overlapping chunks of N tokens, each after BOS in a fresh context (long texts)");
  cmd->add_flag("--summary", args->summary, "Print only the summary line (or JSON without the token list)");
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  return {cmd, [args]() {
            set_threads(args->threads);
            auto model = load_model(args->model);
            std::vector<int32_t> ids;
            if (!args->tokens.empty()) {
              ids = parse_ids(args->tokens);
            } else {
              const std::string input = !args->file.empty() ? read_file(args->file) : args->text;
              if (args->file.empty() && args->text.empty()) {
                fail(ErrorKind::invalid_argument, "score needs --text, --file or --tokens");
              }
              ids = require_tokenizer(*model).encode(input, !args->no_special, true);
            }
            if (ids.empty()) fail(ErrorKind::invalid_argument, "nothing to score: no tokens");
            // scored[i]: log-probability of ids[i], or NaN when it was not predicted (a chunk's BOS or
            // the first token).
            std::vector<double> scored;
            if (args->chunk > 0) {
              // Perplexity over non-overlapping chunks: each chunk runs in a fresh context after BOS,
              // so every token is predicted exactly once.
              if (!args->logits_out.empty()) fail(ErrorKind::invalid_argument, "--logits-out cannot be combined with --chunk");
              const Tokenizer* tok = model->tokenizer();
              const int32_t bos = tok ? tok->data().bos_id : -1;
              if (bos < 0) fail(ErrorKind::invalid_argument, "--chunk needs a model whose tokenizer has a BOS token");
              if (!ids.empty() && ids.front() == bos) ids.erase(ids.begin());
              std::vector<int32_t> all;
              for (size_t start = 0; start < ids.size(); start += size_t(args->chunk)) {
                const size_t end = std::min(ids.size(), start + size_t(args->chunk));
                std::vector<int32_t> window{bos};
                window.insert(window.end(), ids.begin() + std::ptrdiff_t(start), ids.begin() + std::ptrdiff_t(end));
                const auto lp = score_sequence(model, window, 0, nullptr);
                for (size_t i = 1; i < window.size(); ++i) {
                  all.push_back(window[i]);
                  scored.push_back(lp[i]);
                }
              }
              ids = std::move(all);
            } else {
              std::vector<float> logits;
              scored = score_sequence(model, ids, args->ctx, args->logits_out.empty() ? nullptr : &logits);
              scored[0] = NAN;
              if (!args->logits_out.empty()) {
                npy_write_f32(args->logits_out, logits.data(), {uint64_t(ids.size()), uint64_t(model->config().vocab_size)});
              }
            }
            const int64_t n = int64_t(ids.size());
            double total = 0.0;
            int64_t predicted = 0;
            for (double lp : scored) {
              if (std::isnan(lp)) continue;
              total += lp;
              ++predicted;
            }
            const double mean = predicted > 0 ? total / double(predicted) : 0.0;
            const double ppl = predicted > 0 ? std::exp(-mean) : NAN;
            const Tokenizer* tok = model->tokenizer();
            if (args->json) {
              nlohmann::json out;
              out["n_tokens"] = n;
              out["n_predicted"] = predicted;
              out["sum_logprob"] = total;
              out["mean_logprob"] = mean;
              out["perplexity"] = predicted > 0 ? nlohmann::json(ppl) : nlohmann::json(nullptr);
              auto& list = out["tokens"] = nlohmann::json::array();
              for (int64_t t = 0; t < n && !args->summary; ++t) {
                nlohmann::json item;
                item["id"] = ids[size_t(t)];
                if (tok) item["text"] = tok->token_bytes(ids[size_t(t)]);
                item["logprob"] = std::isnan(scored[size_t(t)]) ? nlohmann::json(nullptr) : nlohmann::json(scored[size_t(t)]);
                list.push_back(item);
              }
              std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            } else {
              for (int64_t t = 0; t < n && !args->summary; ++t) {
                const std::string piece = tok ? nlohmann::json(tok->token_bytes(ids[size_t(t)])).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : "";
                if (std::isnan(scored[size_t(t)])) {
                  std::cout << fmt::format("{:6d} {:8d} {:>12} {}\n", t, ids[size_t(t)], "-", piece);
                } else {
                  std::cout << fmt::format("{:6d} {:8d} {:12.6f} {}\n", t, ids[size_t(t)], scored[size_t(t)], piece);
                }
              }
              std::cout << fmt::format("tokens: {}  predicted: {}  mean logprob: {:.6f}  perplexity: {:.6f}\n", n,
                                       predicted, mean, ppl);
            }
            return 0;
          }};
}

}  // namespace slm::cli
