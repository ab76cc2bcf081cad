#include "slm/eval/cache.hpp"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <fstream>

#include "slm/util/error.hpp"

namespace slm::eval {

using json = nlohmann::json;

namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) fail(ErrorKind::internal, "SHA-256 unavailable");
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string hex_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    return hex(md, n);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Length-prefixed fields: no two different field lists hash the same text.
void field(std::string& out, const std::string& value) {
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += ';';
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sqlite_error(sqlite3* db) { return db ? sqlite3_errmsg(db) : "out of memory"; }

}  // namespace

std::string sha256_hex(const std::string& data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex_digest();
}

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::not_found, "cannot open '{}' to hash it", path);
  Sha256 h;
  std::string buf(1 << 16, '\0');
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h.update(buf.data(), size_t(in.gcount()));
  }
  return h.hex_digest();
}

ResultCache::ResultCache(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    const std::string m = sqlite_error(db_);
    sqlite3_close(db_);
    db_ = nullptr;
    fail(ErrorKind::io, "expected to open the result cache '{}', found: {}", path, m);
  }
  sqlite3_busy_timeout(db_, 5000);
  char* err = nullptr;
  const char* schema =
      "PRAGMA journal_mode=WAL;"
      "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, time REAL NOT NULL);";
  if (sqlite3_exec(db_, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string m = err ? err : "unknown";
    sqlite3_free(err);
    sqlite3_close(db_);
    db_ = nullptr;
    fail(ErrorKind::io, "expected '{}' to be a result cache (SQLite), found: {}", path, m);
  }
}

ResultCache::~ResultCache() {
  if (db_) sqlite3_close(db_);
}

std::optional<json> ResultCache::get(const std::string& key) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM results WHERE key = ?1", -1, &stmt, nullptr) != SQLITE_OK) {
    fail(ErrorKind::io, "result cache '{}': {}", path_, sqlite_error(db_));
  }
  sqlite3_bind_text(stmt, 1, key.data(), int(key.size()), SQLITE_TRANSIENT);
  std::optional<json> out;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    const std::string text = p ? std::string(p, size_t(sqlite3_column_bytes(stmt, 0))) : std::string();
    json value = json::parse(text, nullptr, false);
    if (!value.is_discarded()) out = std::move(value);  // a damaged row is computed again
  }
  sqlite3_finalize(stmt);
  return out;
}

void ResultCache::put(const std::string& key, const json& value) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO results (key, value, time) VALUES (?1, ?2, julianday('now'))", -1,
                         &stmt, nullptr) != SQLITE_OK) {
    fail(ErrorKind::io, "result cache '{}': {}", path_, sqlite_error(db_));
  }
  const std::string text = dump(value);
  sqlite3_bind_text(stmt, 1, key.data(), int(key.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt, 2, text.data(), int(text.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) fail(ErrorKind::io, "expected the result cache '{}' to be writable, found: {}", path_, sqlite_error(db_));
}

int64_t ResultCache::size() {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* stmt = nullptr;
  int64_t n = 0;
  if (sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM results", -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    n = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return n;
}

CachingBackend::CachingBackend(Backend& inner, ResultCache& cache, json scope)
    : inner_(inner), cache_(cache), scope_(dump(json{{"scope", scope}, {"identity", inner.identity()}})) {}

std::string CachingBackend::key(const LoglikelihoodRequest& r) const {
  std::string text;
  field(text, scope_);
  field(text, "loglikelihood");
  field(text, r.key);
  field(text, r.context);
  field(text, r.continuation);
  return sha256_hex(text);
}

std::string CachingBackend::key(const GenerationSpec& s) const {
  std::string text;
  field(text, scope_);
  field(text, "generate");
  field(text, s.key);
  field(text, s.prompt);
  for (const auto& u : s.until) field(text, u);
  field(text, std::to_string(s.until.size()));
  field(text, std::to_string(s.max_tokens));
  field(text, dump(json(s.temperature)));
  field(text, std::to_string(s.seed));
  return sha256_hex(text);
}

std::vector<LoglikelihoodResult> CachingBackend::loglikelihood(const std::vector<LoglikelihoodRequest>& requests,
                                                               const Progress& progress, const OnScored& each) {
  std::vector<LoglikelihoodResult> out(requests.size());
  std::vector<std::string> keys;
  std::vector<size_t> missing;
  std::vector<LoglikelihoodRequest> asked;
  for (size_t i = 0; i < requests.size(); ++i) {
    keys.push_back(key(requests[i]));
    const auto hit = cache_.get(keys.back());
    if (hit && hit->contains("logprob")) {
      out[i].logprob = hit->at("logprob").get<double>();
      out[i].is_greedy = hit->value("is_greedy", false);
      out[i].tokens = hit->value("tokens", int64_t(0));
      ++reused_;
      if (each) each(i, out[i]);
    } else {
      missing.push_back(i);
      asked.push_back(requests[i]);
    }
  }
  const size_t base = requests.size() - missing.size();
  if (progress && base > 0) progress(base);
  if (asked.empty()) return out;
  const auto fresh = inner_.loglikelihood(
      asked, [&](size_t done) { if (progress) progress(base + done); },
      [&](size_t k, const LoglikelihoodResult& r) {
        cache_.put(keys[missing[k]], {{"logprob", r.logprob}, {"is_greedy", r.is_greedy}, {"tokens", r.tokens}});
        if (each) each(missing[k], r);
      });
  for (size_t k = 0; k < missing.size(); ++k) out[missing[k]] = fresh[k];
  computed_ += int64_t(missing.size());
  return out;
}

std::vector<Generation> CachingBackend::generate(const std::vector<GenerationSpec>& specs, const Progress& progress,
                                                 const OnGenerated& each) {
  std::vector<Generation> out(specs.size());
  std::vector<std::string> keys;
  std::vector<size_t> missing;
  std::vector<GenerationSpec> asked;
  for (size_t i = 0; i < specs.size(); ++i) {
    keys.push_back(key(specs[i]));
    const auto hit = cache_.get(keys.back());
    if (hit && hit->contains("text") && hit->at("text").is_string()) {
      out[i].text = hit->at("text").get<std::string>();
      out[i].info = hit->value("info", json(nullptr));
      ++reused_;
      if (each) each(i, out[i]);
    } else {
      missing.push_back(i);
      asked.push_back(specs[i]);
    }
  }
  const size_t base = specs.size() - missing.size();
  if (progress && base > 0) progress(base);
  if (asked.empty()) return out;
  const auto fresh = inner_.generate(
      asked, [&](size_t done) { if (progress) progress(base + done); },
      [&](size_t k, const Generation& g) {
        cache_.put(keys[missing[k]], {{"text", g.text}, {"info", g.info}});
        if (each) each(missing[k], g);
      });
  for (size_t k = 0; k < missing.size(); ++k) out[missing[k]] = fresh[k];
  computed_ += int64_t(missing.size());
  return out;
}

}  // namespace slm::eval
