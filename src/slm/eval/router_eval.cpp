#include "slm/eval/router_eval.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sqlite3.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "slm/eval/cache.hpp"
#include "slm/eval/plot.hpp"
#include "slm/router/answer.hpp"
#include "slm/router/upstream.hpp"
#include "slm/util/error.hpp"

namespace slm::eval {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

void apply_override(YAML::Node root, const YamlOverride& o) {
  const auto parts = split(o.first, '.');
  YAML::Node node = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& key = parts[i];
    if (key.empty()) fail(ErrorKind::invalid_argument, "override '{}': expected keys separated by single dots", o.first);
    const bool last = i + 1 == parts.size();
    YAML::Node next;
    if (node.IsSequence()) {
      if (!all_digits(key) || std::stoul(key) >= node.size()) {
        fail(ErrorKind::invalid_argument, "override '{}': expected a list index below {} at '{}'", o.first, node.size(), key);
      }
      next.reset(node[std::stoul(key)]);
    } else if (node.IsMap() || node.IsNull()) {
      if (!last && !node[key]) fail(ErrorKind::invalid_argument, "override '{}': no key '{}' in the configuration", o.first, key);
      next.reset(node[key]);
    } else {
      fail(ErrorKind::invalid_argument, "override '{}': '{}' is a value, not a mapping or list", o.first, parts[i - 1]);
    }
    if (last) {
      next = YAML::Load(o.second);  // assigns through the reference: the document changes
      return;
    }
    node.reset(next);
  }
}

}  // namespace

router::RouterConfig load_router_config(const std::string& path, const std::vector<YamlOverride>& overrides,
                                        std::string* effective_yaml) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::not_found, "expected a router configuration file, found nothing at '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  std::string source = path;
  if (!overrides.empty()) {
    YAML::Node root;
    try {
      root = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
      fail(ErrorKind::invalid_argument, "{}: {}", path, e.what());
    }
    for (const auto& o : overrides) {
      apply_override(root, o);
      source += " with " + o.first + "=" + o.second;
    }
    YAML::Emitter out;
    out << root;
    yaml = out.c_str();
  }
  if (effective_yaml) *effective_yaml = yaml;
  router::RouterConfig c = router::parse_config(yaml, source);
  const fs::path dir = fs::path(path).parent_path();
  auto rebase = [&](std::string& p) {
    if (!p.empty() && p != ":memory:" && fs::path(p).is_relative()) p = (dir / p).lexically_normal().string();
  };
  rebase(c.database);
  for (auto& [name, p] : c.policies) rebase(p.training_file);
  for (auto& t : c.tiers) {
    for (auto& d : t.deployments) {
      if (d.local() && fs::path(d.model_path).is_relative() && fs::exists(dir / d.model_path)) d.model_path = (dir / d.model_path).string();
    }
  }
  if (!c.embedding.model_path.empty() && fs::exists(dir / c.embedding.model_path)) {
    c.embedding.model_path = (dir / c.embedding.model_path).string();
  }
  return c;
}

namespace {

// Waits for one answer of the router.
class WaitSink final : public server::ResponseSink {
 public:
  void finish_json(const json& body) override { settle(true, body); }
  void send_event(const std::string&) override {}
  void end_stream() override { settle(false, json{{"error", {{"message", "unexpected stream"}}}}); }
  void fail(const server::ApiError& error) override { settle(false, error.to_json()); }
  bool cancelled() const override { return false; }
  void on_cancel(std::function<void()>) override {}
  std::pair<bool, json> wait() { return promise_.get_future().get(); }

 private:
  void settle(bool ok, json body) {
    if (!done_.exchange(true)) promise_.set_value({ok, std::move(body)});
  }
  std::atomic<bool> done_{false};
  std::promise<std::pair<bool, json>> promise_;
};

class RouterBackend final : public Backend {
 public:
  RouterBackend(std::shared_ptr<router::Router> router, const RouterBackendOptions& options, json identity)
      : router_(std::move(router)), options_(options), identity_(std::move(identity)) {
    const std::string& db = router_->config().database;
    if (db.empty() || db == ":memory:") {
      fail(ErrorKind::invalid_argument, "router evaluation reads tiers and costs from the router's log: expected a file, found '{}'", db);
    }
    static std::atomic<uint64_t> instances{0};
    prefix_ = "eval-" + std::to_string(::getpid()) + "-" + std::to_string(++instances) + "-";
  }
  ~RouterBackend() override {
    if (db_) sqlite3_close(db_);
  }

