// Facts shared by the tokenizer loaders: which token texts end generation.
#pragma once

#include <cstdint>
#include <vector>

#include "slm/tokenizer/tokenizer.hpp"

namespace slm {

// Adds to data.eog_ids (keeping it free of duplicates) eos and every control or user-defined
// token whose text is a known end-of-turn marker (<|eot_id|>, <|im_end|>, <|endoftext|>, ...).
void add_end_of_generation_tokens(TokenizerData& data);

}  // namespace slm
