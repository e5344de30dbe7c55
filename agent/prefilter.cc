#include "agent/prefilter.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"

namespace tendril {
namespace {

tnd_lpm_v4_key V4Key(const Cidr& c) {
  tnd_lpm_v4_key k{};
  k.prefixlen = c.prefix_len;
  std::memcpy(k.addr, c.addr.data(), 4);
  return k;
}

tnd_lpm_v6_key V6Key(const Cidr& c) {
  tnd_lpm_v6_key k{};
  k.prefixlen = c.prefix_len;
  std::memcpy(k.addr, c.addr.data(), 16);
  return k;
}

}  // namespace

absl::StatusOr<std::vector<Cidr>> ParseCidrList(const std::vector<std::string>& texts) {
  std::vector<Cidr> out;
  std::vector<std::string> errors;
  for (const auto& t : texts) {
    auto c = ParseCidr(t);
    if (c.ok())
      out.push_back(*c);
    else
      errors.emplace_back(c.status().message());
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  if (out.empty()) return absl::InvalidArgumentError("no CIDRs given");
  return out;
}

absl::Status CheckPrefilterCapacity(const std::set<Cidr>& want) {
  size_t n4 = 0, n6 = 0;
  for (const Cidr& c : want) (c.family == Family::kV4 ? n4 : n6)++;
  if (n4 > TND_PREFILTER_MAX || n6 > TND_PREFILTER_MAX)
    return absl::ResourceExhaustedError(absl::StrCat(
        "prefilter would hold ", n4, " IPv4 and ", n6, " IPv6 CIDRs; each family holds at most ",
        TND_PREFILTER_MAX));
  return absl::OkStatus();
}

std::unique_ptr<tnd_prefilter_state> PrefilterLevel(const std::set<Cidr>& set) {
  auto level = std::make_unique<tnd_prefilter_state>();
  std::memset(level->v4, TND_PF_PASS, sizeof(level->v4));
  std::memset(level->v6, TND_PF_PASS, sizeof(level->v6));
  auto bucket_of = [](const Cidr& c) { return static_cast<uint32_t>(c.addr[0]) << 8 | c.addr[1]; };
  auto buckets = [&](const Cidr& c) { return c.family == Family::kV4 ? level->v4 : level->v6; };
  for (const Cidr& c : set)  // longer entries first: a covering one overrides them
    if (c.prefix_len > 16) buckets(c)[bucket_of(c)] = TND_PF_TRIE;
  for (const Cidr& c : set) {
    if (c.prefix_len > 16) continue;
    uint32_t span = 1u << (16 - c.prefix_len);
    std::memset(buckets(c) + (bucket_of(c) & ~(span - 1)), TND_PF_DENY, span);
  }
  return level;
}

std::unique_ptr<tnd_prefilter_state> PrefilterTransition(const tnd_prefilter_state& from,
                                                         const tnd_prefilter_state& to) {
  auto mid = std::make_unique<tnd_prefilter_state>(to);
  for (uint32_t i = 0; i < TND_PF_BUCKETS; ++i) {
    if (from.v4[i] != to.v4[i]) mid->v4[i] = TND_PF_TRIE;
    if (from.v6[i] != to.v6[i]) mid->v6[i] = TND_PF_TRIE;
  }
  return mid;
}

absl::StatusOr<std::set<Cidr>> Prefilter::Current() const {
  std::set<Cidr> out;
  TND_RETURN_IF_ERROR(v4_.ForEach([&](const tnd_lpm_v4_key& k, const tnd_prefilter_val&) {
    Cidr c;
    c.family = Family::kV4;
    c.prefix_len = static_cast<uint8_t>(k.prefixlen);
    std::memcpy(c.addr.data(), k.addr, 4);
    out.insert(c);
  }));
  TND_RETURN_IF_ERROR(v6_.ForEach([&](const tnd_lpm_v6_key& k, const tnd_prefilter_val&) {
    Cidr c;
    c.family = Family::kV6;
    c.prefix_len = static_cast<uint8_t>(k.prefixlen);
    std::memcpy(c.addr.data(), k.addr, 16);
    out.insert(c);
  }));
  return out;
}

absl::Status Prefilter::Insert(const Cidr& c) {
  tnd_prefilter_val v{};
  return c.family == Family::kV4 ? v4_.Update(V4Key(c), v) : v6_.Update(V6Key(c), v);
}

absl::Status Prefilter::Remove(const Cidr& c) {
  return c.family == Family::kV4 ? v4_.Delete(V4Key(c)) : v6_.Delete(V6Key(c));
}

absl::Status Prefilter::WriteState(const tnd_prefilter_state& level) {
  return Annotate(state_.Update(0, level), "prefilter first level (tnd_prefilter_state)");
}

absl::StatusOr<Prefilter::SyncStats> Prefilter::Sync(const std::set<Cidr>& want) {
  TND_RETURN_IF_ERROR(CheckPrefilterCapacity(want));
  TND_ASSIGN_OR_RETURN(std::set<Cidr> have, Current());
  // Buckets whose answer changes ask the trie while entries come and go.
  auto from = PrefilterLevel(have), to = PrefilterLevel(want);
  TND_RETURN_IF_ERROR(WriteState(*PrefilterTransition(*from, *to)));
  SyncStats st;
  std::vector<Cidr> added;
  auto restore = [&]() {
    for (const Cidr& c : added) (void)Remove(c);
    for (const Cidr& c : have)
      if (auto s = Insert(c); !s.ok()) TND_LOG_ERROR("prefilter restore of ", c.ToString(), ": ", s.message());
    if (auto s = WriteState(*from); !s.ok()) TND_LOG_ERROR(s.message());
  };
  for (const Cidr& c : want) {
    if (have.count(c)) continue;
    if (auto s = Insert(c); !s.ok()) {
      restore();
      return Annotate(s, absl::StrCat("prefilter add ", c.ToString()));
    }
    added.push_back(c);
    st.added++;
  }
  for (const Cidr& c : have) {
    if (want.count(c)) continue;
    if (auto s = Remove(c); !s.ok()) {
      restore();
      return Annotate(s, absl::StrCat("prefilter delete ", c.ToString()));
    }
    st.removed++;
  }
  TND_RETURN_IF_ERROR(WriteState(*to));
  return st;
}

}  // namespace tendril