  std::string name() const override { return "router"; }
  json identity() const override { return identity_; }

  std::vector<LoglikelihoodResult> loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                 const Progress& progress, const OnScored& each) override {
    std::vector<LoglikelihoodResult> out(requests.size());
    parallel_for(requests.size(), options_.concurrency, [&](size_t i) {
      json req = loglikelihood_echo_request(requests[i], options_.seed);
      req["model"] = options_.route;
      out[i] = loglikelihood_from_echo(call(false, req).first, requests[i]);
    }, [&](size_t i) { if (each) each(i, out[i]); }, progress);
    return out;
  }

  std::vector<Generation> generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                   const OnGenerated& each) override {
    std::vector<Generation> out(specs.size());
    parallel_for(specs.size(), options_.concurrency, [&](size_t i) {
      const auto& spec = specs[i];
      json req = {{"model", options_.route}, {"max_tokens", spec.max_tokens}, {"temperature", spec.temperature},
                  {"seed", spec.seed != 0 ? spec.seed : options_.seed},
                  {"messages", json::array({{{"role", "user"}, {"content", spec.prompt}}})}};
      json stop = json::array();
      for (size_t k = 0; k < spec.until.size() && k < 4; ++k) stop.push_back(spec.until[k]);
      if (!stop.empty()) req["stop"] = stop;
      auto [answer, info] = call(true, req);
      out[i].text = cut_at_stop(router::answer_text(answer), spec.until);
      out[i].info = std::move(info);
    }, [&](size_t i) { if (each) each(i, out[i]); }, progress);
    return out;
  }

 private:
  // Sends one request; returns the answer and its log row.
  std::pair<json, json> call(bool chat, const json& request) {
    server::RequestInfo info;
    info.request_id = prefix_ + std::to_string(++counter_);
    if (!options_.task_tag.empty()) info.headers[router_->config().task_header] = options_.task_tag;
    info.body = request.dump();
    auto sink = std::make_shared<WaitSink>();
    if (chat) {
      router_->chat_completions(request, info, sink);
    } else {
      router_->completions(request, info, sink);
    }
    auto [ok, body] = sink->wait();
    if (!ok) {
      const std::string message = body.contains("error") ? body["error"].value("message", body.dump()) : body.dump();
      fail(ErrorKind::io, "router ({}): {}", options_.route, message);
    }
    return {std::move(body), log_row(info.request_id)};
  }

  json log_row(const std::string& request_id) {
    router_->store().flush();
    std::lock_guard lock(db_mutex_);
    if (!db_ && sqlite3_open_v2(router_->config().database.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr) !=
                    SQLITE_OK) {
      const std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      fail(ErrorKind::io, "cannot read the router's log '{}': {}", router_->config().database, m);
    }
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_stmt* stmt = nullptr;
    json row = {{"tier", "?"}};
    if (sqlite3_prepare_v2(db_, "SELECT tier, cost_usd, input_tokens, output_tokens, escalations FROM requests WHERE request_id = ?1",
                           -1, &stmt, nullptr) == SQLITE_OK) {
      sqlite3_bind_text(stmt, 1, request_id.data(), int(request_id.size()), SQLITE_TRANSIENT);
      if (sqlite3_step(stmt) == SQLITE_ROW) {
        const auto* tier = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        row = {{"tier", tier ? tier : "?"}, {"cost_usd", sqlite3_column_double(stmt, 1)},
               {"input_tokens", sqlite3_column_int64(stmt, 2)}, {"output_tokens", sqlite3_column_int64(stmt, 3)},
               {"escalations", sqlite3_column_int64(stmt, 4)}};
      }
    }
    sqlite3_finalize(stmt);
    return row;
  }

  std::shared_ptr<router::Router> router_;
  RouterBackendOptions options_;
  json identity_;
  std::string prefix_;
  std::atomic<uint64_t> counter_{0};
  std::mutex db_mutex_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_router_backend(std::shared_ptr<router::Router> router, const RouterBackendOptions& options,
                                             json identity) {
  return std::make_unique<RouterBackend>(std::move(router), options, std::move(identity));
}

