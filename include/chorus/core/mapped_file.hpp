// chorus — a read-only memory mapping of a whole file, with RAII.
//
// Model weights are views into this mapping: nothing is copied, and the operating system
// pages in only what the forward pass touches.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "chorus/config.hpp"
#include "chorus/core/error.hpp"

#if CHORUS_OS_WINDOWS
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace chorus::inline CHORUS_ABI {

class mapped_file {
 public:
  mapped_file() = default;

  // Maps `path` read-only. Throws chorus::error: file_not_found, file_unreadable (no
  // permission, a directory, mmap refused) or file_empty, each naming the path.
  explicit mapped_file(const std::filesystem::path& path) : path_(path) { open(); }

  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  mapped_file(mapped_file&& other) noexcept { swap(other); }
  mapped_file& operator=(mapped_file&& other) noexcept {
    if (this != &other) {
      mapped_file(std::move(other)).swap(*this);
    }
    return *this;
  }
  ~mapped_file() { close(); }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool is_open() const noexcept { return data_ != nullptr; }
  const std::filesystem::path& path() const noexcept { return path_; }

  void swap(mapped_file& other) noexcept {
    std::swap(path_, other.path_);
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
#if CHORUS_OS_WINDOWS
    std::swap(mapping_, other.mapping_);
#endif
  }

 private:
  [[noreturn]] void fail_open(errc code, const std::string& why) const {
    fail(code, "cannot map '", path_.string(), "': ", why);
  }

#if CHORUS_OS_WINDOWS
  void open() {
    HANDLE file = ::CreateFileW(path_.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                                FILE_ATTRIBUTE_NORMAL, nullptr);
    if (file == INVALID_HANDLE_VALUE) {
      const DWORD err = ::GetLastError();
      if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) fail_open(errc::file_not_found, "no such file");
      fail_open(errc::file_unreadable, "CreateFile failed with error " + std::to_string(err));
    }
    LARGE_INTEGER size{};
    if (!::GetFileSizeEx(file, &size)) {
      ::CloseHandle(file);
      fail_open(errc::file_unreadable, "cannot read its size");
    }
    if (size.QuadPart == 0) {
      ::CloseHandle(file);
      fail_open(errc::file_empty, "the file is empty");
    }
    mapping_ = ::CreateFileMappingW(file, nullptr, PAGE_READONLY, 0, 0, nullptr);
    ::CloseHandle(file);
    if (mapping_ == nullptr) fail_open(errc::file_unreadable, "CreateFileMapping failed");
    void* view = ::MapViewOfFile(mapping_, FILE_MAP_READ, 0, 0, 0);
    if (view == nullptr) {
      ::CloseHandle(mapping_);
      mapping_ = nullptr;
      fail_open(errc::file_unreadable, "MapViewOfFile failed");
    }
    data_ = static_cast<const std::byte*>(view);
    size_ = static_cast<std::size_t>(size.QuadPart);
  }
  void close() noexcept {
    if (data_ != nullptr) ::UnmapViewOfFile(data_);
    if (mapping_ != nullptr) ::CloseHandle(mapping_);
    data_ = nullptr;
    mapping_ = nullptr;
    size_ = 0;
  }
  HANDLE mapping_ = nullptr;
#else
  void open() {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT || err == ENOTDIR) fail_open(errc::file_not_found, "no such file");
      fail_open(errc::file_unreadable, std::strerror(err));
    }
    struct ::stat info {};
    if (::fstat(fd, &info) != 0) {
      const int err = errno;
      ::close(fd);
      fail_open(errc::file_unreadable, std::strerror(err));
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd);
      fail_open(errc::file_unreadable, "not a regular file");
    }
    if (info.st_size == 0) {
      ::close(fd);
      fail_open(errc::file_empty, "the file is empty");
    }
    const auto size = static_cast<std::size_t>(info.st_size);
    void* view = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (view == MAP_FAILED) fail_open(errc::file_unreadable, std::string("mmap failed: ") + std::strerror(err));
    data_ = static_cast<const std::byte*>(view);
    size_ = size;
  }
  void close() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
#endif

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace chorus::inline CHORUS_ABI
