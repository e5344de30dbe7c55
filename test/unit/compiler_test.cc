#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "datapath/compiler.h"
#include "tendril_build_config.h"

#include <gtest/gtest.h>

namespace tendril {
namespace {

const std::map<std::string, std::string> kSources = {{"bpf/a.c", "int a;"}, {"bpf/lib/b.h", "int b;"}};

TEST(CacheKeyTest, StableForSameInputs) {
  EXPECT_EQ(CacheKey(kSources, "hdr", "clang 14"), CacheKey(kSources, "hdr", "clang 14"));
  EXPECT_EQ(CacheKey(kSources, "hdr", "clang 14").size(), 16u);
}

TEST(CacheKeyTest, ChangesWithEveryInput) {
  std::string base = CacheKey(kSources, "hdr", "clang 14");
  auto changed_src = kSources;
  changed_src["bpf/a.c"] = "int a; ";
  EXPECT_NE(CacheKey(changed_src, "hdr", "clang 14"), base);
  auto renamed = kSources;
  renamed.erase("bpf/a.c");
  renamed["bpf/c.c"] = "int a;";
  EXPECT_NE(CacheKey(renamed, "hdr", "clang 14"), base);
  EXPECT_NE(CacheKey(kSources, "hdr2", "clang 14"), base);
  EXPECT_NE(CacheKey(kSources, "hdr", "clang 15"), base);
}

TEST(CacheKeyTest, BoundariesBetweenInputsMatter) {
  // Moving bytes from one input to the next must change the key.
  EXPECT_NE(CacheKey({}, "ab", "c"), CacheKey({}, "a", "bc"));
  EXPECT_NE(CacheKey({{"x", "yz"}}, "", ""), CacheKey({{"xy", "z"}}, "", ""));
}

TEST(ConfigHeaderTest, RendersFeaturesAndNothingAboutTheNode) {
  std::string h = RenderConfigHeader(Features{true, false, true});
  EXPECT_NE(h.find("#define TENDRIL_ENABLE_IPV4 1"), std::string::npos);
  EXPECT_NE(h.find("#define TENDRIL_ENABLE_IPV6 0"), std::string::npos);
  EXPECT_EQ(h.find("NODE_NAME"), std::string::npos) << "objects must be shareable between nodes";
  EXPECT_EQ(h.find("DEVICE"), std::string::npos);
  EXPECT_EQ(h, RenderConfigHeader(Features{true, false, true}));
}

// Every macro the header defines is read by some BPF source, and every
// TENDRIL_ macro the sources read is defined: the header carries what the
// programs use and nothing else.
TEST(ConfigHeaderTest, DefinesExactlyWhatTheBpfSourcesRead) {
  auto sources = ReadBpfSources(TENDRIL_SOURCE_DIR);
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::set<std::string> read;
  std::regex macro("TENDRIL_[A-Z0-9_]+");
  for (const auto& [path, text] : *sources)
    for (auto it = std::sregex_iterator(text.begin(), text.end(), macro); it != std::sregex_iterator(); ++it)
      if (!absl::EndsWith(it->str(), "_H_")) read.insert(it->str());  // not include guards
  std::set<std::string> defined;
  std::string h = RenderConfigHeader(Features{});
  std::regex define("#define (TENDRIL_[A-Z0-9_]+) ");
  for (auto it = std::sregex_iterator(h.begin(), h.end(), define); it != std::sregex_iterator(); ++it)
    defined.insert((*it)[1].str());
  EXPECT_EQ(defined, read);
}

TEST(CacheKeyTest, SaysWhichInputChanged) {
  CacheInputs a = HashInputs(kSources, "hdr", "clang 14", {"-O2"});
  EXPECT_EQ(WhyRebuilt(a, a), "unchanged");
  EXPECT_EQ(WhyRebuilt(a, HashInputs(kSources, "hdr2", "clang 14", {"-O2"})), "config header changed (settings)");
  EXPECT_EQ(WhyRebuilt(a, HashInputs({}, "hdr", "clang 15", {"-O2"})), "sources changed, compiler changed");
  EXPECT_EQ(WhyRebuilt(a, HashInputs(kSources, "hdr", "clang 14", {"-O2", "-g"})), "compiler flags changed");
  EXPECT_NE(a.Key(), HashInputs(kSources, "hdr", "clang 14", {"-O2", "-g"}).Key());
}

}  // namespace
}  // namespace tendril
