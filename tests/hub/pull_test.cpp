// slm pull against a fake hub on 127.0.0.1: selection, redirects, resume, verification, locking,
// authentication, unsafe names.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "fake_hub.hpp"
#include "slm/hub/hash.hpp"
#include "slm/hub/pull.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {
namespace {

namespace fs = std::filesystem;
using test::FakeHub;

// One fake hub for the whole suite: tiny GGUF files, a split GGUF, a safetensors folder, a private
// repo and a repo whose listing carries an unsafe name.
class PullTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    test::no_proxy_for_loopback();
    const fs::path src = test::fresh_dir("pull_sources");
    q4_ = test::make_gguf(src / "tiny-Q4_K_M.gguf", 64 * 1024, 1);   // 256 KiB of weights
    q8_ = test::make_gguf(src / "tiny-Q8_0.gguf", 256 * 1024, 2);    // 1 MiB
    part1_ = test::make_gguf(src / "part1.gguf", 4096, 3);
    part2_ = test::make_gguf(src / "part2.gguf", 4096, 4);
    const fs::path fixture = fs::path(SLM_TEST_DATA) / "models" / "llama3";
    const fs::path bert = fs::path(SLM_TEST_DATA) / "models" / "bert_tiny";
    nlohmann::json config = {
        {"token", "hf_secret_token"},
        {"repos",
         {{"test/tiny-GGUF",
           {{"files",
             {{"README.md", {{"text", "# tiny\n"}}},
              {"tiny-Q4_K_M.gguf", {{"file", q4_.string()}}},
              {"tiny-Q8_0.gguf", {{"file", q8_.string()}}},
              {"mmproj-tiny-Q8_0.gguf", {{"file", part1_.string()}}},
              {"split/tiny-F16-00001-of-00002.gguf", {{"file", part1_.string()}}},
              {"split/tiny-F16-00002-of-00002.gguf", {{"file", part2_.string()}}}}}}},
          {"test/tiny-llama",
           {{"files",
             {{"config.json", {{"file", (fixture / "config.json").string()}}},
              {"model.safetensors", {{"file", (fixture / "model.safetensors").string()}}},
              {"tokenizer_config.json", {{"text", "{\"add_bos_token\": true}"}}},
              {"README.md", {{"text", "not pulled"}}}}}}},
          {"test/tiny-bert",
           {{"files",
             {{"config.json", {{"file", (bert / "config.json").string()}}},
              {"model.safetensors", {{"file", (bert / "model.safetensors").string()}}},
              {"tokenizer.json", {{"file", (bert / "tokenizer.json").string()}}},
              {"modules.json", {{"file", (bert / "modules.json").string()}}},
              {"sentence_bert_config.json", {{"file", (bert / "sentence_bert_config.json").string()}}},
              {"1_Pooling/config.json", {{"file", (bert / "1_Pooling" / "config.json").string()}}},
              {"2_Normalize/README", {{"text", "no files\n"}}},
              {"onnx/config.json", {{"text", "{}"}}}}}}},
          {"test/private-GGUF", {{"private", true}, {"files", {{"p-Q4_K_M.gguf", {{"file", q4_.string()}}}}}}},
          {"test/evil-GGUF",
           {{"files", {{"e-Q4_K_M.gguf", {{"file", q4_.string()}}}}}, {"extra_listing", {"../../evil-Q8_0.gguf"}}}}}}};
    hub_ = new FakeHub(config);
  }
  static void TearDownTestSuite() {
    delete hub_;
    hub_ = nullptr;
  }
  void SetUp() override {
    hub_->control("reset");
    store_ = std::make_unique<Store>(test::fresh_dir(std::string("pull_") +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  HubClient client(const std::string& token = "") const { return HubClient(HubConfig{hub_->endpoint(), token}); }
  static PullOptions options(int retries = 0, std::ostream* log = nullptr) {
    PullOptions o;
    o.download.retries = retries;
    o.download.retry_delay_s = 0.05;
    o.download.log = log;
    o.download.progress = log ? ProgressStyle::lines : ProgressStyle::none;
    o.download.line_interval_s = 0.0;
    return o;
  }
  Manifest pull_name(const std::string& name, const PullOptions& o, const std::string& token = "") const {
    return pull(*store_, client(token), name, o);
  }
  // Every file of the store's tree, relative to its root.
  std::vector<std::string> store_files() const {
    std::vector<std::string> out;
    if (!fs::exists(store_->root())) return out;
    for (const auto& e : fs::recursive_directory_iterator(store_->root())) {
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), store_->root()).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static FakeHub* hub_;
  static fs::path q4_, q8_, part1_, part2_;
  std::unique_ptr<Store> store_;
};

FakeHub* PullTest::hub_ = nullptr;
fs::path PullTest::q4_, PullTest::q8_, PullTest::part1_, PullTest::part2_;

TEST_F(PullTest, GgufByQuantTagThroughTheCdnRedirect) {
  const Manifest m = pull_name("hf:test/tiny-GGUF:q8_0", options());
  EXPECT_EQ(m.name, "hf:test/tiny-GGUF:Q8_0");
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.quant, "Q8_0");
  ASSERT_EQ(m.files.size(), 1u);
  EXPECT_EQ(m.files[0].path, "tiny-Q8_0.gguf");
  EXPECT_EQ(m.files[0].verified, "sha256");
  EXPECT_EQ(m.files[0].sha256, sha256_file(q8_));
  EXPECT_EQ(test::slurp(m.model_path()), test::slurp(q8_));
  EXPECT_EQ(m.model_path(), store_->root() / "models/hf/test/tiny-GGUF/Q8_0/tiny-Q8_0.gguf");
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q8_0.gguf"), fs::file_size(q8_));
  // The manifest on disk says the same, and the store finds it by name.
  const auto found = store_->find("hf:test/tiny-GGUF:Q8_0");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->files[0].sha256, m.files[0].sha256);
  EXPECT_EQ(store_files(), (std::vector<std::string>{"models/hf/test/tiny-GGUF/Q8_0/manifest.json",
                                                     "models/hf/test/tiny-GGUF/Q8_0/tiny-Q8_0.gguf"}));
}

