// Input records of the task commands (classify, extract): JSONL lines with a text field, JSON
// strings, or plain lines.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace slm::cli {

struct TaskRecord {
  std::string text;
  nlohmann::ordered_json id;  // the record's "id" when it has one, else null
  size_t line = 0;            // 1-based
};

// One record per non-empty line: an object's `field`, a JSON string, or the line itself.
std::vector<TaskRecord> parse_task_records(const std::string& data, const std::string& field);

}  // namespace slm::cli
