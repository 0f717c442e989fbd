// chorus — GGUF (v2, v3) reader over a memory-mapped file.
//
// Every length, count, offset and size is checked against the bytes before use, so a
// truncated, corrupted or hostile file yields a chorus::error naming the field and its
// byte offset, never a crash, an out-of-bounds read or a huge allocation. Metadata arrays
// are located at parse time and decoded only on request; tensor data are views into the
// mapping, never copies.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/core/mapped_file.hpp"
#include "chorus/gguf/tensor_type.hpp"

namespace chorus::inline CHORUS_ABI::gguf {

enum class value_type : std::uint32_t {
  uint8 = 0,
  int8 = 1,
  uint16 = 2,
  int16 = 3,
  uint32 = 4,
  int32 = 5,
  float32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  uint64 = 10,
  int64 = 11,
  float64 = 12,
};

constexpr std::string_view value_type_name(value_type type) noexcept {
  switch (type) {
    case value_type::uint8: return "uint8";
    case value_type::int8: return "int8";
    case value_type::uint16: return "uint16";
    case value_type::int16: return "int16";
    case value_type::uint32: return "uint32";
    case value_type::int32: return "int32";
    case value_type::float32: return "float32";
    case value_type::boolean: return "bool";
    case value_type::string: return "string";
    case value_type::array: return "array";
    case value_type::uint64: return "uint64";
    case value_type::int64: return "int64";
    case value_type::float64: return "float64";
  }
  return "unknown";
}

// Size in bytes of a fixed-size value, 0 for string and array.
constexpr std::size_t value_type_size(value_type type) noexcept {
  switch (type) {
    case value_type::uint8:
    case value_type::int8:
    case value_type::boolean: return 1;
    case value_type::uint16:
    case value_type::int16: return 2;
    case value_type::uint32:
    case value_type::int32:
    case value_type::float32: return 4;
    case value_type::uint64:
    case value_type::int64:
    case value_type::float64: return 8;
    default: return 0;
  }
}

inline constexpr std::uint32_t magic = 0x46554747u;  // "GGUF" read as little-endian uint32
inline constexpr std::size_t default_alignment = 32;
inline constexpr std::size_t max_tensor_dims = 4;
inline constexpr int max_array_nesting = 8;

struct metadata_entry {
  std::string_view key;
  value_type type = value_type::uint8;
  value_type element_type = value_type::uint8;  // arrays only
  std::uint64_t count = 1;                      // arrays: number of elements
  std::uint64_t value_offset = 0;               // file offset of the value (arrays: of the first element)
};

struct tensor_info {
  std::string_view name;
  tensor_type type = tensor_type::f32;
  std::uint32_t n_dims = 0;
  std::array<std::uint64_t, max_tensor_dims> dims{1, 1, 1, 1};
  std::uint64_t offset = 0;  // relative to the data section
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;
  std::span<const std::byte> data;

