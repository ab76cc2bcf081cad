// safetensors: an 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets}, then the data. Also the sharded form: a folder with
// model.safetensors.index.json whose "weight_map" names the shard of each tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slm/format/dtype.hpp"
#include "slm/util/mmap.hpp"

namespace slm::safetensors {

struct TensorInfo {
  std::string name;
  DType type = DType::F32;         // F32, F16, BF16, or I8/I16/I32/I64 (others: Error(unsupported) at open)
  std::vector<uint64_t> shape;     // outermost first, as safetensors/PyTorch store it
  const uint8_t* data = nullptr;   // inside the mapping of its file; may be unaligned (use memcpy)
  uint64_t n_bytes = 0;
};

struct Limits {
  uint64_t max_header_bytes = 100ull << 20;
  uint64_t max_tensors = 1u << 20;
};

// One file, or every shard of a folder, mapped and indexed by tensor name.
class Archive {
 public:
  // `path` is a .safetensors file, or a folder holding model.safetensors, or
  // model.safetensors.index.json with shards, or several *.safetensors files.
  static Archive open(const std::string& path, const Limits& limits = {});
  // Parses an in-memory image of one file (fuzz target, tests); `bytes` must outlive the Archive.
  static Archive parse(const uint8_t* bytes, size_t size, const Limits& limits = {});

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // "__metadata__"
  size_t n_files() const { return mappings_.size(); }  // files mapped (each shard once)

 private:
  std::vector<std::shared_ptr<MappedFile>> mappings_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace slm::safetensors
