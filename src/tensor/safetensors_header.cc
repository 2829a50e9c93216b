#include "src/tensor/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/common/json_util.h"
#include "src/common/status_macros.h"

namespace signround {
namespace {

using nlohmann::json;

absl::Status Invalid(absl::string_view label, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(label, ": ", what));
}

absl::Status TensorError(absl::string_view label, absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(label, ": tensor '", name, "': ", what));
}

uint64_t ReadLittleEndianU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// A shape for messages, as compact JSON: at most 16 dims, and a nested value
// or a long string by its type only. Dumping hostile JSON whole would recurse
// once per nesting level (a stack overflow for "[[[[...]]]]") and copy it all.
std::string ShapeText(const json& shape) {
  constexpr size_t kMaxShownDims = 16;
  std::string out = "[";
  for (size_t i = 0; i < shape.size() && i < kMaxShownDims; ++i) {
    const json& d = shape[i];
    if (i > 0) out += ",";
    if (d.is_primitive() && !(d.is_string() && d.get_ref<const std::string&>().size() > 32)) {
      out += d.dump();
    } else {
      absl::StrAppend(&out, "<", d.type_name(), ">");
    }
  }
  if (shape.size() > kMaxShownDims) absl::StrAppend(&out, ",... ", shape.size(), " dims");
  return out + "]";
}

// Parses one entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}.
absl::StatusOr<TensorEntry> ParseEntry(const std::string& name, const json& value,
                                       absl::string_view label) {
  if (!value.is_object()) {
    return TensorError(label, name,
                       absl::StrCat("entry must be an object, got ", value.type_name()));
  }
  TensorEntry entry;
  entry.name = name;

  auto dtype_it = value.find("dtype");
  if (dtype_it == value.end() || !dtype_it->is_string()) {
    return TensorError(label, name, "'dtype' is missing or not a string");
  }
  std::optional<DType> dtype = ParseDType(dtype_it->get<std::string>());
  if (!dtype) {
    return TensorError(label, name,
                       absl::StrCat("unknown dtype '", dtype_it->get<std::string>(), "'"));
  }
  entry.dtype = *dtype;

  auto shape_it = value.find("shape");
  if (shape_it == value.end() || !shape_it->is_array()) {
    return TensorError(label, name, "'shape' is missing or not a list");
  }
  for (const json& dim : *shape_it) {
    std::optional<int64_t> d = JsonToInt64(dim);
    if (!d || *d < 0) {
      return TensorError(label, name,
                         absl::StrCat("shape ", ShapeText(*shape_it),
                                      " has a dimension that is not a non-negative integer"));
    }
    if (*d != 0 && entry.numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(*d)) {
      return TensorError(label, name, absl::StrCat("shape ", ShapeText(*shape_it), " overflows"));
    }
    entry.numel *= static_cast<uint64_t>(*d);
    entry.shape.push_back(*d);
  }
  uint64_t elem = DTypeSize(entry.dtype);
  if (entry.numel > std::numeric_limits<uint64_t>::max() / elem) {
    return TensorError(label, name, absl::StrCat("shape ", ShapeText(*shape_it), " overflows"));
  }

  auto off_it = value.find("data_offsets");
  if (off_it == value.end() || !off_it->is_array() || off_it->size() != 2 ||
      !(*off_it)[0].is_number_unsigned() || !(*off_it)[1].is_number_unsigned()) {
    return TensorError(label, name, "'data_offsets' must be a list of two non-negative integers");
  }
  entry.begin = (*off_it)[0].get<uint64_t>();
  entry.end = (*off_it)[1].get<uint64_t>();
  if (entry.end < entry.begin) {
    return TensorError(
        label, name,
        absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] end before they begin"));
  }
  if (entry.nbytes() != entry.numel * elem) {
    return TensorError(
        label, name,
        absl::StrCat("data_offsets [", entry.begin, ", ", entry.end, "] hold ", entry.nbytes(),
                     " bytes but ", DescribeTensor(entry), " needs ", entry.numel * elem));
  }
  return entry;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const json& value,
                                                                 absl::string_view label) {
  std::map<std::string, std::string> out;
  if (value.is_null()) return out;
  if (!value.is_object()) return Invalid(label, "'__metadata__' must be an object of strings");
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) {
      return Invalid(label, absl::StrCat("'__metadata__' value of '", k, "' must be a string"));
    }
    out[k] = v.get<std::string>();
  }
  return out;
}

