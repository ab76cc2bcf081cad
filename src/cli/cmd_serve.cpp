// slm serve MODEL... [--host 127.0.0.1 --port 8080 --api-key KEY --ctx N --parallel N --max-queue N --device D]
// An OpenAI-compatible HTTP server over one or more local models.
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <tuple>
#include <iostream>

#include "common.hpp"
#include "slm/engine/cuda_session.hpp"
#include "slm/engine/scheduler.hpp"
#include "slm/router/router.hpp"
#include "slm/server/engine_provider.hpp"
#include "slm/server/http_server.hpp"
#include "slm/engine/encoder.hpp"
#include "slm/tasks/embed_provider.hpp"
#include "slm/tasks/task_provider.hpp"
#include "slm/util/error.hpp"

namespace slm::cli {
namespace {

namespace fs = std::filesystem;

struct ServeArgs {
  std::vector<std::string> models;
  std::vector<std::string> names;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  int64_t ctx = 4096;
  int parallel = 4;
  int max_queue = 64;
  int64_t kv_tokens = 0;
  int64_t max_body_mb = 8;
  int threads = 0;
  std::string chat_template;
  std::string config;
  double request_timeout = 0.0;
  std::string device = "auto";
  CacheTypeArgs cache_types;
};

// The engine settings of one served model (the same for models served directly and router tiers).
SchedulerOptions scheduler_options(const ServeArgs& args, const Model& model) {
  SchedulerOptions options;
  options.n_ctx = args.ctx;
  options.max_sequences = args.parallel;
  options.max_queue = args.max_queue;
  options.kv_tokens = args.kv_tokens;
  options.device = choose_device(args.device, model, args.ctx);
  std::tie(options.cache_type_k, options.cache_type_v) = cache_types(args.cache_types);
  // Batched serving on the GPU runs attention for heads of up to 128 values; auto falls back to the CPU.
  if (options.device == Device::cuda && args.device == "auto" && model.config().head_dim > 128) options.device = Device::cpu;
  return options;
}

void raise_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API");
  cmd->add_option("model", args->models, "GGUF files, Hugging Face folders or stored model names (none: the demo model)");
  cmd->add_option("--name", args->names, "The name clients use for each model, in order (default: the file name)");
  cmd->add_option("--host", args->host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port", args->port, "Port (0: a free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", args->api_key, "Require 'Authorization: Bearer KEY'");
  cmd->add_option("-c,--ctx", args->ctx, "Context per sequence (tokens; capped at the model's)")->capture_default_str();
  cmd->add_option("--parallel", args->parallel, "Sequences generated at once per model")->capture_default_str();
  cmd->add_option("--max-queue", args->max_queue, "Waiting requests beyond which the server answers 429")->capture_default_str();
  cmd->add_option("--kv-tokens", args->kv_tokens, "KV cache positions shared by a model's sequences (0: parallel x ctx)");
  cmd->add_option("--max-body-mb", args->max_body_mb, "Largest request body in MiB (larger: 413)")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "Threads (0: one per core)");
  cmd->add_option("--chat-template", args->chat_template, "Jinja file to use instead of the models' own chat templates");
  cmd->add_option("--config", args->config, "Router configuration (YAML): tiers, policies, upstreams");
  add_cache_type_options(cmd, args->cache_types);
  cmd->add_option("--device", args->device,
                  "cpu, cuda or auto (CUDA when built with it, a GPU is present and the model runs there)")
      ->capture_default_str();
  cmd->add_option("--request-timeout", args->request_timeout,
                  "Seconds a request may take, queued and generating (0: no limit); requests may ask for less with 'timeout'")
      ->check(CLI::Range(0.0, 3.15e7));
  return {cmd, [args]() {
            set_threads(args->threads);
            if (args->parallel < 1) fail(ErrorKind::invalid_argument, "--parallel must be >= 1, found {}", args->parallel);
            if (args->max_queue < 0) fail(ErrorKind::invalid_argument, "--max-queue must be >= 0, found {}", args->max_queue);
            if (args->max_body_mb < 1) fail(ErrorKind::invalid_argument, "--max-body-mb must be >= 1, found {}", args->max_body_mb);
            std::shared_ptr<server::Provider> provider;
            // Local models by name: the task endpoints measure /v1/chunk in their tokens.
            auto loaded = std::make_shared<std::vector<std::pair<std::string, std::shared_ptr<const Model>>>>();
            if (!args->config.empty()) {
              if (!args->models.empty()) fail(ErrorKind::invalid_argument, "expected either MODEL... or --config, found both");
              // Tiers' in-process models get the same engine settings as models served directly.
              router::RouterOptions router_options;
              router_options.local_factory = [args, loaded](const std::string& path_or_name) -> std::shared_ptr<server::Provider> {
                const std::string path = resolve_model_path(path_or_name);
                if (Encoder::is_encoder(path)) {  // an embedding tier, or the semantic policy's embedding model
                  std::vector<tasks::EmbeddingModel> one(1);
                  one[0].id = path == path_or_name ? server::model_id_from_path(path) : path_or_name;
                  one[0].embedder = std::make_shared<tasks::Embedder>(path, tasks::EmbedOptions{});
                  std::cerr << "slm serve: embedding model '" << one[0].id << "' from " << path << "\n";
                  return std::make_shared<tasks::EmbeddingProvider>(std::move(one), nullptr);
                }
                auto model = Model::load(path);
                require_tokenizer(*model);
                server::LocalModel m;
                m.id = path == path_or_name ? server::model_id_from_path(path) : path_or_name;
                m.scheduler = std::make_shared<Scheduler>(model, scheduler_options(*args, *model));
                m.request_timeout = args->request_timeout;
                std::cerr << "slm serve: model '" << m.id << "' from " << path << "\n";
                loaded->emplace_back(m.id, model);
                std::vector<server::LocalModel> models;
                models.push_back(std::move(m));
                return std::make_shared<server::EngineProvider>(std::move(models));
              };
              provider = std::make_shared<router::Router>(router::load_config(args->config), router_options);
              std::cerr << "slm serve: router from " << args->config << "\n";
            }
            if (!provider && args->models.empty()) args->models.push_back(demo_model_path());
            if (!args->names.empty() && args->names.size() != args->models.size()) {
              fail(ErrorKind::invalid_argument, "--name given {} times for {} models; give one per model or none",
                   args->names.size(), args->models.size());
            }
            const std::string chat_template = args->chat_template.empty() ? "" : read_file(args->chat_template);
            std::vector<server::LocalModel> models;
            std::vector<tasks::EmbeddingModel> embedding_models;  // BERT-family encoders: /v1/embeddings only
            for (size_t i = 0; !provider && i < args->models.size(); ++i) {
              const std::string path = resolve_model_path(args->models[i]);
              if (Encoder::is_encoder(path)) {
                tasks::EmbeddingModel e;
                e.id = !args->names.empty() ? args->names[i]
                       : path == args->models[i] ? server::model_id_from_path(path)
                                                 : args->models[i];
                e.embedder = std::make_shared<tasks::Embedder>(path, tasks::EmbedOptions{});
                std::cerr << "slm serve: embedding model '" << e.id << "' from " << path << " (" << e.embedder->dim()
                          << " dimensions, " << e.embedder->max_tokens() << " tokens)\n";
                embedding_models.push_back(std::move(e));
                continue;
              }
              auto model = Model::load(path);
              require_tokenizer(*model);
              const SchedulerOptions options = scheduler_options(*args, *model);
              server::LocalModel m;
              m.id = !args->names.empty() ? args->names[i]
                     : path == args->models[i] ? server::model_id_from_path(path)
                                               : args->models[i];
              m.scheduler = std::make_shared<Scheduler>(model, options);
              m.chat_template = chat_template;
              m.request_timeout = args->request_timeout;
              loaded->emplace_back(m.id, model);
              std::cerr << "slm serve: model '" << m.id << "' from " << path << " (context " << m.scheduler->options().n_ctx
                        << ", " << args->parallel << " sequences, " << device_name(options.device) << ")\n";
              models.push_back(std::move(m));
            }
            if (!provider && !models.empty()) provider = std::make_shared<server::EngineProvider>(std::move(models));
            if (!embedding_models.empty()) provider = std::make_shared<tasks::EmbeddingProvider>(std::move(embedding_models), provider);
            if (!provider) provider = std::make_shared<server::EngineProvider>(std::move(models));
            tasks::TaskProviderOptions task_options;
            task_options.tokenizer = [loaded](const std::string& name) -> const Tokenizer* {
              for (const auto& [id, model] : *loaded) {
                if (id == name) return model->tokenizer();
              }
              return loaded->empty() ? nullptr : loaded->front().second->tokenizer();
            };
            provider = std::make_shared<tasks::TaskProvider>(provider, task_options);
            server::HttpOptions http;
            http.host = args->host;
            http.port = uint16_t(args->port);
            http.api_key = args->api_key;
            http.max_body_bytes = size_t(args->max_body_mb) << 20;
            http.handle_signals = true;
            raise_file_limit();
            server::HttpServer server(provider, http);
            const uint16_t port = server.listen();
            const std::string shown_host = args->host.find(':') != std::string::npos ? "[" + args->host + "]" : args->host;
            std::cout << "listening on http://" << shown_host << ":" << port << std::endl;
            server.run();
            std::cerr << "slm serve: stopped\n";
            return 0;
          }};
}

}  // namespace slm::cli
