// The store: manifests, name lookup (full, short, ambiguous), removal.
#include <gtest/gtest.h>

#include "fake_hub.hpp"
#include "slm/hub/store.hpp"
#include "slm/util/error.hpp"

namespace slm::hub {
namespace {

Manifest add(const Store& store, const std::string& owner, const std::string& repo, const std::string& folder,
             const std::string& name, const std::string& format, const std::string& quant, const std::string& entry) {
  Manifest m;
  m.name = name;
  m.repo = owner + "/" + repo;
  m.revision = "main";
  m.commit = std::string(40, 'd');
  m.endpoint = "http://127.0.0.1:1";
  m.format = format;
  m.quant = quant;
  m.entry = entry;
  m.dir = store.entry_dir(owner, repo, folder);
  std::filesystem::create_directories(m.dir);
  const std::string file = entry == "." ? "config.json" : entry;
  std::ofstream(m.dir / file) << name;
  m.files.push_back({file, name.size(), std::string(64, 'e'), "sha256"});
  m.pulled_at = utc_now_iso8601();
  store.write_manifest(m);
  return m;
}

TEST(Store, ManifestRoundTripAndList) {
  const Store store(test::fresh_dir("store_list"));
  EXPECT_TRUE(store.list().empty());
  const auto a = add(store, "o", "r", "Q4_K_M", "hf:o/r:Q4_K_M", "gguf", "Q4_K_M", "m-Q4_K_M.gguf");
  add(store, "o", "r", "safetensors", "hf:o/r:safetensors", "safetensors", "BF16", ".");
  const auto all = store.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "hf:o/r:Q4_K_M");
  EXPECT_EQ(all[0].files.size(), 1u);
  EXPECT_EQ(all[0].total_size(), a.name.size());
  EXPECT_EQ(all[0].model_path(), a.dir / "m-Q4_K_M.gguf");
  EXPECT_EQ(all[1].model_path(), store.entry_dir("o", "r", "safetensors"));
  EXPECT_EQ(all[0].pulled_at.size(), 20u);  // 2025-01-02T03:04:05Z
  // A folder without a manifest (a pull in progress) is not listed; a damaged manifest neither.
  std::filesystem::create_directories(store.entry_dir("o", "r", "Q8_0"));
  std::filesystem::create_directories(store.entry_dir("o", "r", "F16"));
  std::ofstream(store.entry_dir("o", "r", "F16") / "manifest.json") << "{broken";
  EXPECT_EQ(store.list().size(), 2u);
  EXPECT_THROW(store.entry_dir("o", "r", "../x"), Error);
  EXPECT_THROW(store.entry_dir("..", "r", "x"), Error);
}

TEST(Store, ManifestWithUnsafePathsIsRefused) {
  const auto dir = test::fresh_dir("store_bad_manifest");
  nlohmann::json j = {{"name", "hf:o/r:Q8_0"}, {"repo", "o/r"}, {"format", "gguf"}, {"entry", "../../etc/passwd"},
                      {"files", nlohmann::json::array()}};
  EXPECT_THROW(Manifest::from_json(j, dir), Error);
  j["entry"] = "m.gguf";
  j["files"] = {{{"path", "/etc/passwd"}, {"size", 1}}};
  EXPECT_THROW(Manifest::from_json(j, dir), Error);
}

TEST(Store, FindsFullShortAndFileNames) {
  const Store store(test::fresh_dir("store_find"));
  add(store, "Qwen", "Qwen2.5-0.5B-Instruct-GGUF", "Q4_K_M", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M", "gguf", "Q4_K_M",
      "qwen-q4_k_m.gguf");
  add(store, "Qwen", "Qwen2.5-0.5B-Instruct-GGUF", "Q8_0", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0", "gguf", "Q8_0",
      "qwen-q8_0.gguf");
  add(store, "me", "tiny", "safetensors", "hf:me/tiny:safetensors", "safetensors", "F32", ".");
  add(store, "me", "other", "model.gguf", "hf:me/other/model.gguf", "gguf", "", "model.gguf");

  auto name_of = [&](const std::string& q) {
    auto m = store.find(q);
    return m ? m->name : std::string("<none>");
  };
  EXPECT_EQ(name_of("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0"), "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0");
  EXPECT_EQ(name_of("hf:qwen/qwen2.5-0.5b-instruct-gguf:q8_0"), "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0");
  EXPECT_EQ(name_of("Qwen2.5-0.5B-Instruct-GGUF:Q8_0"), "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0");
  // Without a tag: the Q4_K_M of several.
  EXPECT_EQ(name_of("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF"), "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M");
  EXPECT_EQ(name_of("tiny"), "hf:me/tiny:safetensors");
  EXPECT_EQ(name_of("me/tiny"), "hf:me/tiny:safetensors");
  EXPECT_EQ(name_of("hf:me/other/model.gguf"), "hf:me/other/model.gguf");
  EXPECT_EQ(name_of("other"), "hf:me/other/model.gguf");
  // A file of an entry pulled by its tag.
  EXPECT_EQ(name_of("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen-q8_0.gguf"), "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0");
  EXPECT_EQ(name_of("hf:me/tiny:Q4_K_M"), "<none>");
  EXPECT_EQ(name_of("hf:nobody/tiny"), "<none>");
  EXPECT_EQ(name_of("absent"), "<none>");
}

TEST(Store, AmbiguousShortNamesAreErrors) {
  const Store store(test::fresh_dir("store_ambiguous"));
  add(store, "a", "m", "Q2_K", "hf:a/m:Q2_K", "gguf", "Q2_K", "m-Q2_K.gguf");
  add(store, "b", "m", "Q2_K", "hf:b/m:Q2_K", "gguf", "Q2_K", "m-Q2_K.gguf");
  add(store, "a", "n", "Q2_K", "hf:a/n:Q2_K", "gguf", "Q2_K", "n-Q2_K.gguf");
  add(store, "a", "n", "Q3_K_S", "hf:a/n:Q3_K_S", "gguf", "Q3_K_S", "n-Q3_K_S.gguf");
  try {
    store.find("m");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("hf:a/m:Q2_K, hf:b/m:Q2_K"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store.find("b/m")->name, "hf:b/m:Q2_K");
  EXPECT_THROW(store.find("hf:a/n"), Error);  // two quantizations, neither Q4_K_M nor Q8_0
  EXPECT_EQ(store.find("n:Q3_K_S")->name, "hf:a/n:Q3_K_S");
}

TEST(Store, RemoveDeletesTheEntryAndEmptyParentsOnly) {
  const Store store(test::fresh_dir("store_remove"));
  const auto a = add(store, "o", "r", "Q4_K_M", "hf:o/r:Q4_K_M", "gguf", "Q4_K_M", "m-Q4_K_M.gguf");
  const auto b = add(store, "o", "r", "Q8_0", "hf:o/r:Q8_0", "gguf", "Q8_0", "m-Q8_0.gguf");
  store.remove_dir(a.dir);
  EXPECT_FALSE(std::filesystem::exists(a.dir));
  EXPECT_TRUE(std::filesystem::exists(b.dir / "m-Q8_0.gguf"));
  store.remove_dir(b.dir);
  EXPECT_FALSE(std::filesystem::exists(store.repo_dir("o", "r")));
  EXPECT_TRUE(std::filesystem::exists(store.root() / "models"));
  EXPECT_THROW(store.remove_dir(store.root()), Error);
  EXPECT_THROW(store.remove_dir(store.root() / "models" / ".." / ".."), Error);
  EXPECT_TRUE(std::filesystem::exists(store.root()));
}

}  // namespace
}  // namespace slm::hub