TEST_F(PullTest, DefaultPicksQ4KMAndSplitTagBringsAllParts) {
  const Manifest d = pull_name("hf:test/tiny-GGUF", options());
  EXPECT_EQ(d.name, "hf:test/tiny-GGUF:Q4_K_M");
  EXPECT_EQ(test::slurp(d.model_path()), test::slurp(q4_));
  const Manifest s = pull_name("hf:test/tiny-GGUF:F16", options());
  ASSERT_EQ(s.files.size(), 2u);
  EXPECT_EQ(s.entry, "split/tiny-F16-00001-of-00002.gguf");
  EXPECT_EQ(test::slurp(s.dir / "split/tiny-F16-00001-of-00002.gguf"), test::slurp(part1_));
  EXPECT_EQ(test::slurp(s.dir / "split/tiny-F16-00002-of-00002.gguf"), test::slurp(part2_));
}

TEST_F(PullTest, SpecificFile) {
  const Manifest m = pull_name("hf:test/tiny-GGUF/tiny-Q4_K_M.gguf", options());
  EXPECT_EQ(m.name, "hf:test/tiny-GGUF/tiny-Q4_K_M.gguf");
  EXPECT_EQ(m.quant, "Q4_K_M");
  EXPECT_EQ(test::slurp(m.model_path()), test::slurp(q4_));
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q8_0.gguf"), 0u);
}

