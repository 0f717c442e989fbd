// chorus — GGUF v3 writer: metadata and tensors, with alignment. Used by tests (valid files
// to corrupt), by benches (synthetic models) and by the quantizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"
#include "chorus/gguf/file.hpp"
#include "chorus/gguf/tensor_type.hpp"

namespace chorus::inline CHORUS_ABI::gguf {

class writer {
 public:
  // Scalars: the GGUF value type follows the C++ type (std::uint32_t -> uint32, float -> float32,
  // bool -> bool, string types -> string, ...).
  template <class T>
  void set(std::string_view key, const T& value) {
    begin_entry(key);
    if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      put(value_type::string);
      put_string(std::string_view(value));
    } else {
      put(type_of<T>());
      put(value);
    }
  }

  // Arrays of scalars or of strings.
  template <class T>
  void set_array(std::string_view key, std::span<const T> values) {
    begin_entry(key);
    put(value_type::array);
    if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      put(value_type::string);
      put(static_cast<std::uint64_t>(values.size()));
      for (const auto& v : values) put_string(std::string_view(v));
    } else {
      put(type_of<T>());
      put(static_cast<std::uint64_t>(values.size()));
      for (const auto& v : values) put(v);
    }
  }
  template <class T>
  void set_array(std::string_view key, const std::vector<T>& values) {
    set_array(key, std::span<const T>(values));
  }

  // Writes an already encoded value (type tag + payload); for tests of nested arrays and odd types.
  void set_raw(std::string_view key, value_type type, std::span<const std::byte> payload) {
    begin_entry(key);
    put(type);
    metadata_.insert(metadata_.end(), payload.begin(), payload.end());
  }

  void set_alignment(std::uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
      fail(errc::invalid_argument, "GGUF writer: alignment ", alignment, " is not a power of two");
    }
    alignment_ = alignment;
    set("general.alignment", alignment);
  }

  // `dims` in GGUF order (dims[0] = contiguous). The data size must match the type and shape.
  void add_tensor(std::string_view name, tensor_type type, std::initializer_list<std::uint64_t> dims,
                  std::span<const std::byte> data) {
    add_tensor(name, type, std::vector<std::uint64_t>(dims), data);
  }
  void add_tensor(std::string_view name, tensor_type type, const std::vector<std::uint64_t>& dims,
                  std::span<const std::byte> data) {
    const auto info = type_info(type);
    if (!info) fail(errc::invalid_argument, "GGUF writer: tensor '", name, "' has an unknown type");
    if (dims.empty() || dims.size() > max_tensor_dims) {
      fail(errc::invalid_argument, "GGUF writer: tensor '", name, "' needs 1 to 4 dimensions");
    }
    std::uint64_t elements = 1;
    for (auto d : dims) elements *= d;
    if (dims[0] % info->block_elements != 0) {
      fail(errc::invalid_argument, "GGUF writer: tensor '", name, "': row of ", dims[0],
           " elements is not a multiple of the ", info->name, " block size ", info->block_elements);
    }
    const std::uint64_t bytes = elements / info->block_elements * info->block_bytes;
    if (bytes != data.size()) {
      fail(errc::invalid_argument, "GGUF writer: tensor '", name, "' of type ", info->name, " needs ", bytes,
           " bytes of data, got ", data.size());
    }
    for (const auto& t : tensors_) {
      if (t.name == name) fail(errc::invalid_argument, "GGUF writer: tensor '", name, "' added twice");
    }
    tensors_.push_back({std::string(name), type, dims, std::vector<std::byte>(data.begin(), data.end())});
  }

  std::vector<std::byte> to_bytes() const {
    std::vector<std::byte> out;
    auto append = [&out](const auto& value) {
      const auto* p = reinterpret_cast<const std::byte*>(&value);
      out.insert(out.end(), p, p + sizeof(value));
    };
    auto append_string = [&](std::string_view s) {
      append(static_cast<std::uint64_t>(s.size()));
      const auto* p = reinterpret_cast<const std::byte*>(s.data());
      out.insert(out.end(), p, p + s.size());
    };
    append(magic);
    append(std::uint32_t{3});
    append(static_cast<std::uint64_t>(tensors_.size()));
    append(n_entries_);
    out.insert(out.end(), metadata_.begin(), metadata_.end());
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> offsets;
    for (const auto& t : tensors_) {
      append_string(t.name);
      append(static_cast<std::uint32_t>(t.dims.size()));
      for (auto d : t.dims) append(d);
      append(static_cast<std::uint32_t>(t.type));
      append(offset);
      offsets.push_back(offset);
      offset = round_up(offset + t.data.size());
    }
    out.resize(round_up(out.size()));
    const std::size_t data_start = out.size();
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      out.resize(data_start + offsets[i]);
      out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
    }
    out.resize(data_start + offset);
    return out;
  }

  void write(const std::filesystem::path& path) const {
    const auto bytes = to_bytes();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) fail(errc::io_error, "GGUF writer: cannot create '", path.string(), "'");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) fail(errc::io_error, "GGUF writer: writing '", path.string(), "' failed");
  }

 private:
  struct pending_tensor {
    std::string name;
    tensor_type type;
    std::vector<std::uint64_t> dims;
    std::vector<std::byte> data;
  };

  template <class T>
  static constexpr value_type type_of() {
    if constexpr (std::is_same_v<T, bool>) return value_type::boolean;
    else if constexpr (std::is_same_v<T, std::uint8_t>) return value_type::uint8;
    else if constexpr (std::is_same_v<T, std::int8_t>) return value_type::int8;
    else if constexpr (std::is_same_v<T, std::uint16_t>) return value_type::uint16;
    else if constexpr (std::is_same_v<T, std::int16_t>) return value_type::int16;
    else if constexpr (std::is_same_v<T, std::uint32_t>) return value_type::uint32;
    else if constexpr (std::is_same_v<T, std::int32_t>) return value_type::int32;
    else if constexpr (std::is_same_v<T, std::uint64_t>) return value_type::uint64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return value_type::int64;
    else if constexpr (std::is_same_v<T, float>) return value_type::float32;
    else if constexpr (std::is_same_v<T, double>) return value_type::float64;
    else static_assert(sizeof(T) == 0, "GGUF writer: unsupported value type");
  }

  void begin_entry(std::string_view key) {
    put_string(key);
    ++n_entries_;
  }
  template <class T>
  void put(const T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      metadata_.push_back(static_cast<std::byte>(value ? 1 : 0));
    } else {
      const auto* p = reinterpret_cast<const std::byte*>(&value);
      metadata_.insert(metadata_.end(), p, p + sizeof(T));
    }
  }
  void put_string(std::string_view s) {
    put(static_cast<std::uint64_t>(s.size()));
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    metadata_.insert(metadata_.end(), p, p + s.size());
  }
  std::uint64_t round_up(std::uint64_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

  std::vector<std::byte> metadata_;
  std::uint64_t n_entries_ = 0;
  std::uint32_t alignment_ = static_cast<std::uint32_t>(default_alignment);
  std::vector<pending_tensor> tensors_;
};

}  // namespace chorus::inline CHORUS_ABI::gguf
