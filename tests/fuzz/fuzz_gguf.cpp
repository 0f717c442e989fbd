// libFuzzer target: parse arbitrary bytes as GGUF and touch every value and tensor.
// Any outcome but a chorus::error or success (a crash, a sanitizer report) is a bug.
#include <chorus/chorus.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = chorus::gguf::file::parse(std::as_bytes(std::span(data, size)), "fuzz");
    std::size_t sink = 0;
    for (const auto& entry : f.metadata()) {
      try {
        using chorus::gguf::value_type;
        if (entry.type == value_type::array) {
          if (entry.element_type == value_type::string) sink += f.get_array<std::string_view>(entry.key).size();
          else if (entry.element_type == value_type::float32 || entry.element_type == value_type::float64)
            sink += f.get_array<double>(entry.key).size();
          else sink += f.get_array<std::int64_t>(entry.key).size();
        } else if (entry.type == value_type::string) {
          sink += f.get<std::string_view>(entry.key).size();
        } else if (entry.type == value_type::boolean) {
          sink += f.get<bool>(entry.key);
        } else if (entry.type == value_type::float32 || entry.type == value_type::float64) {
          sink += f.get<double>(entry.key) > 0;
        } else {
          sink += static_cast<std::size_t>(f.get<std::int64_t>(entry.key));
        }
      } catch (const chorus::error&) {
      }
    }
    for (const auto& tensor : f.tensors()) {
      if (!tensor.data.empty()) sink += static_cast<std::size_t>(tensor.data.back());
      sink += f.tensor(tensor.name).n_dims;
    }
    volatile std::size_t keep = sink;
    (void)keep;
  } catch (const chorus::error&) {
  }
  return 0;
}
