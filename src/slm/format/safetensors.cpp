// safetensors reader: one file, a sharded folder (model.safetensors.index.json), or a folder of
// *.safetensors files. Every header is size-limited, parsed without letting JSON exceptions escape,
// and every tensor's bytes are checked to lie inside its file's data area.
#include "slm/format/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <new>
#include <set>

#include "slm/util/error.hpp"

namespace slm::safetensors {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kMaxJsonDepth = 16;  // a valid header nests 3 deep: {name: {shape: [..]}}

struct Parsed {
  std::vector<TensorInfo> tensors;  // in file order
  std::map<std::string, std::string> metadata;
};

// Deepest bracket nesting outside strings; guards the JSON parser against hostile nesting.
int json_depth(const uint8_t* p, size_t n) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = p[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// Parses JSON text; top-level object keys must be unique. Throws slm::Error only.
json parse_json(const uint8_t* p, size_t n, const std::string& source, std::string_view what) {
  if (json_depth(p, n) > kMaxJsonDepth) {
    fail(ErrorKind::format, "{}: expected a {} nested at most {} deep, found deeper nesting", source, what, kMaxJsonDepth);
  }
  std::set<std::string, std::less<>> top_keys;
  std::string duplicate;
  const json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!top_keys.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  try {
    json j = json::parse(p, p + n, callback, /*allow_exceptions=*/true);
    if (!duplicate.empty()) fail(ErrorKind::format, "{}: expected unique names in the {}, found '{}' twice", source, what, duplicate);
    if (!j.is_object()) fail(ErrorKind::format, "{}: expected the {} to be a JSON object, found {}", source, what, j.type_name());
    return j;
  } catch (const json::exception& e) {
    fail(ErrorKind::format, "{}: expected the {} to be valid JSON: {}", source, what, e.what());
  } catch (const std::bad_alloc&) {
    fail(ErrorKind::out_of_range, "{}: the {} ({} bytes) does not fit in memory", source, what, n);
  }
}

bool unsupported_dtype(std::string_view name) {
  static constexpr std::string_view kKnown[] = {"BOOL", "U8",      "I8",      "U16",     "I16", "U32",
                                                "I32",  "U64",     "I64",     "F64",     "C64", "F8_E4M3",
                                                "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};
  return std::find(std::begin(kKnown), std::end(kKnown), name) != std::end(kKnown);
}

uint64_t get_unsigned(const json& v, const std::string& source, const std::string& tensor, std::string_view field) {
  if (!v.is_number_unsigned()) {
    fail(ErrorKind::format, "{}: tensor '{}': expected {} to hold non-negative integers, found {}", source, tensor, field,
         v.dump());
  }
  return v.get<uint64_t>();
}

Parsed parse_image(const uint8_t* bytes, size_t size, const Limits& limits, const std::string& source) {
  if (size < 8) {
    fail(ErrorKind::format, "{}: expected an 8-byte header length, found a file of {} bytes", source, size);
  }
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes, 8);
  if (header_bytes > limits.max_header_bytes) {
    fail(ErrorKind::out_of_range, "{}: expected a header of at most {} bytes, found a header length of {}", source,
         limits.max_header_bytes, header_bytes);
  }
  if (header_bytes > size - 8) {
    fail(ErrorKind::format, "{}: expected a header of {} bytes after the length, found only {} bytes in the file", source,
         header_bytes, size - 8);
  }
  if (header_bytes < 2 || bytes[8] != '{') {
    fail(ErrorKind::format, "{}: expected the JSON header to start with '{{' at byte offset 8, found {}", source,
         header_bytes == 0 ? std::string("an empty header") : fmt::format("byte 0x{:02x}", bytes[8]));
  }
  const json header = parse_json(bytes + 8, size_t(header_bytes), source, "header");
  const uint8_t* data = bytes + 8 + header_bytes;
  const uint64_t data_bytes = size - 8 - header_bytes;

  if (header.size() > limits.max_tensors + 1) {
    fail(ErrorKind::out_of_range, "{}: expected at most {} tensors, found {} header entries", source, limits.max_tensors,
         header.size());
  }
  Parsed out;
  std::vector<uint64_t> begins;
  out.tensors.reserve(header.size());
  begins.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        fail(ErrorKind::format, "{}: expected __metadata__ to be an object of strings, found {}", source, entry.type_name());
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          fail(ErrorKind::format, "{}: __metadata__ key '{}': expected a string, found {}", source, key, value.type_name());
        }
        out.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    if (!entry.is_object()) {
      fail(ErrorKind::format, "{}: tensor '{}': expected an object with dtype, shape and data_offsets, found {}", source, name,
           entry.type_name());
    }
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    const auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      fail(ErrorKind::format, "{}: tensor '{}': expected a string 'dtype'", source, name);
    }
    if (shape_it == entry.end() || !shape_it->is_array()) {
      fail(ErrorKind::format, "{}: tensor '{}': expected an array 'shape'", source, name);
    }
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      fail(ErrorKind::format, "{}: tensor '{}': expected 'data_offsets' to be an array of two integers", source, name);
    }
    TensorInfo info;
    info.name = name;
    const auto& dtype = dtype_it->get_ref<const std::string&>();
    uint64_t element_bytes = 0;
    if (dtype == "F32") {
      info.type = DType::F32;
      element_bytes = 4;
    } else if (dtype == "F16") {
      info.type = DType::F16;
      element_bytes = 2;
    } else if (dtype == "BF16") {
      info.type = DType::BF16;
      element_bytes = 2;
    } else if (dtype == "I8" || dtype == "I16" || dtype == "I32" || dtype == "I64") {
      // Integer buffers that checkpoints carry beside the weights (BERT's embeddings.position_ids):
      // readable as they are; loaders skip them by name.
      element_bytes = uint64_t(std::stoi(dtype.substr(1)) / 8);
      info.type = element_bytes == 1 ? DType::I8 : element_bytes == 2 ? DType::I16 : element_bytes == 4 ? DType::I32 : DType::I64;
    } else if (unsupported_dtype(dtype)) {
      fail(ErrorKind::unsupported, "{}: tensor '{}' has dtype {}; supported dtypes are F32, F16, BF16 and I8 to I64", source, name,
           dtype);
    } else {
      fail(ErrorKind::format, "{}: tensor '{}': expected a safetensors dtype, found '{}'", source, name, dtype);
    }
    uint64_t n_bytes = element_bytes;
    for (const json& dim : *shape_it) {
      info.shape.push_back(get_unsigned(dim, source, name, "shape"));
      if (__builtin_mul_overflow(n_bytes, info.shape.back(), &n_bytes)) {
        fail(ErrorKind::format, "{}: tensor '{}': the byte size of shape {} overflows 64 bits", source, name, shape_it->dump());
      }
    }
    const uint64_t begin = get_unsigned((*offsets_it)[0], source, name, "data_offsets");
    const uint64_t end = get_unsigned((*offsets_it)[1], source, name, "data_offsets");
    if (begin > end || end > data_bytes) {
      fail(ErrorKind::format, "{}: tensor '{}': expected data_offsets [{}, {}] to be ordered and inside the data area of {} bytes",
           source, name, begin, end, data_bytes);
    }
    if (end - begin != n_bytes) {
      fail(ErrorKind::format, "{}: tensor '{}': expected {} bytes for {} of shape {}, found data_offsets [{}, {}] ({} bytes)",
           source, name, n_bytes, dtype, shape_it->dump(), begin, end, end - begin);
    }
    info.data = data + begin;
    info.n_bytes = n_bytes;
    out.tensors.push_back(std::move(info));
    begins.push_back(begin);
  }

  // File order; tensors with bytes must not overlap.
  std::vector<size_t> order(out.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return begins[a] != begins[b] ? begins[a] < begins[b] : out.tensors[a].n_bytes < out.tensors[b].n_bytes;
  });
  std::vector<TensorInfo> sorted;
  sorted.reserve(order.size());
  const TensorInfo* previous = nullptr;
  uint64_t previous_end = 0;
  for (size_t i : order) {
    const TensorInfo& t = out.tensors[i];
    if (t.n_bytes > 0) {
      if (previous != nullptr && begins[i] < previous_end) {
        fail(ErrorKind::format, "{}: tensors '{}' and '{}' overlap (data offset {} lies before {})", source, previous->name, t.name,
             begins[i], previous_end);
      }
      previous = &t;
      previous_end = begins[i] + t.n_bytes;
    }
  }
  for (size_t i : order) sorted.push_back(std::move(out.tensors[i]));
  out.tensors = std::move(sorted);
  return out;
}