// Entries sorted by offset must tile [0, data_bytes) exactly.
absl::Status CheckLayout(std::vector<const TensorEntry*> by_offset, uint64_t data_bytes,
                         absl::string_view label) {
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry* e : by_offset) {
    if (e->end > data_bytes) {
      return TensorError(
          label, e->name,
          absl::StrCat("data_offsets [", e->begin, ", ", e->end,
                       "] run past the end of the data buffer (", data_bytes, " bytes)"));
    }
    if (e->begin < expected) {
      return TensorError(
          label, e->name,
          absl::StrCat("data_offsets [", e->begin, ", ", e->end, "] overlap tensor '",
                       previous->name, "' (ends at ", expected, ")"));
    }
    if (e->begin > expected) {
      return TensorError(
          label, e->name,
          absl::StrCat("data_offsets [", e->begin, ", ", e->end, "] leave a hole: bytes [",
                       expected, ", ", e->begin, ") belong to no tensor"));
    }
    expected = e->end;
    previous = e;
  }
  if (expected != data_bytes) {
    return Invalid(label,
                   absl::StrCat("data buffer has ", data_bytes - expected,
                                " trailing bytes after the last tensor (offset ", expected, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

const TensorEntry* SafetensorsHeader::Find(absl::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorEntry& e, absl::string_view n) { return e.name < n; });
  if (it == tensors.end() || it->name != name) return nullptr;
  return &*it;
}

std::string DescribeTensor(const TensorEntry& entry) {
  return absl::StrCat(DTypeName(entry.dtype), " [", absl::StrJoin(entry.shape, ", "), "]");
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view prefix,
                                                         uint64_t file_size,
                                                         absl::string_view label) {
  if (file_size < 8 || prefix.size() < 8) {
    return Invalid(label, absl::StrCat("file is ", file_size,
                                       " bytes, too short for the 8-byte header length"));
  }
  SafetensorsHeader header;
  header.header_bytes = ReadLittleEndianU64(prefix.data());
  if (header.header_bytes > kMaxSafetensorsHeaderBytes) {
    return Invalid(label,
                   absl::StrCat("header length ", header.header_bytes, " exceeds the limit of ",
                                kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header.header_bytes > file_size - 8) {
    return Invalid(label, absl::StrCat("header length ", header.header_bytes,
                                       " runs past the end of the file (", file_size, " bytes)"));
  }
  if (prefix.size() < 8 + header.header_bytes) {
    return Invalid(label, "header is truncated");
  }
  header.data_start = 8 + header.header_bytes;
  header.data_bytes = file_size - header.data_start;
  absl::string_view text = prefix.substr(8, header.header_bytes);
  if (text.empty() || text.front() != '{') {
    return Invalid(label, "header is not a JSON object (it must start with '{')");
  }
  std::string where = absl::StrCat(label, ": header");
  SR_ASSIGN_OR_RETURN(json root, ParseJsonObject(text, where));

  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      SR_ASSIGN_OR_RETURN(header.metadata, ParseMetadata(value, label));
      continue;
    }
    SR_ASSIGN_OR_RETURN(TensorEntry entry, ParseEntry(name, value, label));
    header.tensors.push_back(std::move(entry));
  }
  // json objects iterate in key order, so `tensors` is already sorted by name.
  std::vector<const TensorEntry*> by_offset;
  by_offset.reserve(header.tensors.size());
  for (const TensorEntry& e : header.tensors) by_offset.push_back(&e);
  SR_RETURN_IF_ERROR(CheckLayout(std::move(by_offset), header.data_bytes, label));
  return header;
}

}  // namespace signround
