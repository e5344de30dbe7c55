// Loads every BPF object through the running kernel's verifier, whole, as the
// agent does (prog arrays are filled from their initialisers, which need every
// program they name), and reports for each program whether it loaded and its
// verified instruction count. A refusal quotes libbpf's log, which names the
// program the verifier refused.
//   bpf_verify_report DIR [--json]
#include <bpf/libbpf.h>
#include <dirent.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datapath/loader.h"
#include "common/log.h"

#include <algorithm>

namespace {

struct Row {
  std::string object, program;
  bool loaded = false;
  uint32_t insns = 0;
  uint32_t xlated = 0;  // instructions after the verifier (dead branches gone): what runs
  std::string error;
};


// The whole object, as the agent loads it (a prog array's initialiser needs
// every program it names); one row per program.
std::vector<Row> LoadObject(const std::string& path, const std::string& object) {
  std::vector<Row> rows;
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) return {Row{object, "(open failed)"}};
  bpf_map* m;
  bpf_object__for_each_map(m, obj) bpf_map__set_pin_path(m, nullptr);
  tendril::LibbpfCapture cap;
  int err = bpf_object__load(obj);
  // TND_VERIFY_LOG_LINES=N: more of the verifier's log (default: the last 3 lines).
  const char* n = std::getenv("TND_VERIFY_LOG_LINES");
  bpf_program* p;
  bpf_object__for_each_program(p, obj) {
    Row r{object, bpf_program__name(p)};
    if (err) {
      r.error = cap.Tail(n ? std::atoi(n) : 3);
    } else {
      auto info = tendril::GetProgramInfo(bpf_program__fd(p));
      r.loaded = true;
      r.insns = info.ok() ? info->verified_insns : 0;
      r.xlated = info.ok() ? info->xlated_len / 8 : 0;
    }
    rows.push_back(r);
  }
  bpf_object__close(obj);
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--json]\n", argv[0]);
    return 2;
  }
  tendril::SetLogLevel(tendril::LogLevel::kError);  // expected refusals are reported, not logged
  std::string dir = argv[1];
  bool json = argc > 2 && std::string(argv[2]) == "--json";
  std::vector<std::string> objects;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 2 && n.substr(n.size() - 2) == ".o") objects.push_back(n.substr(0, n.size() - 2));
    }
    closedir(d);
  }
  std::sort(objects.begin(), objects.end());
  std::vector<Row> rows;
  for (const auto& o : objects)
    for (Row& r : LoadObject(dir + "/" + o + ".o", o)) rows.push_back(std::move(r));
  int unexpected = 0;
  for (const auto& r : rows)
    if (r.loaded == (r.object == "test_reject")) unexpected++;  // test_reject must be refused
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows)
      j.push_back({{"object", r.object}, {"program", r.program}, {"loaded", r.loaded},
                   {"verified_insns", r.insns}, {"xlated_insns", r.xlated}, {"error", r.error}});
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%-14s %-24s %-8s %-15s %s\n", "OBJECT", "PROGRAM", "LOADED", "VERIFIED INSNS", "XLATED INSNS");
    for (const auto& r : rows)
      std::printf("%-14s %-24s %-8s %-15u %u%s\n", r.object.c_str(), r.program.c_str(), r.loaded ? "yes" : "no",
                  r.insns, r.xlated, r.object == "test_reject" ? "   (must be refused)" : "");
    // Why a program was refused, where it should not have been (on a
    // kernel of the matrix this is all there is to go on).
    for (const auto& r : rows)
      if (!r.loaded && r.object != "test_reject")
        std::fprintf(stderr, "%s/%s refused:\n%s\n", r.object.c_str(), r.program.c_str(), r.error.c_str());
  }
  return unexpected ? 1 : 0;
}