std::vector<SweepPoint> sweep_points(const RouterEvalOptions& o, const router::RouterConfig& config) {
  std::vector<SweepPoint> points;
  std::vector<std::string> routes = o.routes;
  if (routes.empty()) {
    bool has_auto = false;
    for (const auto& r : config.routes) has_auto = has_auto || r.model == "auto";
    routes.push_back(has_auto || config.routes.empty() ? "auto" : config.routes.front().model);
  }
  for (const auto& r : routes) points.push_back({"route " + r, "as configured", r, {}});
  for (const auto& sweep : o.sweeps) {
    const size_t eq = sweep.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == sweep.size()) {
      fail(ErrorKind::invalid_argument, "--sweep: expected PATH=V1,V2,..., found '{}'", sweep);
    }
    const std::string path = sweep.substr(0, eq);
    for (const auto& value : split(sweep.substr(eq + 1), ',')) {
      if (value.empty()) fail(ErrorKind::invalid_argument, "--sweep '{}': an empty value", sweep);
      const auto parts = split(path, '.');
      points.push_back({parts.back() + "=" + value, "sweep " + parts.back(), routes.front(), {{path, value}}});
    }
  }
  if (o.baselines) {
    for (const auto& t : config.tiers) points.push_back({"tier " + t.name, "single tier", t.name, {}});
  }
  return points;
}

std::string main_metric(const json& report) {
  const std::string task = report.value("task", "");
  if (!report.contains("results") || !report.at("results").contains(task)) return "";
  const json& r = report.at("results").at(task);
  for (const char* key : {"score,none", "exact_match,strict-match", "acc,none", "exact_match,custom-extract", "pass@1,create_test"}) {
    if (r.contains(key)) return key;
  }
  return "";
}

json run_router_evaluation(const RouterEvalOptions& o, const TaskOptions& task, const router::RouterOptions& router_options,
                           const std::function<Progress(const std::string&)>& progress_for) {
  const router::RouterConfig base = load_router_config(o.config_path, {});
  const auto points = sweep_points(o, base);
  // The routers' logs go to a scratch folder: evaluation traffic never reaches the configured log.
  char pattern[] = "/tmp/slm-router-eval-XXXXXX";
  if (!mkdtemp(pattern)) fail(ErrorKind::io, "cannot create a temporary folder");
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{pattern};
  json summary = {{"config", o.config_path}, {"task", task_name(task.task)}, {"data", task.data_path},
                  {"points", json::array()}};
  std::string quality = o.quality;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < points.size(); ++i) {
    const SweepPoint& p = points[i];
    std::string yaml;
    router::RouterConfig config = load_router_config(o.config_path, p.overrides, &yaml);
    config.database = (cleanup.dir / ("point" + std::to_string(i) + ".db")).string();
    auto router = std::make_shared<router::Router>(config, router_options);
    RouterBackendOptions bo;
    bo.route = p.route;
    bo.concurrency = o.concurrency;
    bo.seed = o.seed;
    bo.task_tag = o.task_tag;
    const json identity = {{"backend", "router"}, {"config_sha256", sha256_hex(yaml)}, {"route", p.route}};
    auto backend = make_router_backend(router, bo, identity);
    const json report = run_task(*backend, task, progress_for ? progress_for(p.label) : Progress{});
    if (quality.empty()) quality = main_metric(report);
    const json& results = report.at("results").at(report.at("task").get<std::string>());
    if (!results.contains(quality)) {
      fail(ErrorKind::invalid_argument, "--quality: the report has no metric '{}' (it has {})", quality, results.dump());
    }
    const size_t comma = quality.find(',');
    const std::string se_key = quality.substr(0, comma) + "_stderr" + (comma == std::string::npos ? "" : quality.substr(comma));
    json point = {{"label", p.label}, {"series", p.series}, {"route", p.route}, {"quality", results.at(quality)},
                  {"quality_stderr", results.value(se_key, json(nullptr))}, {"results", results},
                  {"routing", report.value("routing", json::object())}};
    json overrides = json::object();
    for (const auto& [path, value] : p.overrides) overrides[path] = value;
    point["overrides"] = overrides;
    if (report.contains("cache")) point["cache"] = report.at("cache");
    summary["points"].push_back(point);
  }
  summary["quality_metric"] = quality;
  summary["total_evaluation_time_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

json fetch_router_stats(const std::string& base_url, const std::string& api_key, double timeout_s) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  try {
    const router::Url url = router::Url::parse(base_url);
    if (url.tls) return nullptr;
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::milliseconds(int64_t(timeout_s * 1000)));
    stream.connect(resolver.resolve(url.host, url.port.empty() ? "80" : url.port));
    http::request<http::empty_body> req(http::verb::get, url.base_path + "/router/stats", 11);
    req.set(http::field::host, url.host);
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    beast::error_code ec;
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    if (res.result_int() != 200) return nullptr;
    json body = json::parse(res.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || body.value("object", "") != "router.stats" || !body.contains("tiers")) {
      return nullptr;
    }
    return body;
  } catch (const std::exception&) {
    return nullptr;  // not a router, or not reachable this way
  }
}

