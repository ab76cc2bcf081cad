// One small template per Jinja2 construct, rendered by Python Jinja2 in transformers' environment
// (tools/ref/render_templates.py wrote the expected output or error): ours must agree byte for
// byte, or fail where Jinja2 fails, with the same message.
#include <gtest/gtest.h>

#include "chat_template_test_util.hpp"
#include "slm/tokenizer/chat_template.hpp"
#include "slm/util/error.hpp"

namespace slm {
namespace {

struct ConstructCase {
  std::string name;
  nlohmann::ordered_json row;
};

std::vector<ConstructCase> load_constructs() {
  std::vector<ConstructCase> cases;
  for (auto& row : test::read_ordered_jsonl(test::chat_data("constructs.jsonl"))) {
    cases.push_back({row["name"].get<std::string>(), row});
  }
  return cases;
}

void PrintTo(const ConstructCase& c, std::ostream* os) { *os << c.name; }

class Construct : public ::testing::TestWithParam<ConstructCase> {};

TEST_P(Construct, RendersAsJinja2) {
  const auto& row = GetParam().row;
  const std::string source = row["template"].get<std::string>();
  SCOPED_TRACE("template: " + test::visible(source));
  if (row.contains("output")) {
    std::string actual;
    try {
      actual = ChatTemplate::parse(source).render(row["context"]);
    } catch (const Error& e) {
      FAIL() << "expected output \"" << test::visible(row["output"].get<std::string>()) << "\", got error: " << e.what();
    }
    const std::string diff = test::difference(row["output"].get<std::string>(), actual);
    EXPECT_TRUE(diff.empty()) << diff;
    return;
  }
  const std::string error_type = row["error_type"].get<std::string>();
  const std::string message = row["error"].get<std::string>();
  try {
    const std::string out = ChatTemplate::parse(source).render(row["context"]);
    FAIL() << "expected " << error_type << " (" << message << "), got output \"" << test::visible(out) << "\"";
  } catch (const Error& e) {
    const std::string what = e.what();
    if (error_type == "TemplateError") {
      // raise_exception: the message is the template's own, unchanged.
      EXPECT_EQ(what, message);
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    } else if (error_type == "TemplateSyntaxError" || error_type == "SyntaxError") {
      EXPECT_EQ(e.kind(), ErrorKind::format) << what;
    } else if (message.rfind("do_", 0) == 0 || message.rfind("sync_do_", 0) == 0) {
      // Python names its own function in argument-binding errors ("do_sort() got ..."); ours
      // names the filter.
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << what;
    } else {
      EXPECT_NE(what.find(message), std::string::npos) << "expected the message \"" << message << "\" in: " << what;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, Construct, ::testing::ValuesIn(load_constructs()),
                         [](const ::testing::TestParamInfo<ConstructCase>& info) { return info.param.name; });

TEST(ChatTemplateConstructs, DataIsPresent) {
  // Guards against the parameterized suite silently running nothing.
  EXPECT_GE(load_constructs().size(), 100u);
}

}  // namespace
}  // namespace slm