TEST_F(PullTest, SafetensorsRepoWithSmallFilesVerifiedByGitId) {
  const fs::path fixture = fs::path(SLM_TEST_DATA) / "models" / "llama3";
  const Manifest m = pull_name("hf:test/tiny-llama", options());
  EXPECT_EQ(m.name, "hf:test/tiny-llama:safetensors");
  EXPECT_EQ(m.format, "safetensors");
  EXPECT_EQ(m.entry, ".");
  std::vector<std::string> got;
  for (const auto& f : m.files) got.push_back(f.path + " " + f.verified);
  EXPECT_EQ(got, (std::vector<std::string>{"config.json git-sha1", "model.safetensors sha256", "tokenizer_config.json git-sha1"}));
  EXPECT_EQ(test::slurp(m.dir / "config.json"), test::slurp(fixture / "config.json"));
  EXPECT_EQ(test::slurp(m.dir / "model.safetensors"), test::slurp(fixture / "model.safetensors"));
  EXPECT_FALSE(fs::exists(m.dir / "README.md"));
  EXPECT_FALSE(m.quant.empty());  // from config.json's dtype
  // Small files came through the hub's relative redirect, large ones through the CDN.
  const auto stats = hub_->control("stats");
  bool cache_hop = false, cdn_hop = false;
  for (const auto& r : stats["requests"]) {
    const std::string path = r["path"];
    cache_hop = cache_hop || path.find("/api/resolve-cache/") == 0;
    cdn_hop = cdn_hop || (r["server"] == "cdn" && path.find("/blob/") == 0);
  }
  EXPECT_TRUE(cache_hop);
  EXPECT_TRUE(cdn_hop);
}

TEST_F(PullTest, EmbeddingRepoBringsItsPoolingFiles) {
  const fs::path bert = fs::path(SLM_TEST_DATA) / "models" / "bert_tiny";
  const Manifest m = pull_name("hf:test/tiny-bert", options());
  EXPECT_EQ(m.name, "hf:test/tiny-bert:safetensors");
  std::vector<std::string> got;
  for (const auto& f : m.files) got.push_back(f.path);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"1_Pooling/config.json", "config.json", "model.safetensors", "modules.json",
                                           "sentence_bert_config.json", "tokenizer.json"}));
  EXPECT_EQ(test::slurp(m.dir / "1_Pooling" / "config.json"), test::slurp(bert / "1_Pooling" / "config.json"));
  EXPECT_EQ(test::slurp(m.dir / "modules.json"), test::slurp(bert / "modules.json"));
  EXPECT_FALSE(fs::exists(m.dir / "onnx"));
}

TEST_F(PullTest, ResumesAfterACutDownloadingOnlyTheRest) {
  const uint64_t size = fs::file_size(q8_);
  const uint64_t cut = 300000;
  hub_->control("set?cut_after=" + std::to_string(cut) + "&cut_times=1");
  try {
    pull_name("hf:test/tiny-GGUF:Q8_0", options(0));
    FAIL() << "the cut transfer succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("again to resume"), std::string::npos) << e.what();
  }
  const fs::path dir = store_->entry_dir("test", "tiny-GGUF", "Q8_0");
  ASSERT_TRUE(fs::exists(dir / "tiny-Q8_0.gguf.part"));
  EXPECT_EQ(fs::file_size(dir / "tiny-Q8_0.gguf.part"), cut);
  EXPECT_FALSE(fs::exists(dir / "manifest.json"));
  EXPECT_FALSE(store_->find("hf:test/tiny-GGUF:Q8_0").has_value());

  hub_->control("reset");
  const Manifest m = pull_name("hf:test/tiny-GGUF:Q8_0", options(0));
  EXPECT_EQ(test::slurp(m.model_path()), test::slurp(q8_));
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q8_0.gguf"), size - cut);
  bool ranged = false;
  const auto stats = hub_->control("stats");
  for (const auto& r : stats["requests"]) ranged = ranged || r["range"] == "bytes=" + std::to_string(cut) + "-";
  EXPECT_TRUE(ranged);
  EXPECT_FALSE(fs::exists(dir / "tiny-Q8_0.gguf.part"));
}

TEST_F(PullTest, RetriesWithinOnePull) {
  hub_->control("set?cut_after=100000&cut_times=2");
  std::ostringstream log;
  const Manifest m = pull_name("hf:test/tiny-GGUF:Q8_0", options(3, &log));
  EXPECT_EQ(test::slurp(m.model_path()), test::slurp(q8_));
  // Two cuts of 100000 bytes each were resumed, not restarted.
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q8_0.gguf"), fs::file_size(q8_));
  EXPECT_NE(log.str().find("retrying"), std::string::npos) << log.str();
}