json routing_from_stats(const json& before, const json& after) {
  json out = {{"requests", int64_t(0)}, {"tiers", json::object()}, {"cost_usd", 0.0}, {"input_tokens", int64_t(0)},
              {"output_tokens", int64_t(0)}, {"escalations", int64_t(0)}};
  if (!after.is_object() || !after.contains("tiers")) return out;
  const json none = json::object();
  for (const auto& [tier, t] : after.at("tiers").items()) {
    const json& b = before.is_object() && before.contains("tiers") && before.at("tiers").contains(tier) ? before.at("tiers").at(tier) : none;
    const int64_t requests = t.value("requests", int64_t(0)) - b.value("requests", int64_t(0));
    if (requests <= 0) continue;
    out["tiers"][tier] = requests;
    out["requests"] = out["requests"].get<int64_t>() + requests;
    out["cost_usd"] = out["cost_usd"].get<double>() + t.value("cost_usd", 0.0) - b.value("cost_usd", 0.0);
    for (const char* key : {"input_tokens", "output_tokens", "escalations"}) {
      out[key] = out[key].get<int64_t>() + t.value(key, int64_t(0)) - b.value(key, int64_t(0));
    }
  }
  const double n = double(std::max<int64_t>(1, out["requests"].get<int64_t>()));
  json shares = json::object();
  for (const auto& [tier, count] : out["tiers"].items()) shares[tier] = count.get<double>() / n;
  out["tier_share"] = shares;
  out["cost_usd_per_request"] = out["cost_usd"].get<double>() / n;
  return out;
}

namespace {

struct CostUnit {
  double scale;
  std::string name;
};

// Costs per request are small: the plot shows them per 1, 1k or 1M requests, whichever reads best.
CostUnit cost_unit(const json& summary) {
  double max_cost = 0;
  for (const auto& p : summary.at("points")) max_cost = std::max(max_cost, p.at("routing").value("cost_usd_per_request", 0.0));
  if (max_cost >= 0.01 || max_cost == 0) return {1, "USD per request"};
  if (max_cost * 1e3 >= 0.01) return {1e3, "USD per 1k requests"};
  return {1e6, "USD per 1M requests"};
}

std::string pct(double v) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(0);
  s << v * 100 << "%";
  return s.str();
}

std::string shares_text(const json& routing) {
  std::string out;
  if (!routing.contains("tier_share")) return "-";
  for (const auto& [tier, share] : routing.at("tier_share").items()) {
    if (!out.empty()) out += " ";
    out += tier + " " + pct(share.get<double>());
  }
  return out;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

}  // namespace

std::string router_table(const json& summary) {
  const CostUnit unit = cost_unit(summary);
  std::ostringstream out;
  const std::string q = summary.value("quality_metric", "quality");
  char line[512];
  std::snprintf(line, sizeof line, "%-34s %-26s %9s %9s %14s  %s\n", "configuration", "series", q.substr(0, q.find(',')).c_str(),
                "stderr", "cost", "tier share");
  out << line;
  for (const auto& p : summary.at("points")) {
    const json& routing = p.at("routing");
    const std::string se = p.at("quality_stderr").is_number() ? fixed(p.at("quality_stderr").get<double>(), 4) : "N/A";
    std::snprintf(line, sizeof line, "%-34s %-26s %9.4f %9s %14s  %s\n", p.at("label").get<std::string>().substr(0, 34).c_str(),
                  p.at("series").get<std::string>().substr(0, 26).c_str(), p.at("quality").get<double>(), se.c_str(),
                  fixed(routing.value("cost_usd_per_request", 0.0) * unit.scale, 6).c_str(), shares_text(routing).c_str());
    out << line;
  }
  out << "cost: " << unit.name << "\n";
  return out.str();
}

