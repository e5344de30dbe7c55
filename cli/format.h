// Human output for the CLI: aligned tables, and the words and durations
// its tables show for what the maps hold.
#pragma once

#include <cstdint>
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

// "TCP", "UDP", "?" for an IP protocol number.
const char* ProtoName(uint8_t proto);
// "SYN ACK", "FIN ACK", ... from the TCP flags a flow has seen; "-" for none.
std::string TcpStateName(uint8_t proto, uint8_t seen);
// "service", "reply,snat,local", ... from conntrack flags (TND_CT_F_*).
std::string CtFlagsText(uint8_t flags);
// "42s", "5m", "3h" since `then`; seconds on the BPF clock.
std::string Age(uint32_t now, uint32_t then);

// Bytes for a person: 512 B, 3.2 kB, 41.0 MB (powers of 1024).
std::string HumanBytes(uint64_t bytes);
// "17s" until `expires`, or "expired".
std::string Remaining(uint32_t now, uint32_t expires);

}  // namespace tendril::cli
