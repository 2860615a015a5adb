#!/usr/bin/env python3
"""packaging/prometheus/alerts.yaml: valid, tested, documented, and about metrics the agent exports.

- `promtool check rules` accepts the rules (their PromQL and their annotation templates);
- `promtool test rules` passes alerts_test.yaml, run on a copy of the rules without annotations so that
  the tests state when each alert fires and with which labels;
- every alert has a severity, a summary, a description and a runbook_url naming a section of
  docs/runbook.md, and every alert is tested firing and not firing;
- every metric name and fixed label value in the rules and in the tests' series is exported by a
  running agent (so a misspelt name fails here, not silently in production).

usage: prometheus_test.py LOGCAPTURE_BINARY   (exit 77 when promtool is not installed)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import promql_names  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "packaging", "prometheus", "alerts.yaml")
TESTS = os.path.join(ROOT, "packaging", "prometheus", "alerts_test.yaml")
RUNBOOK = os.path.join(ROOT, "docs", "runbook.md")


def anchors(markdown):
    """GitHub's anchors of the headings of a Markdown file."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def main():
    binary = sys.argv[1]
    promtool = shutil.which("promtool")
    if not promtool:
        print("SKIP: promtool is not installed (Debian package prometheus; packaging/install-deps.sh test installs it)")
        return 77
    failures = []

    result = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    if result.returncode != 0:
        failures.append("promtool check rules:\n" + result.stdout + result.stderr)

    # The example scrape config, but for its Kubernetes job: Debian's promtool is built without
    # Kubernetes service discovery.
    with open(os.path.join(ROOT, "packaging", "prometheus", "prometheus.yaml")) as f:
        scrape = yaml.safe_load(f)
    scrape["scrape_configs"] = [c for c in scrape["scrape_configs"] if "kubernetes_sd_configs" not in c]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(RULES, tmp)
        with open(os.path.join(tmp, "prometheus.yaml"), "w") as f:
            yaml.safe_dump(scrape, f)
        result = subprocess.run([promtool, "check", "config", "prometheus.yaml"], cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0:
            failures.append("promtool check config prometheus.yaml:\n" + result.stdout + result.stderr)
        print("note: prometheus.yaml checked without its Kubernetes job (Debian's promtool has no Kubernetes discovery)")

    with open(RULES) as f:
        rules = yaml.safe_load(f)
    with open(TESTS) as f:
        tests = yaml.safe_load(f)
    with open(RUNBOOK) as f:
        sections = anchors(f.read())

    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    for rule in alerts:
        name = rule["alert"]
        annotations = rule.get("annotations", {})
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            failures.append(f"{name}: severity is not warning or critical")
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key, "").strip():
                failures.append(f"{name}: no {key}")
        if "check first" not in annotations.get("description", "").lower():
            failures.append(f"{name}: the description does not say what to check first")
        url = annotations.get("runbook_url", "")
        if not url.startswith("docs/runbook.md#") or url.split("#", 1)[1] not in sections:
            failures.append(f"{name}: runbook_url {url!r} names no section of docs/runbook.md")

    # Each alert is tested firing (a non-empty exp_alerts) and not firing (an empty one).
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    for rule in alerts:
        name = rule["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        if not any(c.get("exp_alerts") for c in mine):
            failures.append(f"{name}: no test makes it fire")
        if not any(not c.get("exp_alerts") for c in mine):
            failures.append(f"{name}: no test shows it not firing")

    with tempfile.TemporaryDirectory() as tmp:
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
        with open(os.path.join(tmp, "alerts.yaml"), "w") as f:
            yaml.safe_dump(rules, f, sort_keys=False)
        shutil.copy(TESTS, os.path.join(tmp, "alerts_test.yaml"))
        result = subprocess.run([promtool, "test", "rules", "alerts_test.yaml"], cwd=tmp, capture_output=True, text=True)
        print(result.stdout.strip())
        if result.returncode != 0:
            failures.append("promtool test rules:\n" + result.stdout + result.stderr)

    names = promql_names.exported(promql_names.scrape_agent(binary))
    exprs = [(f"alerts.yaml {r.get('alert') or r.get('record')}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    exprs += [(f"alerts_test.yaml series {s['series']}", s["series"])
              for t in tests["tests"] for s in t.get("input_series", [])]
    failures += promql_names.problems(exprs, names)
    # The check itself must see a wrong name, or a passing run proves nothing.
    if not promql_names.problems([("probe", 'logcapture_breaker_sate{state="open"}')], names) or \
            not promql_names.problems([("probe", 'logcapture_breaker_state{state="half-open"}')], names):
        failures.append("the metric name check does not see a misspelt name or value")

    for f in failures:
        print("FAIL:", f)
    print(f"alerts: {len(alerts)} alerts, {len(cases)} test cases, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