std::string write_router_report(const json& summary, const std::string& dir) {
  fs::create_directories(dir);
  const CostUnit unit = cost_unit(summary);
  Plot plot;
  plot.title = "Quality against cost: " + summary.value("task", std::string()) + " through " +
               fs::path(summary.value("config", std::string())).filename().string();
  plot.x_label = "cost, " + unit.name;
  plot.y_label = summary.value("quality_metric", std::string("quality"));
  std::map<std::string, int> series;
  for (const auto& p : summary.at("points")) {
    const std::string s = p.at("series");
    if (!series.count(s)) {
      series[s] = int(plot.series_names.size());
      plot.series_names.push_back(s);
    }
    PlotPoint pt;
    pt.label = p.at("label");
    pt.x = p.at("routing").value("cost_usd_per_request", 0.0) * unit.scale;
    pt.y = p.at("quality").get<double>();
    pt.y_error = p.at("quality_stderr").is_number() ? 1.96 * p.at("quality_stderr").get<double>() : 0;
    pt.series = series[s];
    plot.points.push_back(pt);
  }
  const std::string svg = render_svg(plot);
  const std::string png = encode_png(render_image(plot));
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream out(fs::path(dir) / name, std::ios::binary);
    out << bytes;
    if (!out) fail(ErrorKind::io, "cannot write '{}'", (fs::path(dir) / name).string());
  };
  write("router_eval.json", summary.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  write("quality_cost.svg", svg);
  write("quality_cost.png", png);
  // The HTML report: table, the SVG inline, the PNG as a data URL; no external resources.
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" << xml_escape(plot.title) << "</title>\n"
       << "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
          ".bar{display:inline-block;height:12px}</style></head><body>\n"
       << "<h1>" << xml_escape(plot.title) << "</h1>\n<p>Task <b>" << xml_escape(summary.value("task", std::string()))
       << "</b> on <code>" << xml_escape(summary.value("data", std::string())) << "</code>; quality metric <code>"
       << xml_escape(plot.y_label) << "</code> (± 1.96 standard errors); cost at the configuration's prices, "
       << xml_escape(unit.name) << ".</p>\n" << svg << "\n<table>\n<tr><th>configuration</th><th>series</th><th>route</th><th>"
       << xml_escape(plot.y_label) << "</th><th>stderr</th><th>cost</th><th>requests</th><th>escalations</th><th>tier share</th></tr>\n";
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  std::map<std::string, int> tier_color;
  for (const auto& p : summary.at("points")) {
    const json& routing = p.at("routing");
    html << "<tr><td>" << xml_escape(p.at("label").get<std::string>()) << "</td><td>" << xml_escape(p.at("series").get<std::string>())
         << "</td><td>" << xml_escape(p.at("route").get<std::string>()) << "</td><td>" << fixed(p.at("quality").get<double>(), 4)
         << "</td><td>" << (p.at("quality_stderr").is_number() ? fixed(p.at("quality_stderr").get<double>(), 4) : "N/A")
         << "</td><td>" << fixed(routing.value("cost_usd_per_request", 0.0) * unit.scale, 6) << "</td><td>"
         << routing.value("requests", int64_t(0)) << "</td><td>" << routing.value("escalations", int64_t(0)) << "</td><td>";
    if (routing.contains("tier_share")) {
      for (const auto& [tier, share] : routing.at("tier_share").items()) {
        if (!tier_color.count(tier)) tier_color[tier] = int(tier_color.size());
        html << "<span class=\"bar\" title=\"" << xml_escape(tier) << "\" style=\"width:" << fixed(share.get<double>() * 120, 1)
             << "px;background:" << colors[size_t(tier_color[tier]) % 6] << "\"></span>";
      }
      html << " " << xml_escape(shares_text(routing));
    }
    html << "</td></tr>\n";
  }
  html << "</table>\n<h2>PNG</h2>\n<img alt=\"quality against cost\" src=\"data:image/png;base64," << base64(png) << "\">\n"
       << "</body></html>\n";
  write("report.html", html.str());
  return router_table(summary);
}

}  // namespace slm::eval