TEST_F(PullTest, ServerIgnoringRangeStartsAgain) {
  hub_->control("set?cut_after=200000&cut_times=1");
  EXPECT_THROW(pull_name("hf:test/tiny-GGUF:Q8_0", options(0)), Error);
  hub_->control("reset");
  hub_->control("set?ignore_range=1");
  std::ostringstream log;
  const Manifest m = pull_name("hf:test/tiny-GGUF:Q8_0", options(0, &log));
  EXPECT_EQ(test::slurp(m.model_path()), test::slurp(q8_));
  EXPECT_EQ(m.files[0].sha256, sha256_file(q8_));
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q8_0.gguf"), fs::file_size(q8_));
  EXPECT_NE(log.str().find("ignored the range"), std::string::npos) << log.str();
}

TEST_F(PullTest, BadChecksumIsRejectedAndLeavesNothing) {
  hub_->control("set?corrupt=1");
  try {
    pull_name("hf:test/tiny-GGUF:Q4_K_M", options(2));
    FAIL() << "corrupted bytes were accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::format);
    EXPECT_NE(msg.find("expected sha256 " + sha256_file(q4_)), std::string::npos) << msg;
    EXPECT_NE(msg.find("found "), std::string::npos) << msg;
  }
  for (const auto& f : store_files()) {
    EXPECT_EQ(f.find(".gguf"), std::string::npos) << f;
    EXPECT_EQ(f.find("manifest"), std::string::npos) << f;
  }
  EXPECT_TRUE(store_->list().empty());
  EXPECT_FALSE(fs::exists(store_->entry_dir("test", "tiny-GGUF", "Q4_K_M")));
  // Small files are checked against their git blob id.
  EXPECT_THROW(pull_name("hf:test/tiny-llama", options(0)), Error);
  EXPECT_FALSE(fs::exists(store_->entry_dir("test", "tiny-llama", "safetensors") / "config.json"));
}

