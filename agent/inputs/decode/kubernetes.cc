// Kubernetes metadata from the kubelet's log paths. Namespaces, pod names, pod uids and container names
// cannot contain '_', so '_' separates them without ambiguity.

#include <algorithm>
#include <array>
#include <optional>

#include "agent/inputs/decode/decoder.h"

namespace logcapture::agent::decode {

namespace {

// Exactly `N` non-empty parts of `text` separated by `sep`; nullopt otherwise.
template <std::size_t N>
std::optional<std::array<std::string_view, N>> split(std::string_view text, char sep) {
  std::array<std::string_view, N> parts;
  for (std::size_t i = 0; i < N; ++i) {
    const std::size_t end = i + 1 < N ? text.find(sep) : text.size();
    if (end == std::string_view::npos || end == 0) return std::nullopt;
    parts[i] = text.substr(0, end);
    text.remove_prefix(std::min(text.size(), end + 1));
  }
  if (parts[N - 1].find(sep) != std::string_view::npos) return std::nullopt;
  return parts;
}

bool isLowerHex(std::string_view text) {
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// <ns>_<pod>_<uid>/<container>/<n>.log (or a rotated name beside it)
bool fromPodsPath(std::string_view rest, base::Source& source) {
  const auto dirs = split<3>(rest, '/');
  if (!dirs) return false;
  const auto pod = split<3>((*dirs)[0], '_');
  if (!pod) return false;
  source.kubeNamespace = (*pod)[0];
  source.pod = (*pod)[1];
  source.podUid = (*pod)[2];
  source.container = (*dirs)[1];
  return true;
}

// <pod>_<ns>_<container>-<64-hex id>.log
bool fromContainersPath(std::string_view name, base::Source& source) {
  constexpr std::string_view kSuffix = ".log";
  constexpr std::size_t kIdLength = 64;
  if (name.find('/') != std::string_view::npos || !name.ends_with(kSuffix)) return false;
  name.remove_suffix(kSuffix.size());
  const auto parts = split<3>(name, '_');
  if (!parts) return false;
  const std::string_view containerAndId = (*parts)[2];
  if (containerAndId.size() < kIdLength + 2) return false;
  const std::size_t dash = containerAndId.size() - kIdLength - 1;
  const std::string_view id = containerAndId.substr(dash + 1);
  if (containerAndId[dash] != '-' || !isLowerHex(id)) return false;
  source.pod = (*parts)[0];
  source.kubeNamespace = (*parts)[1];
  source.container = containerAndId.substr(0, dash);
  source.containerId = id;
  return true;
}

}  // namespace

void fillKubernetesMetadata(const std::string& path, base::Source& source) {
  constexpr std::string_view kPods = "/var/log/pods/";
  constexpr std::string_view kContainers = "/var/log/containers/";
  const std::string_view p(path);
  if (const std::size_t at = p.rfind(kPods); at != std::string_view::npos) {
    if (fromPodsPath(p.substr(at + kPods.size()), source)) return;
  }
  if (const std::size_t at = p.rfind(kContainers); at != std::string_view::npos) {
    fromContainersPath(p.substr(at + kContainers.size()), source);
  }
}

}  // namespace logcapture::agent::decode
