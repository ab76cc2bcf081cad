// Splitting documents into chunks measured in a model's tokens, for retrieval and long inputs.
// Every chunk is a slice of the original text: [start, end) in code points (and bytes), so
// text.substr(byte_start, byte_end - byte_start) is the chunk exactly.
//
// by tokens:    windows of at most max_tokens tokens, `overlap` tokens shared by neighbours, cut at
//               character boundaries.
// by structure: Markdown blocks (ATX headings, fenced code blocks, paragraphs separated by blank
//               lines) packed greedily; a heading starts a new chunk; a block too large alone is cut
//               into sentences (code blocks into lines), then into token windows. Code blocks that
//               fit are never cut.
// by semantic:  sentences embedded; a new chunk starts where the cosine distance between neighbours
//               is above the `percentile` of all such distances, and wherever max_tokens demands.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace slm {
class Tokenizer;
}

namespace slm::tasks {

struct Chunk {
  int64_t start = 0, end = 0;            // code points
  size_t byte_start = 0, byte_end = 0;   // bytes
  int64_t tokens = 0;                    // tokens of the slice alone (no BOS/EOS)
  std::vector<std::string> section;      // heading path at the chunk's start (structure, semantic)
};

enum class ChunkBy { tokens, structure, semantic };
ChunkBy parse_chunk_by(std::string_view name);

struct ChunkOptions {
  int64_t max_tokens = 256;
  int64_t overlap = 0;        // tokens (by tokens) or trailing blocks of at most this many tokens (structure)
  ChunkBy by = ChunkBy::structure;
  double percentile = 0.85;   // semantic: distances above this quantile are breakpoints
};

// Embedding of a text (L2-normalised), for semantic breakpoints.
using EmbedFn = std::function<std::vector<float>(std::string_view)>;

// Throws Error(invalid_argument) for max_tokens < 1, overlap < 0 or >= max_tokens, text that is not
// UTF-8, or semantic without `embed`.
std::vector<Chunk> chunk_text(std::string_view text, const Tokenizer& tokenizer, const ChunkOptions& options,
                              const EmbedFn& embed = {});

// Sentence ranges (bytes) of a text: ends after '.', '!', '?' (and closing quotes or brackets) followed
// by whitespace, and at line breaks that end a paragraph.
std::vector<std::pair<size_t, size_t>> split_sentences(std::string_view text, size_t begin, size_t end);

}  // namespace slm::tasks
