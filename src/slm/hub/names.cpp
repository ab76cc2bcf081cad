#include "slm/hub/names.hpp"

#include <cctype>

#include "slm/util/error.hpp"

namespace slm::hub {

namespace {
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

void check_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 64) {
    fail(ErrorKind::invalid_argument, "expected a tag of 1 to 64 characters after ':', found '{}'", tag);
  }
  for (char c : tag) {
    if (!(is_alnum(c) || c == '_' || c == '-' || c == '.')) {
      fail(ErrorKind::invalid_argument, "expected a tag of letters, digits, '_', '-' or '.', found '{}'", tag);
    }
  }
  if (tag.find("..") != std::string_view::npos || tag.front() == '.' || iends_with(tag, ".gguf")) {
    fail(ErrorKind::invalid_argument, "expected a quantization tag such as Q4_K_M, found '{}'", tag);
  }
}
}  // namespace

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return a.size() == b.size() && to_lower(a) == to_lower(b); }

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string_view base_name(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string ModelName::canonical() const {
  std::string s = "hf:" + repo_id();
  if (!file.empty()) return s + "/" + file;
  if (!tag.empty()) s += ":" + tag;
  return s;
}

void check_repo_part(std::string_view what, std::string_view part) {
  if (part.empty() || part.size() > 96) {
    fail(ErrorKind::invalid_argument, "expected {} of 1 to 96 characters, found '{}'", what, part);
  }
  for (char c : part) {
    if (!(is_alnum(c) || c == '-' || c == '_' || c == '.')) {
      fail(ErrorKind::invalid_argument, "expected {} of letters, digits, '-', '_' or '.', found '{}'", what, part);
    }
  }
  if (part.front() == '.' || part.front() == '-' || part.find("..") != std::string_view::npos) {
    fail(ErrorKind::invalid_argument, "expected {} not starting with '.' or '-' and without '..', found '{}'", what, part);
  }
}

bool is_safe_relative_path(std::string_view path) {
  if (path.empty() || path.size() > 1024 || path.front() == '/') return false;
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return false;
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == ".." || segment.size() > 255) return false;
    start = end + 1;
  }
  return true;
}

void check_relative_path(std::string_view what, std::string_view path) {
  if (!is_safe_relative_path(path)) {
    std::string shown;
    for (char c : path.substr(0, 200)) {
      const auto u = static_cast<unsigned char>(c);
      shown += (u < 0x20 || u == 0x7f) ? '?' : c;
    }
    fail(ErrorKind::invalid_argument,
         "expected {} to be a relative path without '..', '.', empty segments, backslashes or control characters, "
         "found '{}'",
         what, shown);
  }
}

bool looks_like_model_name(std::string_view text) {
  if (text.empty()) return false;
  if (text.starts_with("hf:")) return true;
  return text.front() != '/' && text.front() != '.' && text.front() != '~';
}

ModelName parse_model_name(std::string_view text, bool allow_short) {
  ModelName name;
  std::string_view rest = text;
  if (rest.starts_with("hf:")) {
    name.has_source = true;
    rest.remove_prefix(3);
  } else if (const size_t colon = rest.find(':'); colon != std::string_view::npos && rest.find('/') > colon &&
                                                  !rest.substr(0, colon).empty() && rest.substr(colon + 1).find('/') != std::string_view::npos) {
    fail(ErrorKind::invalid_argument, "expected a model source 'hf:', found '{}:'", rest.substr(0, colon));
  }
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    if (!allow_short || name.has_source) {
      fail(ErrorKind::invalid_argument, "expected a model name like hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/FILE.gguf, found '{}'",
           text);
    }
    const size_t colon = rest.find(':');
    name.repo = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) name.tag = std::string(rest.substr(colon + 1));
  } else {
    name.owner = std::string(rest.substr(0, slash));
    std::string_view tail = rest.substr(slash + 1);
    const size_t slash2 = tail.find('/');
    if (slash2 == std::string_view::npos) {
      const size_t colon = tail.find(':');
      name.repo = std::string(tail.substr(0, colon));
      if (colon != std::string_view::npos) name.tag = std::string(tail.substr(colon + 1));
    } else {
      name.repo = std::string(tail.substr(0, slash2));
      name.file = std::string(tail.substr(slash2 + 1));
      check_relative_path("the file name", name.file);
      if (!iends_with(name.file, ".gguf")) {
        fail(ErrorKind::invalid_argument, "expected a .gguf file after OWNER/REPO/, found '{}'", name.file);
      }
    }
    check_repo_part("an owner name", name.owner);
  }
  if (name.repo.find(':') != std::string::npos) {
    fail(ErrorKind::invalid_argument, "expected one ':' before the tag, found '{}'", text);
  }
  check_repo_part("a repository name", name.repo);
  if (!name.tag.empty() || (text.size() && text.back() == ':')) check_tag(name.tag);
  if (iequals(name.tag, "safetensors")) {
    name.tag = "safetensors";
  } else {
    name.tag = to_upper(name.tag);
  }
  return name;
}

