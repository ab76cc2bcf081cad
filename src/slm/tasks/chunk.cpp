#include "slm/tasks/chunk.hpp"

#include <algorithm>
#include <cmath>

#include "slm/tasks/pii.hpp"
#include "slm/tokenizer/tokenizer.hpp"
#include "slm/util/error.hpp"

namespace slm::tasks {
namespace {

enum class BlockKind { heading, code, paragraph };

struct Unit {
  size_t begin, end;  // bytes
  bool break_before = false;
  std::vector<std::string> section;
};

struct Ctx {
  std::string_view text;
  const Tokenizer& tok;
  const std::vector<size_t>& cp_bytes;  // byte offset of each code point, plus the end
  const std::vector<int64_t>& cp_index;

  int64_t count(size_t b, size_t e) const {
    if (e <= b) return 0;
    return int64_t(tok.encode(text.substr(b, e - b), false, false).size());
  }
};

bool blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// "```" / "~~~" (3 or more) after at most 3 spaces: the fence's character and length, else 0.
std::pair<char, size_t> fence_of(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  if (i >= line.size() || (line[i] != '`' && line[i] != '~')) return {0, 0};
  const char c = line[i];
  size_t n = 0;
  while (i + n < line.size() && line[i + n] == c) ++n;
  return n >= 3 ? std::pair<char, size_t>{c, n} : std::pair<char, size_t>{0, 0};
}

// ATX heading level (1..6) or 0.
int heading_level(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  size_t n = 0;
  while (i + n < line.size() && line[i + n] == '#') ++n;
  if (n < 1 || n > 6) return 0;
  if (i + n < line.size() && line[i + n] != ' ' && line[i + n] != '\t' && line[i + n] != '\r') return 0;
  return int(n);
}

std::string heading_title(std::string_view line) {
  std::string_view t = trim(line);
  while (!t.empty() && t.front() == '#') t.remove_prefix(1);
  t = trim(t);
  while (!t.empty() && t.back() == '#') t.remove_suffix(1);
  return std::string(trim(t));
}

struct Block {
  size_t begin, end;
  BlockKind kind;
  std::vector<std::string> section;
};

std::vector<Block> parse_blocks(std::string_view text) {
  std::vector<Block> blocks;
  std::vector<std::string> path;
  size_t at = 0;
  size_t para_begin = std::string_view::npos, para_end = 0;
  auto flush_para = [&]() {
    if (para_begin != std::string_view::npos) blocks.push_back({para_begin, para_end, BlockKind::paragraph, path});
    para_begin = std::string_view::npos;
  };
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    const size_t line_end = nl == std::string_view::npos ? text.size() : nl;
    const size_t next = nl == std::string_view::npos ? text.size() : nl + 1;
    const std::string_view line = text.substr(at, line_end - at);
    if (blank(line)) {
      flush_para();
    } else if (auto [fc, fn] = fence_of(line); fn > 0) {
      flush_para();
      // The code block runs to a closing fence of the same character, at least as long, or the end.
      size_t scan = next, end = text.size(), after = text.size();
      while (scan < text.size()) {
        size_t n2 = text.find('\n', scan);
        const size_t le = n2 == std::string_view::npos ? text.size() : n2;
        auto [c2, l2] = fence_of(text.substr(scan, le - scan));
        if (c2 == fc && l2 >= fn && blank(text.substr(scan, le - scan).substr(text.substr(scan, le - scan).find(c2) + l2))) {
          end = le;
          after = n2 == std::string_view::npos ? text.size() : n2 + 1;
          break;
        }
        scan = n2 == std::string_view::npos ? text.size() : n2 + 1;
      }
      while (end > at && (text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
      blocks.push_back({at, end, BlockKind::code, path});
      at = after;
      continue;
    } else if (int level = heading_level(line); level > 0) {
      flush_para();
      path.resize(std::min(path.size(), size_t(level - 1)));
      while (path.size() < size_t(level - 1)) path.emplace_back();
      path.push_back(heading_title(line));
      size_t e = line_end;
      while (e > at && (text[e - 1] == '\r' || text[e - 1] == ' ')) --e;
      blocks.push_back({at, e, BlockKind::heading, path});
    } else {
      if (para_begin == std::string_view::npos) para_begin = at;
      size_t e = line_end;
      while (e > at && (text[e - 1] == '\r' || text[e - 1] == ' ' || text[e - 1] == '\t')) --e;
      para_end = e;
    }
    at = next;
  }
  flush_para();
  return blocks;
}

// Windows of [b, e) of at most max tokens each, cut at code points; `overlap` tokens shared.
std::vector<std::pair<size_t, size_t>> token_windows(const Ctx& c, size_t b, size_t e, int64_t max, int64_t overlap) {
  std::vector<std::pair<size_t, size_t>> out;
  const int64_t cb = c.cp_index[b], ce = c.cp_index[e];
  int64_t s = cb;
  while (s < ce) {
    // Largest end whose slice fits; at least one code point.
    int64_t lo = s + 1, hi = ce, best = s + 1;
    if (c.count(c.cp_bytes[size_t(s)], c.cp_bytes[size_t(hi)]) <= max) {
      best = hi;
    } else {
      while (lo <= hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (c.count(c.cp_bytes[size_t(s)], c.cp_bytes[size_t(mid)]) <= max) {
          best = mid;
          lo = mid + 1;
        } else {
          hi = mid - 1;
        }
      }
      // Prefer to end after whitespace when one is in the last quarter of the window.
      for (int64_t k = best; k > s + (best - s) * 3 / 4; --k) {
        const char ch = c.text[c.cp_bytes[size_t(k - 1)]];
        if (ch == ' ' || ch == '\n' || ch == '\t') {
          best = k;
          break;
        }
      }
    }
    out.emplace_back(c.cp_bytes[size_t(s)], c.cp_bytes[size_t(best)]);
    if (best >= ce) break;
    int64_t next = best;
    if (overlap > 0) {
      // Earliest start after s whose slice up to `best` has at most `overlap` tokens.
      int64_t l2 = s + 1, h2 = best, found = best;
      while (l2 <= h2) {
        const int64_t mid = l2 + (h2 - l2) / 2;
        if (c.count(c.cp_bytes[size_t(mid)], c.cp_bytes[size_t(best)]) <= overlap) {
          found = mid;
          h2 = mid - 1;
        } else {
          l2 = mid + 1;
        }
      }
      next = found;
    }
    s = next;
  }
  return out;
}

// Units of a block that fits, or its pieces.
void add_block_units(const Ctx& c, const Block& block, int64_t max, bool break_before, std::vector<Unit>& units) {
  if (c.count(block.begin, block.end) <= max) {
    units.push_back({block.begin, block.end, break_before, block.section});
    return;
  }
  std::vector<std::pair<size_t, size_t>> pieces;
  if (block.kind == BlockKind::code) {
    size_t at = block.begin;
    while (at < block.end) {
      size_t nl = c.text.find('\n', at);
      const size_t e = nl == std::string_view::npos || nl >= block.end ? block.end : nl;
      if (e > at) pieces.emplace_back(at, e);
      at = e + 1;
    }
  } else {
    pieces = split_sentences(c.text, block.begin, block.end);
  }
  bool first = true;
  for (auto [b, e] : pieces) {
    if (c.count(b, e) <= max) {
      units.push_back({b, e, first && break_before, block.section});
    } else {
      for (auto [wb, we] : token_windows(c, b, e, max, 0)) {
        units.push_back({wb, we, first && break_before, block.section});
        first = false;
      }
    }
    first = false;
  }
}

std::vector<Chunk> pack(const Ctx& c, const std::vector<Unit>& units, int64_t max, int64_t overlap) {
  std::vector<Chunk> out;
  size_t first = 0;  // units[first..last] form the open chunk
  bool open = false;
  size_t last = 0;
  auto emit = [&]() {
    Chunk ch;
    ch.byte_start = units[first].begin;
    ch.byte_end = units[last].end;
    ch.start = c.cp_index[ch.byte_start];
    ch.end = c.cp_index[ch.byte_end];
    ch.tokens = c.count(ch.byte_start, ch.byte_end);
    ch.section = units[first].section;
    out.push_back(std::move(ch));
  };
  for (size_t i = 0; i < units.size(); ++i) {
    if (!open) {
      first = last = i;
      open = true;
      continue;
    }
    if (!units[i].break_before && c.count(units[first].begin, units[i].end) <= max) {
      last = i;
      continue;
    }
    emit();
    size_t start = i;
    if (overlap > 0 && !units[i].break_before) {
      // Trailing units of the chunk just emitted, as many as fit the overlap and the new chunk.
      while (start > first + 1 && c.count(units[start - 1].begin, units[last].end) <= overlap &&
             c.count(units[start - 1].begin, units[i].end) <= max) {
        --start;
      }
    }
    first = start;
    last = i;
  }
  if (open) emit();
  return out;
}

}  // namespace

ChunkBy parse_chunk_by(std::string_view name) {
  if (name == "tokens") return ChunkBy::tokens;
  if (name == "structure") return ChunkBy::structure;
  if (name == "semantic") return ChunkBy::semantic;
  fail(ErrorKind::invalid_argument, "expected tokens, structure or semantic, found '{}'", name);
}

std::vector<std::pair<size_t, size_t>> split_sentences(std::string_view text, size_t begin, size_t end) {
  std::vector<std::pair<size_t, size_t>> out;
  auto skip_space = [&](size_t i) {
    while (i < end && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) ++i;
    return i;
  };
  size_t s = skip_space(begin);
  size_t i = s;
  while (i < end) {
    const char ch = text[i];
    bool boundary = false;
    size_t stop = i + 1;
    if (ch == '.' || ch == '!' || ch == '?') {
      while (stop < end && std::string_view("\"')]").find(text[stop]) != std::string_view::npos) ++stop;
      // Closing curly quotes (U+2019, U+201D) are three bytes each.
      while (stop + 3 <= end && (text.substr(stop, 3) == "\xE2\x80\x9D" || text.substr(stop, 3) == "\xE2\x80\x99")) stop += 3;
      boundary = stop == end || text[stop] == ' ' || text[stop] == '\n' || text[stop] == '\t';
    } else if (ch == '\n' && i + 1 < end && text[i + 1] == '\n') {
      boundary = true;
      stop = i;
    }
    if (boundary && stop > s) {
      out.emplace_back(s, stop);
      s = skip_space(stop);
      i = s;
      continue;
    }
    ++i;
  }
  if (s < end) {
    size_t e = end;
    while (e > s && (text[e - 1] == ' ' || text[e - 1] == '\n' || text[e - 1] == '\r')) --e;
    if (e > s) out.emplace_back(s, e);
  }
  return out;
}

std::vector<Chunk> chunk_text(std::string_view text, const Tokenizer& tokenizer, const ChunkOptions& options,
                              const EmbedFn& embed) {
  if (options.max_tokens < 1) fail(ErrorKind::invalid_argument, "expected max_tokens >= 1, found {}", options.max_tokens);
  if (options.overlap < 0 || options.overlap >= options.max_tokens) {
    fail(ErrorKind::invalid_argument, "expected 0 <= overlap < max_tokens ({}), found {}", options.max_tokens, options.overlap);
  }
  if (options.by == ChunkBy::semantic && !embed) fail(ErrorKind::invalid_argument, "semantic chunking needs an embedding model");
  const std::vector<size_t> cp_bytes = code_point_bytes(text);
  const std::vector<int64_t> cp_index = code_point_index(text);
  const Ctx c{text, tokenizer, cp_bytes, cp_index};
  std::vector<Chunk> out;
  if (text.empty()) return out;
  if (options.by == ChunkBy::tokens) {
    for (auto [b, e] : token_windows(c, 0, text.size(), options.max_tokens, options.overlap)) {
      Chunk ch;
      ch.byte_start = b;
      ch.byte_end = e;
      ch.start = cp_index[b];
      ch.end = cp_index[e];
      ch.tokens = c.count(b, e);
      out.push_back(std::move(ch));
    }
    return out;
  }
  const std::vector<Block> blocks = parse_blocks(text);
  std::vector<Unit> units;
  for (const Block& block : blocks) {
    if (options.by == ChunkBy::semantic && block.kind == BlockKind::paragraph) {
      // Sentences are the units between which breakpoints may fall.
      bool first = true;
      for (auto [b, e] : split_sentences(text, block.begin, block.end)) {
        add_block_units(c, Block{b, e, BlockKind::paragraph, block.section}, options.max_tokens, false, units);
        (void)first;
        first = false;
      }
    } else {
      add_block_units(c, block, options.max_tokens, block.kind == BlockKind::heading, units);
    }
  }
  if (options.by == ChunkBy::semantic && units.size() > 2) {
    std::vector<std::vector<float>> vecs;
    vecs.reserve(units.size());
    for (const Unit& u : units) vecs.push_back(embed(text.substr(u.begin, u.end - u.begin)));
    std::vector<double> dist(units.size() - 1);
    for (size_t i = 0; i + 1 < units.size(); ++i) {
      double dot = 0, na = 0, nb = 0;
      const auto& a = vecs[i];
      const auto& b = vecs[i + 1];
      if (a.size() != b.size()) fail(ErrorKind::internal, "embeddings of different sizes ({} and {})", a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) {
        dot += double(a[k]) * b[k];
        na += double(a[k]) * a[k];
        nb += double(b[k]) * b[k];
      }
      dist[i] = 1.0 - (na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0);
    }
    std::vector<double> sorted = dist;
    std::sort(sorted.begin(), sorted.end());
    const double q = std::clamp(options.percentile, 0.0, 1.0);
    const double threshold = sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size() - 1) + 0.5))];
    for (size_t i = 0; i + 1 < units.size(); ++i) {
      if (dist[i] > threshold) units[i + 1].break_before = true;
    }
  }
  return pack(c, units, options.max_tokens, options.overlap);
}

}  // namespace slm::tasks
