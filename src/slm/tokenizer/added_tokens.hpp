// Splits text on added tokens (control and user-defined tokens) before pre-tokenization: at each
// position the longest added token wins, leftmost first, as Hugging Face's added vocabulary does.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/tokenizer/tokenizer.hpp"

namespace slm {

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // Takes every control and user-defined token of `data`; their options from data.added_options.
  explicit AddedTokenMatcher(const TokenizerData& data);
  // Takes the control and user-defined tokens of `data` for which `include(id)` holds, matching
  // the text `text_of(id)` instead of the token's own.
  AddedTokenMatcher(const TokenizerData& data, const std::function<bool(int32_t)>& include,
                    const std::function<std::string(int32_t)>& text_of);

  struct Part {
    std::string_view text;  // text between added tokens (when token < 0)
    int32_t token = -1;
  };
  // Splits `text`; control tokens match only when `parse_control` (user-defined ones always do).
  void split(std::string_view text, bool parse_control, std::vector<Part>& parts) const;
  bool empty() const { return nodes_.size() <= 1; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node
    int32_t token = -1;
    bool control = false;
    TokenizerData::AddedTokenOptions options;
  };
  int32_t child(int32_t node, uint8_t byte) const;
  std::vector<Node> nodes_;
  std::array<int32_t, 256> root_{};
};

// Unicode White_Space.
bool is_white_space(uint32_t code_point);

}  // namespace slm
