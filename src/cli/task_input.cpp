#include "task_input.hpp"

#include "slm/util/error.hpp"

namespace slm::cli {

std::vector<TaskRecord> parse_task_records(const std::string& data, const std::string& field) {
  std::vector<TaskRecord> out;
  size_t at = 0, line_no = 0;
  while (at < data.size()) {
    size_t nl = data.find('\n', at);
    if (nl == std::string::npos) nl = data.size();
    std::string line = data.substr(at, nl - at);
    at = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    TaskRecord r;
    r.line = line_no;
    const auto j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
      if (!j.contains(field) || !j[field].is_string()) {
        fail(ErrorKind::invalid_argument, "line {}: expected a string field '{}', found {}", line_no, field,
             j.contains(field) ? j[field].type_name() : "none");
      }
      r.text = j[field].get<std::string>();
      if (j.contains("id")) r.id = j["id"];
    } else if (!j.is_discarded() && j.is_string()) {
      r.text = j.get<std::string>();
    } else {
      r.text = line;
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace slm::cli