TEST_F(PullTest, ConcurrentPullsOfTheSameFileEndWithOneGoodFile) {
  hub_->control("set?throttle_ms=10");  // 64 chunks of 16 KiB: long enough to overlap
  std::vector<std::thread> threads;
  std::vector<std::string> errors(3);
  std::vector<std::ostringstream> logs(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      try {
        pull_name("hf:test/tiny-GGUF:Q8_0", options(0, &logs[size_t(i)]));
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  const fs::path dir = store_->entry_dir("test", "tiny-GGUF", "Q8_0");
  EXPECT_EQ(test::slurp(dir / "tiny-Q8_0.gguf"), test::slurp(q8_));
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q8_0.gguf"), fs::file_size(q8_));  // downloaded once
  EXPECT_FALSE(fs::exists(dir / "tiny-Q8_0.gguf.part"));
  int waited = 0;
  for (const auto& l : logs) waited += l.str().find("waiting for another download") != std::string::npos;
  EXPECT_GE(waited, 1);
}

TEST_F(PullTest, RepullKeepsVerifiedFilesAndVerifyRepairsDamage) {
  const Manifest m = pull_name("hf:test/tiny-GGUF:Q4_K_M", options());
  hub_->control("reset");
  std::ostringstream log;
  pull_name("hf:test/tiny-GGUF:Q4_K_M", options(0, &log));
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q4_K_M.gguf"), 0u);
  EXPECT_NE(log.str().find("already present"), std::string::npos) << log.str();
  // Damage the stored file (same size) and drop the manifest: the next pull re-hashes and repairs.
  {
    std::fstream f(m.model_path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');
  }
  fs::remove(m.dir / "manifest.json");
  const Manifest again = pull_name("hf:test/tiny-GGUF:Q4_K_M", options());
  EXPECT_EQ(test::slurp(again.model_path()), test::slurp(q4_));
  EXPECT_EQ(hub_->bytes_served("test/tiny-GGUF/tiny-Q4_K_M.gguf"), fs::file_size(q4_));
}

TEST_F(PullTest, PrivateRepoNeedsTheTokenWhichNeverReachesTheCdn) {
  try {
    pull_name("hf:test/private-GGUF:Q4_K_M", options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HF_TOKEN"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pull_name("hf:test/private-GGUF:Q4_K_M", options(), "hf_wrong"), Error);
  hub_->control("reset");
  const Manifest m = pull_name("hf:test/private-GGUF:Q4_K_M", options(), "hf_secret_token");
  EXPECT_EQ(test::slurp(m.model_path()), test::slurp(q4_));
  int hub_with_auth = 0, cdn_requests = 0, cdn_with_auth = 0;
  const auto stats = hub_->control("stats");
  for (const auto& r : stats["requests"]) {
    if (r["server"] == "cdn") {
      ++cdn_requests;
      cdn_with_auth += r["auth"].get<bool>();
    } else if (std::string(r["path"]).find("/_control") != 0) {
      hub_with_auth += r["auth"].get<bool>();
    }
  }
  EXPECT_GE(hub_with_auth, 2);  // the listing and the resolve request
  EXPECT_EQ(cdn_requests, 1);
  EXPECT_EQ(cdn_with_auth, 0);
}

TEST_F(PullTest, UnsafeNamesAreRefused) {
  for (const char* bad : {"hf:test/../x", "hf:test/tiny-GGUF/../../x.gguf", "hf:/abs/x", "hf:test/tiny-GGUF/a\\b.gguf"}) {
    try {
      pull_name(bad, options());
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << bad;
    }
  }
  try {
    pull_name("hf:test/evil-GGUF:Q4_K_M", options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("refusing the listing"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(store_files().empty());
  EXPECT_FALSE(fs::exists(store_->root().parent_path() / "evil-Q8_0.gguf"));
}

TEST_F(PullTest, MissingThingsAreClearErrors) {
  try {
    pull_name("hf:test/tiny-GGUF:Q5_K_S", options());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
    EXPECT_NE(std::string(e.what()).find("Q4_K_M, Q8_0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pull_name("hf:test/no-such-repo", options()), Error);
  EXPECT_THROW(pull_name("hf:test/tiny-GGUF/absent.gguf", options()), Error);
}

TEST(HubConfig, FromEnvironment) {
  const fs::path dir = test::fresh_dir("hub_config");
  ::setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
  ::setenv("HF_TOKEN", "hf_from_env", 1);
  auto c = HubConfig::from_env();
  EXPECT_EQ(c.endpoint, "http://127.0.0.1:9");
  EXPECT_EQ(c.token, "hf_from_env");
  ::unsetenv("HF_TOKEN");
  ::unsetenv("HUGGING_FACE_HUB_TOKEN");
  std::ofstream(dir / "token") << "hf_from_file\n";
  ::setenv("HF_TOKEN_PATH", (dir / "token").c_str(), 1);
  EXPECT_EQ(HubConfig::from_env().token, "hf_from_file");
  ::unsetenv("HF_TOKEN_PATH");
  ::setenv("HF_HOME", dir.c_str(), 1);
  EXPECT_EQ(HubConfig::from_env().token, "hf_from_file");
  ::unsetenv("HF_HOME");
  ::unsetenv("HF_ENDPOINT");
  EXPECT_EQ(HubConfig::from_env().endpoint, "https://huggingface.co");
}

TEST(Http, OriginsAndEncoding) {
  EXPECT_EQ(origin_of("https://HuggingFace.co/api/models/x"), "https://huggingface.co:443");
  EXPECT_EQ(origin_of("http://127.0.0.1:8080/a?b"), "http://127.0.0.1:8080");
  EXPECT_NE(origin_of("http://127.0.0.1:8080/"), origin_of("http://127.0.0.1:8081/"));
  EXPECT_EQ(origin_of("not a url"), "");
  EXPECT_EQ(url_encode_path("a b/c%d#e.gguf"), "a%20b/c%25d%23e.gguf");
  EXPECT_EQ(url_encode_path("refs/pr/1", false), "refs%2Fpr%2F1");
}

}  // namespace
}  // namespace slm::hub
