#include "slm/tokenizer/special_tokens.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace slm {

namespace {

// Texts of tokens that end a turn or a document in the vocabularies slm loads.
constexpr std::array<std::string_view, 16> kEndOfGeneration = {
    "<|eot_id|>",          // Llama 3: end of turn
    "<|eom_id|>",          // Llama 3.1: end of message (tool call follows)
    "<|end_of_text|>",     // Llama 3: end of document
    "<|im_end|>",          // ChatML (Qwen, SmolLM2)
    "<|endoftext|>",       // GPT-2, Qwen, SmolLM2
    "<|end|>",             // Phi-3
    "<end_of_turn>",       // Gemma
    "<|return|>",          // gpt-oss
    "<|call|>",            // gpt-oss
    "<EOT>",               // CodeLlama infill
    "_<EOT>",
    "<end_of_utterance>",  // SmolVLM / SmolDocling
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",  // DeepSeek: <｜end▁of▁sentence｜>
    "<|fim_pad|>",         // Qwen fill-in-the-middle markers, which end generation there too
    "<|repo_name|>",
    "<|file_sep|>",
};

}  // namespace

void add_end_of_generation_tokens(TokenizerData& data) {
  auto add = [&](int32_t id) {
    if (id < 0 || size_t(id) >= data.tokens.size()) return;
    if (std::find(data.eog_ids.begin(), data.eog_ids.end(), id) == data.eog_ids.end()) data.eog_ids.push_back(id);
  };
  add(data.eos_id);
  for (size_t id = 0; id < data.tokens.size(); ++id) {
    const TokenType type = id < data.types.size() ? data.types[id] : TokenType::normal;
    if (type != TokenType::control && type != TokenType::user_defined) continue;
    if (std::find(kEndOfGeneration.begin(), kEndOfGeneration.end(), data.tokens[id]) != kEndOfGeneration.end()) {
      add(int32_t(id));
    }
  }
  std::sort(data.eog_ids.begin(), data.eog_ids.end());
}

}  // namespace slm