struct Shard {
  std::shared_ptr<MappedFile> mapping;
  Parsed parsed;
};

Shard load_shard(const fs::path& path, const Limits& limits) {
  Shard shard;
  shard.mapping = std::make_shared<MappedFile>(path.string());
  shard.parsed = parse_image(shard.mapping->data(), shard.mapping->size(), limits, path.string());
  return shard;
}

bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

Archive Archive::parse(const uint8_t* bytes, size_t size, const Limits& limits) {
  Archive archive;
  Parsed parsed = parse_image(bytes, size, limits, "safetensors image");
  archive.metadata_ = std::move(parsed.metadata);
  for (TensorInfo& t : parsed.tensors) {
    archive.index_.emplace(t.name, archive.tensors_.size());
    archive.tensors_.push_back(std::move(t));
  }
  return archive;
}

Archive Archive::open(const std::string& path, const Limits& limits) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail(ErrorKind::not_found, "'{}' does not exist", path);

  Archive archive;
  auto add = [&](TensorInfo t, const std::string& file) {
    if (archive.index_.count(t.name) != 0) {
      fail(ErrorKind::format, "{}: tensor '{}' appears in more than one file", file, t.name);
    }
    archive.index_.emplace(t.name, archive.tensors_.size());
    archive.tensors_.push_back(std::move(t));
  };
  auto add_shard = [&](Shard& shard, const fs::path& file) {
    archive.mappings_.push_back(shard.mapping);
    archive.metadata_.insert(shard.parsed.metadata.begin(), shard.parsed.metadata.end());
    for (TensorInfo& t : shard.parsed.tensors) add(std::move(t), file.string());
  };

  if (!fs::is_directory(status)) {
    Shard shard = load_shard(path, limits);
    add_shard(shard, path);
    return archive;
  }

  const fs::path folder(path);
  const fs::path index_path = folder / "model.safetensors.index.json";
  if (fs::is_regular_file(index_path, ec)) {
    const MappedFile index_file(index_path.string());
    if (index_file.size() > limits.max_header_bytes) {
      fail(ErrorKind::out_of_range, "{}: expected at most {} bytes, found {}", index_path.string(), limits.max_header_bytes,
           index_file.size());
    }
    const json index = parse_json(index_file.data(), index_file.size(), index_path.string(), "index");
    const auto weight_map = index.find("weight_map");
    if (weight_map == index.end() || !weight_map->is_object()) {
      fail(ErrorKind::format, "{}: expected a 'weight_map' object", index_path.string());
    }
    if (weight_map->size() > limits.max_tensors) {
      fail(ErrorKind::out_of_range, "{}: expected at most {} tensors, found {}", index_path.string(), limits.max_tensors,
           weight_map->size());
    }
    // shard file -> names the index places in it
    std::map<std::string, std::vector<std::string>> wanted;
    for (const auto& [name, file] : weight_map->items()) {
      if (!file.is_string() || !plain_file_name(file.get<std::string>())) {
        fail(ErrorKind::format, "{}: tensor '{}': expected a shard file name in the same folder, found {}", index_path.string(),
             name, file.dump());
      }
      wanted[file.get<std::string>()].push_back(name);
    }
    for (const auto& [file, names] : wanted) {
      const fs::path shard_path = folder / file;
      if (!fs::is_regular_file(shard_path, ec)) {
        fail(ErrorKind::not_found, "{}: names shard '{}', which does not exist", index_path.string(), file);
      }
      Shard shard = load_shard(shard_path, limits);
      std::map<std::string_view, TensorInfo*> by_name;
      for (TensorInfo& t : shard.parsed.tensors) by_name.emplace(t.name, &t);
      for (const std::string& name : names) {
        if (by_name.count(name) == 0) {
          fail(ErrorKind::format, "{}: the index places tensor '{}' in this shard, which does not hold it", shard_path.string(),
               name);
        }
      }
      // Keep the shard's file order, and only the tensors the index places here.
      const std::set<std::string_view> placed(names.begin(), names.end());
      archive.mappings_.push_back(shard.mapping);
      archive.metadata_.insert(shard.parsed.metadata.begin(), shard.parsed.metadata.end());
      for (TensorInfo& t : shard.parsed.tensors) {
        if (placed.count(t.name) != 0) add(std::move(t), shard_path.string());
      }
    }
    return archive;
  }

  const fs::path single = folder / "model.safetensors";
  if (fs::is_regular_file(single, ec)) {
    Shard shard = load_shard(single, limits);
    add_shard(shard, single);
    return archive;
  }

  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  if (ec) fail(ErrorKind::io, "cannot list '{}': {}", path, ec.message());
  if (files.empty()) fail(ErrorKind::not_found, "'{}' holds no .safetensors files", path);
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    Shard shard = load_shard(file, limits);
    add_shard(shard, file);
  }
  return archive;
}

const TensorInfo* Archive::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace slm::safetensors
