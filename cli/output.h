// Human output for the CLI: aligned tables.
#pragma once

#include <string>
#include <vector>

namespace tendril::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  // Left-aligned columns separated by two spaces; `indent` spaces before each line.
  std::string Render(int indent = 0) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace tendril::cli
