#!/usr/bin/env python3
"""The manifests of packaging/kubernetes agree with each other and with the agent.

They parse; the kustomization lists every manifest; the DaemonSet mounts exactly its volumes, the log
directories read-only from the host and the state on a hostPath at the config's state_dir; its probes
and scrape annotations point at the admin port that the ConfigMap's config listens on; and that config
passes `logcapture check` with the environment the DaemonSet gives it.

usage: kubernetes_test.py LOGCAPTURE_BINARY
"""

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "packaging", "kubernetes")

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def load_manifests():
    docs = {}
    for name in sorted(os.listdir(DIR)):
        if not name.endswith(".yaml") or name == "kustomization.yaml":
            continue
        with open(os.path.join(DIR, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                for key in ("apiVersion", "kind", "metadata"):
                    check(key in doc, f"{name}: a manifest without {key}")
                docs[(doc["kind"], doc["metadata"]["name"])] = (name, doc)
    return docs


def one(docs, kind):
    found = [doc for (k, _), (_, doc) in docs.items() if k == kind]
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def admin_port(config):
    listen = config.get("agent", {}).get("admin", {}).get("listen", "127.0.0.1:9880")
    host, _, port = listen.rpartition(":")
    return host, int(port)


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    failures.append(f"probe port {port!r} names no container port")
    return None


def main():
    binary = sys.argv[1]
    docs = load_manifests()

    with open(os.path.join(DIR, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = set(kustomization.get("resources", []))
    files = {name for name, _ in docs.values()}
    check(listed == files, f"kustomization resources {sorted(listed)} are not the manifests {sorted(files)}")

    daemonset = one(docs, "DaemonSet")
    configmap = one(docs, "ConfigMap")
    account = one(docs, "ServiceAccount")
    pod = daemonset["spec"]["template"]["spec"]
    containers = pod["containers"]
    check(len(containers) == 1, "the DaemonSet has one container")
    container = containers[0]

    check(daemonset["spec"]["selector"]["matchLabels"].items() <= daemonset["spec"]["template"]["metadata"]["labels"].items(),
          "the selector does not match the pod's labels")
    check(pod.get("serviceAccountName") == account["metadata"]["name"], "the pod does not use the ServiceAccount")
    check({"operator": "Exists"} in pod.get("tolerations", []), "the pod does not tolerate every taint (all nodes)")
    images = {i["name"] for i in kustomization.get("images", [])}
    check(container["image"].split(":")[0] in images, "the kustomization does not set the container's image")

    # Mounts and volumes, one to one.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    check(set(volumes) == set(mounts), f"volumes {sorted(volumes)} and mounts {sorted(mounts)} differ")
    by_path = {m["mountPath"]: volumes.get(m["name"], {}) for m in mounts.values()}
    for logs in ("/var/log/pods", "/var/log/containers"):
        mount = next((m for m in mounts.values() if m["mountPath"] == logs), None)
        if check(mount is not None, f"{logs} is not mounted"):
            check(mount.get("readOnly") is True, f"{logs} is not mounted read-only")
            check(by_path[logs].get("hostPath", {}).get("path") == logs, f"{logs} is not the host's {logs}")

    # The config, from the ConfigMap through its mount.
    config_mount = next((m for m in mounts.values() if volumes.get(m["name"], {}).get("configMap")), None)
    check(config_mount is not None and config_mount["mountPath"] == "/etc/logcapture",
          "the ConfigMap is not mounted at /etc/logcapture, where the image's entrypoint reads capture.yaml")
    if config_mount:
        check(volumes[config_mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"],
              "the config volume names another ConfigMap")
    text = configmap["data"].get("capture.yaml")
    check(text is not None, "the ConfigMap has no capture.yaml")
    config = yaml.safe_load(text or "{}")

    state_dir = config.get("agent", {}).get("state_dir", "/var/lib/logcapture")
    state = by_path.get(state_dir, {})
    check(state.get("hostPath") is not None, f"state_dir {state_dir} is not on a hostPath (checkpoints would not survive)")
    check(not mounts.get(next((n for n, m in mounts.items() if m["mountPath"] == state_dir), ""), {}).get("readOnly"),
          "the state directory is mounted read-only")
    for entry in config.get("inputs", []):
        for pattern in entry.get("paths", []):
            check(any(fnmatch.fnmatch(pattern, p + "/*") for p in by_path),
                  f"input {entry['name']} reads {pattern}, which no mount holds")

    # Probes and scrape annotations point at the admin server the config starts.
    host, port = admin_port(config)
    check(host not in ("127.0.0.1", "localhost", "::1", "[::1]"),
          f"the admin server listens on {host}, which the kubelet's probes cannot reach")
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        spec = container.get(probe, {}).get("httpGet", {})
        check(spec.get("path") == path, f"{probe} asks {spec.get('path')}, not {path}")
        check(resolve_port(container, spec.get("port")) == port, f"{probe} probes a port other than the admin port {port}")
    annotations = daemonset["spec"]["template"]["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true", "no prometheus.io/scrape annotation")
    check(annotations.get("prometheus.io/port") == str(port), "prometheus.io/port is not the admin port")
    check(annotations.get("prometheus.io/path") == "/metrics", "prometheus.io/path is not /metrics")

    resources = container.get("resources", {})
    check("requests" in resources and "limits" in resources, "the container has no requests or limits")
    security = container.get("securityContext", {})
    check(security.get("readOnlyRootFilesystem") is True, "the root file system is not read-only")
    check(security.get("allowPrivilegeEscalation") is False, "privilege escalation is allowed")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], "capabilities are not all dropped first")
    check(set(security.get("capabilities", {}).get("add", [])) <= {"DAC_READ_SEARCH"},
          "capabilities beyond DAC_READ_SEARCH are added")

    # `logcapture check` on the ConfigMap's config, with the DaemonSet's environment (values from the
    # downward API or a Secret get a stand-in).
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "stand-in-" + var["name"].lower())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "capture.yaml")
        with open(path, "w") as f:
            f.write(text or "")
        result = subprocess.run([binary, "check", "-c", path], env=env, capture_output=True, text=True)
        check(result.returncode == 0, "logcapture check rejects the ConfigMap's capture.yaml:\n" + result.stderr)

    kubectl = shutil.which("kubectl")
    if kubectl:
        result = subprocess.run([kubectl, "kustomize", DIR], capture_output=True, text=True)
        check(result.returncode == 0, "kubectl kustomize failed:\n" + result.stderr)
        rendered = list(yaml.safe_load_all(result.stdout))
        check(len(rendered) == len(docs), f"kubectl kustomize rendered {len(rendered)} objects, not {len(docs)}")
    else:
        print("note: kubectl is not installed, so `kubectl kustomize` was not tried (the kustomization's "
              "resource list was checked above)")

    for f in failures:
        print("FAIL:", f)
    print(f"kubernetes: {len(docs)} manifests, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
