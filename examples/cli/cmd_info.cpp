// chorus info MODEL — a GGUF file's metadata, tensors and size by format.
#include <chorus/chorus.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "command.hpp"

namespace cmd_info {

using chorus::gguf::value_type;

std::string quoted(std::string_view text, std::size_t limit = 120) {
  std::string out = "\"";
  for (char c : text.substr(0, limit)) {
    if (c == '\n') out += "\\n";
    else if (c == '"') out += "\\\"";
    else if (static_cast<unsigned char>(c) < 0x20) out += '?';
    else out += c;
  }
  if (text.size() > limit) out += "...";
  return out + "\"";
}

template <class T>
std::string join_numbers(const std::vector<T>& values, std::size_t shown) {
  std::ostringstream out;
  for (std::size_t i = 0; i < values.size() && i < shown; ++i) out << (i ? ", " : "") << +values[i];
  if (values.size() > shown) out << ", ...";
  return out.str();
}

std::string scalar_text(const chorus::gguf::file& file, std::string_view key, value_type type) {
  switch (type) {
    case value_type::string: return quoted(file.get<std::string_view>(key));
    case value_type::boolean: return file.get<bool>(key) ? "true" : "false";
    case value_type::float32:
    case value_type::float64: {
      std::ostringstream out;
      out << file.get<double>(key);
      return out.str();
    }
    case value_type::int8:
    case value_type::int16:
    case value_type::int32:
    case value_type::int64: return std::to_string(file.get<std::int64_t>(key));
    default: return std::to_string(file.get<std::uint64_t>(key));
  }
}

std::string array_text(const chorus::gguf::file& file, const chorus::gguf::metadata_entry& entry) {
  constexpr std::size_t shown = 6;
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) about "[" + std::string(...).
  std::string head = "[";
  head += chorus::gguf::value_type_name(entry.element_type);
  head += " x ";
  head += std::to_string(entry.count);
  head += ']';
  switch (entry.element_type) {
    case value_type::string: {
      const auto values = file.get_array<std::string_view>(entry.key);
      std::string items;
      for (std::size_t i = 0; i < values.size() && i < shown; ++i) {
        if (i) items += ", ";
        items += quoted(values[i], 24);
      }
      return head + " " + items + (values.size() > shown ? ", ..." : "");
    }
    case value_type::float32:
    case value_type::float64: return head + " " + join_numbers(file.get_array<double>(entry.key), shown);
    case value_type::array: return head;
    case value_type::boolean: return head + " " + join_numbers(file.get_array<bool>(entry.key), shown);
    case value_type::int8:
    case value_type::int16:
    case value_type::int32:
    case value_type::int64: return head + " " + join_numbers(file.get_array<std::int64_t>(entry.key), shown);
    default: return head + " " + join_numbers(file.get_array<std::uint64_t>(entry.key), shown);
  }
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.2f %s", bytes, units[unit]);
  return text;
}

int run(std::span<const std::string_view> args) {
  const chorus_cli::arguments parsed(args, {"tensors"});
  const bool list_tensors = parsed.flag("tensors");
  parsed.reject_unknown();
  if (parsed.positional().size() != 1) throw chorus_cli::usage_error("expected exactly one MODEL.gguf");
  const auto file = chorus::gguf::file::open(parsed.positional()[0]);

  std::cout << "file:      " << parsed.positional()[0] << "\n"
            << "format:    GGUF v" << file.version() << ", alignment " << file.alignment() << ", "
            << human_bytes(static_cast<double>(file.bytes().size())) << "\n"
            << "metadata:  " << file.metadata().size() << " keys\n";
  for (const auto& entry : file.metadata()) {
    const std::string value = entry.type == value_type::array ? array_text(file, entry)
                                                              : scalar_text(file, entry.key, entry.type);
    std::cout << "  " << entry.key << " = " << value << "\n";
  }

  struct format_total {
    std::size_t tensors = 0;
    std::uint64_t elements = 0;
    std::uint64_t bytes = 0;
  };
  std::map<std::string, format_total> totals;
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;
  for (const auto& tensor : file.tensors()) {
    auto& total = totals[std::string(chorus::gguf::type_name(tensor.type))];
    ++total.tensors;
    total.elements += tensor.n_elements;
    total.bytes += tensor.n_bytes;
    elements += tensor.n_elements;
    bytes += tensor.n_bytes;
  }
  // What runs this file here: the instruction-set level of the kernels (CHORUS_ISA forces one) and
  // whether every tensor's format is compiled into this build.
  std::string usable;
  for (const auto level : chorus::simd::all_isas) {
    if (!chorus::simd::isa_usable(level)) continue;
    if (!usable.empty()) usable += ", ";
    usable += chorus::simd::isa_name(level);
  }
  std::cout << "kernels:   " << chorus::simd::isa_name(chorus::simd::active_isa()) << " (this build and CPU: " << usable << ")\n";
  std::string missing;
  for (const auto& tensor : file.tensors()) {
    const std::string name(chorus::gguf::type_name(tensor.type));
    // (matrices only: norm vectors are read as F32 whatever the list)
    if (tensor.n_dims == 2 && !chorus::quant::is_compiled_in(tensor.type) && missing.find(name) == std::string::npos) {
      missing += " " + name;
    }
  }
  if (!missing.empty()) std::cout << "unsupported: tensor formats not compiled into this build:" << missing << "\n";
  std::cout << "tensors:   " << file.tensors().size() << ", " << elements << " parameters, "
            << human_bytes(static_cast<double>(bytes)) << "\n";
  for (const auto& [format, total] : totals) {
    std::printf("  %-6s %5zu tensors %14llu parameters %12s  %6.2f bits/weight\n", format.c_str(), total.tensors,
                static_cast<unsigned long long>(total.elements), human_bytes(static_cast<double>(total.bytes)).c_str(),
                total.elements ? 8.0 * static_cast<double>(total.bytes) / static_cast<double>(total.elements) : 0.0);
  }
  if (list_tensors) {
    for (const auto& tensor : file.tensors()) {
      std::string shape;
      for (std::uint32_t d = 0; d < tensor.n_dims; ++d) shape += (d ? " x " : "") + std::to_string(tensor.dims[d]);
      std::printf("  %-28s %-5s [%s] %s\n", std::string(tensor.name).c_str(),
                  std::string(chorus::gguf::type_name(tensor.type)).c_str(), shape.c_str(),
                  human_bytes(static_cast<double>(tensor.n_bytes)).c_str());
    }
  }
  return 0;
}

const chorus_cli::registration info_command{"info", "print a GGUF model's metadata, tensors and size by format",
                                            "MODEL.gguf [--tensors]", &run};

}  // namespace cmd_info
