#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"

namespace tendril {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// A regular file mapped whole, private and writable (changes stay in this
// process), its pages read in at once: megabytes without a copy into fresh
// memory (the CLI's `service apply` of 100,000 services reads 12 MB).
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~MappedFile();
  char* data() { return data_; }
  size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

// Writes `contents` to `path` so that a reader sees either the old file or
// the whole new one: temp file in the same directory, fsync, rename, fsync of
// the directory.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents, int mode = 0600);

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, int mode = 0755);

}  // namespace tendril
