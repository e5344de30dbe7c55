// The agent's local API: one JSON object per line over a Unix stream socket.
//   request:  {"op": "prefilter.add", "args": {...}}
//   response: {"ok": true, "result": ...} or {"ok": false, "error": "..."}
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/fd.h"

namespace tendril {

// One request or answer line. A whole service set goes in one `service apply`
// request: 1,000,000 services of 2 backends are 113 MB of JSON. Memory is
// taken as the bytes arrive; the cap only bounds a runaway client (the
// socket is root's).
inline constexpr size_t kMaxApiMessage = size_t{512} << 20;

// Sends one request and returns the result, or the agent's error as a status.
absl::StatusOr<nlohmann::json> CallAgent(const std::string& socket_path, const std::string& op,
                                         const nlohmann::json& args = nlohmann::json::object(),
                                         int timeout_ms = 10000);

// The same with `args` as JSON text, sent as it is (no document built: a
// service set of 100,000 services is 12 MB). The caller checks it is one
// JSON value (nlohmann::json::accept); line breaks in it become spaces.
absl::StatusOr<nlohmann::json> CallAgentRaw(const std::string& socket_path, const std::string& op,
                                            std::string args_json, int timeout_ms = 10000);
// The same with the args as pieces of text sent one after the other (no
// copy into one string); their line breaks are replaced in place.
absl::StatusOr<nlohmann::json> CallAgentPieces(const std::string& socket_path, const std::string& op,
                                               const std::vector<absl::Span<char>>& args_pieces,
                                               int timeout_ms = 10000);

// A connection to the agent's API socket (errors say whether the agent runs).
absl::StatusOr<UniqueFd> ConnectApi(const std::string& socket_path);

// Reads one '\n'-terminated line (at most kMaxApiMessage bytes) from fd.
absl::StatusOr<std::string> ReadLine(int fd, int timeout_ms);
absl::Status WriteAll(int fd, absl::string_view data);

// Maps an absl status code to/from the wire so the CLI can tell "bad input"
// from "agent failed".
std::string StatusCodeName(absl::StatusCode c);
absl::StatusCode StatusCodeFromName(const std::string& s);

}  // namespace tendril
