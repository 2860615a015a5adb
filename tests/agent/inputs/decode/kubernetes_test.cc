// Kubernetes metadata taken from the paths the kubelet writes container logs to.

#include <doctest/doctest.h>

#include <string>

#include "agent/inputs/decode/decoder.h"

namespace {

using namespace logcapture::agent;
namespace base = logcapture::base;
using namespace logcapture::base;
using namespace logcapture::agent::decode;

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

Source filled(const std::string& path) {
  Source source;
  fillKubernetesMetadata(path, source);
  return source;
}

bool empty(const Source& s) {
  return s.kubeNamespace.empty() && s.pod.empty() && s.podUid.empty() && s.container.empty() && s.containerId.empty();
}

TEST_CASE("a pod log path gives namespace, pod, pod uid and container") {
  const Source s = filled(
      "/var/log/pods/kube-system_coredns-5d78c9869d-abcde_4f3c2a10-1b2c-4d5e-8f90-123456789abc/"
      "coredns/0.log");
  CHECK(s.kubeNamespace == "kube-system");
  CHECK(s.pod == "coredns-5d78c9869d-abcde");
  CHECK(s.podUid == "4f3c2a10-1b2c-4d5e-8f90-123456789abc");
  CHECK(s.container == "coredns");
  CHECK(s.containerId.empty());
}

TEST_CASE("a rotated pod log and a pod log below a mount prefix are recognised too") {
  CHECK(filled("/var/log/pods/ns_pod_uid/app/0.log.20240101-120000").container == "app");
  const Source s = filled("/host/var/log/pods/ns_web-0_uid-1/nginx/3.log");
  CHECK(s.kubeNamespace == "ns");
  CHECK(s.pod == "web-0");
  CHECK(s.podUid == "uid-1");
  CHECK(s.container == "nginx");
}

TEST_CASE("a container log symlink name gives pod, namespace, container and container id") {
  const Source s = filled("/var/log/containers/web-7d9f8b-xk2lp_shop_php-fpm-" + kId + ".log");
  CHECK(s.pod == "web-7d9f8b-xk2lp");
  CHECK(s.kubeNamespace == "shop");
  CHECK(s.container == "php-fpm");
  CHECK(s.containerId == kId);
  CHECK(s.podUid.empty());
}

TEST_CASE("paths of other files leave the kubernetes fields empty") {
  for (const std::string& path :
       {std::string("/var/log/syslog"), std::string("/var/log/app/app.log"), std::string(""),
        std::string("/var/log/pods/"), std::string("/var/log/pods/ns_pod/app/0.log"),      // no uid
        std::string("/var/log/pods/ns_pod_uid_x/app/0.log"),                               // four parts
        std::string("/var/log/pods/ns_pod_uid/0.log"),                                     // no container dir
        std::string("/var/log/pods/ns_pod_uid/app/sub/0.log"),                             // too deep
        std::string("/var/log/pods/ns__uid/app/0.log"),                                    // empty pod
        std::string("/var/log/containers/web_shop_php-" + kId),                            // no .log
        std::string("/var/log/containers/web_shop_php-" + kId.substr(1) + ".log"),         // short id
        std::string("/var/log/containers/web_shop_php-" + std::string(64, 'G') + ".log"),  // not hex
        std::string("/var/log/containers/web_shop_" + kId + ".log"),                       // no container
        std::string("/var/log/containers/web_php-" + kId + ".log"),                        // no namespace
        std::string("/var/log/containers/sub/web_shop_php-" + kId + ".log")}) {
    CAPTURE(path);
    CHECK(empty(filled(path)));
  }
}

}  // namespace
