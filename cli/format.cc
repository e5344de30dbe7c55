#include "cli/format.h"

#include <netinet/in.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "maps/tendril_maps.h"

namespace tendril::cli {

std::string Table::Render(int indent) const {
  std::vector<size_t> width(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  };
  measure(headers_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    std::string l(static_cast<size_t>(indent), ' ');
    for (size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      l += cell;
      if (i + 1 < width.size()) l += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
  return out;
}

const char* ProtoName(uint8_t proto) {
  switch (proto) {
    case IPPROTO_TCP: return "TCP";
    case IPPROTO_UDP: return "UDP";
    default: return "?";
  }
}

std::string TcpStateName(uint8_t proto, uint8_t seen) {
  if (proto != IPPROTO_TCP) return "-";
  std::vector<const char*> f;
  if (seen & TND_TCP_SYN) f.push_back("SYN");
  if (seen & TND_TCP_ACK) f.push_back("ACK");
  if (seen & TND_TCP_FIN) f.push_back("FIN");
  if (seen & TND_TCP_RST) f.push_back("RST");
  return f.empty() ? "-" : absl::StrJoin(f, " ");
}

std::string CtFlagsText(uint8_t flags) {
  std::vector<const char*> f;
  if (flags & TND_CT_F_SERVICE) f.push_back("service");
  if (flags & TND_CT_F_REPLY) f.push_back("reply");
  if (flags & TND_CT_F_SNAT) f.push_back("snat");
  if (flags & TND_CT_F_DSR) f.push_back("dsr");
  if (flags & TND_CT_F_LOCAL) f.push_back("local");
  if (flags & TND_CT_F_XDP) f.push_back("xdp");
  if (flags & TND_CT_F_ENDPOINT) f.push_back("endpoint");
  if (flags & TND_CT_F_INBOUND) f.push_back("inbound");
  return absl::StrJoin(f, ",");
}

std::string Age(uint32_t now, uint32_t then) {
  int32_t d = static_cast<int32_t>(now - then);
  if (d < 0) d = 0;
  if (d < 120) return absl::StrCat(d, "s");
  if (d < 7200) return absl::StrCat(d / 60, "m");
  return absl::StrCat(d / 3600, "h");
}

std::string Remaining(uint32_t now, uint32_t expires) {
  int32_t d = static_cast<int32_t>(expires - now);
  return d <= 0 ? "expired" : absl::StrCat(d, "s");
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

}  // namespace tendril::cli