  std::uint64_t rows() const noexcept { return dims[0] == 0 ? 0 : n_elements / dims[0]; }
};

namespace detail {

inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) noexcept {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

// Bounds-checked little-endian reader over the file bytes; errors name the source and offset.
class cursor {
 public:
  cursor(std::span<const std::byte> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  std::uint64_t offset() const noexcept { return offset_; }
  std::uint64_t remaining() const noexcept { return bytes_.size() - offset_; }
  void seek(std::uint64_t offset) noexcept { offset_ = offset; }

  void need(std::uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      fail(errc::truncated, source_, ": ", what, " at offset ", offset_, " needs ", n, " bytes, but only ",
           remaining(), " remain (file size ", bytes_.size(), ")");
    }
  }

  template <class T>
  T read(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  std::string_view read_string(std::string_view what) {
    const auto length = read<std::uint64_t>(what);
    need(length, what);
    const std::string_view text(reinterpret_cast<const char*>(bytes_.data() + offset_), static_cast<std::size_t>(length));
    offset_ += length;
    return text;
  }

  void skip(std::uint64_t n, std::string_view what) {
    need(n, what);
    offset_ += n;
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& source_;
  std::uint64_t offset_ = 0;
};

template <class T>
inline constexpr bool is_string_like = std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string>;

}  // namespace detail

class file {
 public:
  // Maps and parses a GGUF file; the returned object owns the mapping.
  static file open(const std::filesystem::path& path) {
    auto mapping = std::make_shared<mapped_file>(path);
    file result(mapping->bytes(), path.string());
    result.mapping_ = std::move(mapping);
    return result;
  }

  // Parses bytes the caller keeps alive for the lifetime of the returned object.
  static file parse(std::span<const std::byte> bytes, std::string source_name = "<memory>") {
    return file(bytes, std::move(source_name));
  }
  // A temporary buffer would dangle: keep the bytes alive and pass a span.
  static file parse(std::vector<std::byte>&&, std::string = {}) = delete;

  std::uint32_t version() const noexcept { return version_; }
  std::size_t alignment() const noexcept { return alignment_; }
  std::uint64_t data_offset() const noexcept { return data_offset_; }
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  const std::string& source_name() const noexcept { return source_; }

  std::span<const metadata_entry> metadata() const noexcept { return entries_; }
  std::span<const tensor_info> tensors() const noexcept { return tensors_; }

  bool has(std::string_view key) const { return find_entry(key) != nullptr; }

  const metadata_entry* find_entry(std::string_view key) const {
    const auto found = entry_index_.find(key);
    return found == entry_index_.end() ? nullptr : &entries_[found->second];
  }

  // A scalar value converted to T: any integer type (when the value fits), float/double
  // (from float32/float64), bool, std::string_view (a view into the file) or std::string.
  template <class T>
  T get(std::string_view key) const {
    const metadata_entry* entry = find_entry(key);
    if (entry == nullptr) fail(errc::not_found, source_, ": metadata key '", key, "' is missing");
    return convert<T>(*entry, entry->type, entry->value_offset);
  }

  template <class T>
  std::optional<T> find(std::string_view key) const {
    const metadata_entry* entry = find_entry(key);
    if (entry == nullptr) return std::nullopt;
    return convert<T>(*entry, entry->type, entry->value_offset);
  }

  std::uint64_t array_size(std::string_view key) const { return array_entry(key).count; }

  // The elements of an array value, converted like get<T>().
  template <class T>
  std::vector<T> get_array(std::string_view key) const {
    const metadata_entry& entry = array_entry(key);
    check_element_type<T>(entry);  // before reserving: a wrong T must not allocate count * sizeof(T)
    std::vector<T> values;
    values.reserve(static_cast<std::size_t>(entry.count));  // bounded by the file size at parse time
    detail::cursor in(bytes_, source_);
    in.seek(entry.value_offset);
    const std::size_t element_size = value_type_size(entry.element_type);
    for (std::uint64_t i = 0; i < entry.count; ++i) {
      if (entry.element_type == value_type::string) {
        const std::string_view text = in.read_string("array element");
        if constexpr (detail::is_string_like<T>) {
          values.emplace_back(text);
        } else {
          type_error(entry, "an array of string", type_label<T>());
        }
      } else if (element_size != 0) {
        values.push_back(convert<T>(entry, entry.element_type, in.offset()));
        in.skip(element_size, "array element");
      } else {
        type_error(entry, "an array of arrays", type_label<T>());
      }
    }
    return values;
  }

  const tensor_info* find_tensor(std::string_view name) const {
    const auto found = tensor_index_.find(name);
    return found == tensor_index_.end() ? nullptr : &tensors_[found->second];
  }

  const tensor_info& tensor(std::string_view name) const {
    const tensor_info* info = find_tensor(name);
    if (info == nullptr) fail(errc::not_found, source_, ": tensor '", name, "' is missing");
    return *info;
  }

 private:
  file(std::span<const std::byte> bytes, std::string source) : bytes_(bytes), source_(std::move(source)) {
    parse_all();
  }

  // Transparent hashing so lookups by string_view do not allocate.
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  };
  using index_map = std::unordered_map<std::string_view, std::size_t, string_hash, std::equal_to<>>;

  void parse_all() {
    detail::cursor in(bytes_, source_);
    if (in.remaining() < 4 || in.read<std::uint32_t>("magic") != magic) {
      fail(errc::bad_format, source_, ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
    }
    version_ = in.read<std::uint32_t>("version");
    if (version_ != 2 && version_ != 3) {
      fail(errc::unsupported, source_, ": GGUF version ", version_, " is not supported (chorus reads versions 2 and 3)");
    }
    const auto n_tensors = in.read<std::uint64_t>("tensor count");
    const auto n_kv = in.read<std::uint64_t>("metadata count");
    // Each metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor
    // info at least 8 + 4 + 4 + 8: reject absurd counts before reserving anything.
    if (n_kv > in.remaining() / 13) {
      fail(errc::bad_format, source_, ": metadata count ", n_kv, " at offset 16 cannot fit in the file");
    }
    if (n_tensors > in.remaining() / 24) {
      fail(errc::bad_format, source_, ": tensor count ", n_tensors, " at offset 8 cannot fit in the file");
    }
    entries_.reserve(static_cast<std::size_t>(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) parse_entry(in);
    alignment_ = default_alignment;
    if (const auto* entry = find_entry("general.alignment")) {
      if (entry->type != value_type::uint32) {
        fail(errc::bad_format, source_, ": general.alignment must be uint32, not ", value_type_name(entry->type));
      }
      const auto value = convert<std::uint32_t>(*entry, entry->type, entry->value_offset);
      if (value == 0 || !std::has_single_bit(value)) {
        fail(errc::bad_format, source_, ": general.alignment = ", value, " is not a power of two");
      }
      alignment_ = value;
    }
    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) parse_tensor_info(in);
    const std::uint64_t end_of_infos = in.offset();
    data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
    if (!tensors_.empty() && data_offset_ > bytes_.size()) {
      fail(errc::truncated, source_, ": the data section would start at offset ", data_offset_,
           ", past the end of the file (size ", bytes_.size(), ")");
    }
    for (auto& tensor : tensors_) locate_tensor_data(tensor);
    check_no_overlap();
  }

  // Two tensors may not share bytes (empty tensors excepted).
  void check_no_overlap() const {
    std::vector<const tensor_info*> order;
    order.reserve(tensors_.size());
    for (const auto& tensor : tensors_) {
      if (tensor.n_bytes != 0) order.push_back(&tensor);
    }
    std::sort(order.begin(), order.end(), [](const tensor_info* a, const tensor_info* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < order.size(); ++i) {
      const tensor_info& a = *order[i - 1];
      const tensor_info& b = *order[i];
      if (a.offset + a.n_bytes > b.offset) {  // no overflow: both lie inside the file
        fail(errc::bad_format, source_, ": tensor '", b.name, "': data [offset ", data_offset_ + b.offset, ", ",
             b.n_bytes, " bytes) overlaps tensor '", a.name, "' [offset ", data_offset_ + a.offset, ", ", a.n_bytes,
             " bytes)");
      }
    }
  }

  void parse_entry(detail::cursor& in) {
    const std::uint64_t key_offset = in.offset();
    metadata_entry entry;
    entry.key = in.read_string("metadata key");
    const auto raw_type = in.read<std::uint32_t>("metadata value type");
    entry.type = checked_value_type(raw_type, entry.key, in.offset() - 4);
    entry.value_offset = in.offset();
    if (entry.type == value_type::array) {
      entry.element_type = checked_value_type(in.read<std::uint32_t>("array element type"), entry.key, in.offset() - 4);
      entry.count = in.read<std::uint64_t>("array length");
      entry.value_offset = in.offset();
      skip_array_elements(in, entry.element_type, entry.count, entry.key, 1);
    } else {
      skip_value(in, entry.type, entry.key, 0);
    }
    if (!entry_index_.emplace(entry.key, entries_.size()).second) {
      fail(errc::bad_format, source_, ": metadata key '", entry.key, "' appears twice (second at offset ", key_offset, ")");
    }
    entries_.push_back(entry);
  }

  value_type checked_value_type(std::uint32_t raw, std::string_view key, std::uint64_t offset) const {
    if (raw > static_cast<std::uint32_t>(value_type::float64)) {
      fail(errc::bad_format, source_, ": metadata key '", key, "' has unknown value type ", raw, " at offset ", offset);
    }
    return static_cast<value_type>(raw);
  }

  void skip_value(detail::cursor& in, value_type type, std::string_view key, int depth) const {
    if (type == value_type::string) {
      in.read_string(key);
    } else if (type == value_type::array) {
      if (depth >= max_array_nesting) {
        fail(errc::bad_format, source_, ": metadata key '", key, "' nests arrays deeper than ", max_array_nesting,
             " levels at offset ", in.offset());
      }
      const auto element = checked_value_type(in.read<std::uint32_t>("array element type"), key, in.offset() - 4);
      const auto count = in.read<std::uint64_t>("array length");
      skip_array_elements(in, element, count, key, depth + 1);
    } else {
      in.skip(value_type_size(type), key);
    }
  }

  void skip_array_elements(detail::cursor& in, value_type element, std::uint64_t count, std::string_view key,
                           int depth) const {
    if (const std::size_t size = value_type_size(element); size != 0) {
      std::uint64_t total = 0;
      if (!detail::checked_mul(size, count, total) || total > in.remaining()) {
        fail(errc::truncated, source_, ": metadata key '", key, "': array of ", count, " ", value_type_name(element),
             " at offset ", in.offset(), " runs past the end of the file");
      }
      in.skip(total, key);
      return;
    }
    // strings take at least 8 bytes and nested arrays 12: a count larger than that is corrupt
    if (count > in.remaining() / 8) {
      fail(errc::truncated, source_, ": metadata key '", key, "': array of ", count, " ", value_type_name(element),
           " at offset ", in.offset(), " cannot fit in the file");
    }
    for (std::uint64_t i = 0; i < count; ++i) skip_value(in, element, key, depth);
  }

  void parse_tensor_info(detail::cursor& in) {
    tensor_info tensor;
    const std::uint64_t info_offset = in.offset();
    tensor.name = in.read_string("tensor name");
    tensor.n_dims = in.read<std::uint32_t>("tensor dimension count");
    if (tensor.n_dims == 0 || tensor.n_dims > max_tensor_dims) {
      fail(errc::bad_format, source_, ": tensor '", tensor.name, "' has ", tensor.n_dims,
           " dimensions (1 to 4 allowed) at offset ", info_offset);
    }
    tensor.n_elements = 1;
    for (std::uint32_t d = 0; d < tensor.n_dims; ++d) {
      tensor.dims[d] = in.read<std::uint64_t>("tensor dimension");
      if (!detail::checked_mul(tensor.n_elements, tensor.dims[d], tensor.n_elements) ||
          tensor.n_elements > (std::uint64_t{1} << 56)) {
        fail(errc::bad_format, source_, ": tensor '", tensor.name, "' has an impossible shape (element count overflows)");
      }
    }
    const auto raw_type = in.read<std::uint32_t>("tensor type");
    tensor.type = static_cast<tensor_type>(raw_type);
    const auto info = type_info(tensor.type);
    if (!info) {
      fail(errc::unsupported, source_, ": tensor '", tensor.name, "' has unknown tensor type id ", raw_type);
    }
    if (tensor.dims[0] % info->block_elements != 0) {
      fail(errc::bad_format, source_, ": tensor '", tensor.name, "' of type ", info->name, " has a row of ",
           tensor.dims[0], " elements, not a multiple of its block size ", info->block_elements);
    }
    tensor.n_bytes = tensor.n_elements / info->block_elements * info->block_bytes;
    tensor.offset = in.read<std::uint64_t>("tensor data offset");
    if (tensor.offset % alignment_ != 0) {
      fail(errc::bad_format, source_, ": tensor '", tensor.name, "' data offset ", tensor.offset,
           " is not a multiple of the alignment ", alignment_);
    }
    if (!tensor_index_.emplace(tensor.name, tensors_.size()).second) {
      fail(errc::bad_format, source_, ": tensor '", tensor.name, "' appears twice");
    }
    tensors_.push_back(tensor);
  }

  void locate_tensor_data(tensor_info& tensor) const {
    const std::uint64_t size = bytes_.size();
    if (tensor.offset > size - data_offset_ || tensor.n_bytes > size - data_offset_ - tensor.offset) {
      fail(errc::truncated, source_, ": tensor '", tensor.name, "': data [offset ", data_offset_ + tensor.offset, ", ",
           tensor.n_bytes, " bytes) runs past the end of the file (size ", size, ")");
    }
    tensor.data = bytes_.subspan(static_cast<std::size_t>(data_offset_ + tensor.offset),
                                 static_cast<std::size_t>(tensor.n_bytes));
  }

  const metadata_entry& array_entry(std::string_view key) const {
    const metadata_entry* entry = find_entry(key);
    if (entry == nullptr) fail(errc::not_found, source_, ": metadata key '", key, "' is missing");
    if (entry->type != value_type::array) type_error(*entry, value_type_name(entry->type), "an array");
    return *entry;
  }

  // Throws type_mismatch unless an array of `entry.element_type` can be read as T.
  template <class T>
  void check_element_type(const metadata_entry& entry) const {
    const value_type element = entry.element_type;
    if (element == value_type::array) type_error(entry, "an array of arrays", type_label<T>());
    bool ok = false;
    if constexpr (detail::is_string_like<T>) ok = element == value_type::string;
    else if constexpr (std::is_same_v<T, bool>) ok = element == value_type::boolean;
    else if constexpr (std::is_floating_point_v<T>) ok = element == value_type::float32 || element == value_type::float64;
    else ok = element != value_type::string && element != value_type::boolean && element != value_type::float32 &&
              element != value_type::float64;
    if (!ok) {
      fail(errc::type_mismatch, source_, ": metadata key '", entry.key, "' holds an array of ", value_type_name(element),
           ", not of ", type_label<T>());
    }
  }

  template <class T>
  static constexpr std::string_view type_label() {
    if constexpr (detail::is_string_like<T>) return "a string";
    else if constexpr (std::is_same_v<T, bool>) return "a bool";
    else if constexpr (std::is_floating_point_v<T>) return "a floating-point number";
    else if constexpr (std::is_signed_v<T>) return "a signed integer";
    else return "an unsigned integer";
  }

  [[noreturn]] void type_error(const metadata_entry& entry, std::string_view actual, std::string_view wanted) const {
    fail(errc::type_mismatch, source_, ": metadata key '", entry.key, "' holds ", actual, ", not ", wanted);
  }

  template <class T>
  T read_raw(std::uint64_t offset) const {
    T value;
    std::memcpy(&value, bytes_.data() + offset, sizeof(T));
    return value;
  }

  // Converts the value of `type` stored at `offset` (already bounds-checked at parse time).
  template <class T>
  T convert(const metadata_entry& entry, value_type type, std::uint64_t offset) const {
    if constexpr (detail::is_string_like<T>) {
      if (type != value_type::string) type_error(entry, value_type_name(type), "a string");
      const auto length = read_raw<std::uint64_t>(offset);
      return T(reinterpret_cast<const char*>(bytes_.data() + offset + 8), static_cast<std::size_t>(length));
    } else if constexpr (std::is_same_v<T, bool>) {
      if (type != value_type::boolean) type_error(entry, value_type_name(type), "a bool");
      return read_raw<std::uint8_t>(offset) != 0;
    } else if constexpr (std::is_floating_point_v<T>) {
      if (type == value_type::float32) return static_cast<T>(read_raw<float>(offset));
      if (type == value_type::float64) return static_cast<T>(read_raw<double>(offset));
      type_error(entry, value_type_name(type), "a floating-point number");
    } else {
      static_assert(std::is_integral_v<T>, "get<T>: T must be an integer, floating-point, bool or string type");
      switch (type) {
        case value_type::uint8: return fit<T>(entry, read_raw<std::uint8_t>(offset));
        case value_type::int8: return fit<T>(entry, read_raw<std::int8_t>(offset));
        case value_type::uint16: return fit<T>(entry, read_raw<std::uint16_t>(offset));
        case value_type::int16: return fit<T>(entry, read_raw<std::int16_t>(offset));
        case value_type::uint32: return fit<T>(entry, read_raw<std::uint32_t>(offset));
        case value_type::int32: return fit<T>(entry, read_raw<std::int32_t>(offset));
        case value_type::uint64: return fit<T>(entry, read_raw<std::uint64_t>(offset));
        case value_type::int64: return fit<T>(entry, read_raw<std::int64_t>(offset));
        default: type_error(entry, value_type_name(type), type_label<T>());
      }
    }
  }

  template <class T, class V>
  T fit(const metadata_entry& entry, V value) const {
    if (!std::in_range<T>(value)) {
      fail(errc::type_mismatch, source_, ": metadata key '", entry.key, "' = ", value, " does not fit in ",
           type_label<T>(), " of ", sizeof(T), " bytes");
    }
    return static_cast<T>(value);
  }

  std::shared_ptr<const mapped_file> mapping_;  // null when parsing caller-owned bytes
  std::span<const std::byte> bytes_;
  std::string source_;
  std::uint32_t version_ = 0;
  std::size_t alignment_ = default_alignment;
  std::uint64_t data_offset_ = 0;
  std::vector<metadata_entry> entries_;
  std::vector<tensor_info> tensors_;
  index_map entry_index_;
  index_map tensor_index_;
};

}  // namespace chorus::inline CHORUS_ABI::gguf