bool name_has_tag(std::string_view file_name, std::string_view tag) {
  if (tag.empty()) return false;
  const std::string base = to_upper(base_name(file_name));
  const std::string want = to_upper(tag);
  for (size_t pos = base.find(want); pos != std::string::npos; pos = base.find(want, pos + 1)) {
    const bool start_ok = pos == 0 || !is_alnum(base[pos - 1]);
    const size_t end = pos + want.size();
    const bool end_ok = end == base.size() || (!is_alnum(base[end]) && base[end] != '_');
    if (start_ok && end_ok) return true;
  }
  return false;
}

std::string detect_quant(std::string_view file_name) {
  std::string base = to_upper(base_name(file_name));
  if (iends_with(base, ".GGUF")) base.resize(base.size() - 5);
  auto bounded_end = [&](size_t end) { return end == base.size() || (!is_alnum(base[end]) && base[end] != '_'); };
  for (size_t i = 0; i < base.size(); ++i) {
    if (i > 0 && is_alnum(base[i - 1])) continue;
    for (std::string_view fixed : {"BF16", "F16", "F32"}) {
      if (base.compare(i, fixed.size(), fixed) == 0 && bounded_end(i + fixed.size())) return std::string(fixed);
    }
    size_t j = i;
    if (j < base.size() && base[j] == 'I') ++j;
    if (j >= base.size() || base[j] != 'Q') continue;
    ++j;
    const size_t digits = j;
    while (j < base.size() && is_digit(base[j])) ++j;
    if (j == digits) continue;
    // (_<alnum>+)*
    while (j + 1 < base.size() && base[j] == '_' && is_alnum(base[j + 1])) {
      ++j;
      while (j < base.size() && is_alnum(base[j])) ++j;
    }
    if (bounded_end(j)) return base.substr(i, j - i);
  }
  return "";
}

std::optional<SplitPart> split_part(std::string_view path) {
  // <prefix>-DDDDD-of-DDDDD.gguf
  if (!iends_with(path, ".gguf")) return std::nullopt;
  const std::string_view stem = path.substr(0, path.size() - 5);
  const size_t of = stem.rfind("-of-");
  if (of == std::string_view::npos || of < 6) return std::nullopt;
  const std::string_view count = stem.substr(of + 4);
  const std::string_view index = stem.substr(of - 5, 5);
  if (count.size() != 5 || stem[of - 6] != '-') return std::nullopt;
  for (char c : count) if (!is_digit(c)) return std::nullopt;
  for (char c : index) if (!is_digit(c)) return std::nullopt;
  SplitPart part;
  part.prefix = std::string(stem.substr(0, of - 6));
  part.index = std::stoi(std::string(index));
  part.count = std::stoi(std::string(count));
  if (part.index < 1 || part.count < 1 || part.index > part.count) return std::nullopt;
  return part;
}

}  // namespace slm::hub
