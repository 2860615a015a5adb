#!/usr/bin/env python3
"""packaging/grafana/logcapture.json: a dashboard Grafana can import, about metrics the agent exports.

It parses; every panel queries the dashboard's data source variable and sits on the 24-column grid
without overlapping another; it covers inputs, queue, delivery per sink, drops, breakers, buffers and
lag; its breaker timeline names every state the agent exports; every query is valid PromQL (promtool,
with the dashboard's variables filled in) and names only metrics, labels and label values that a
running agent exports.

usage: grafana_test.py LOGCAPTURE_BINARY
"""

import json
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
DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "logcapture.json")
SECTIONS = ["Inputs", "Queue", "Delivery per sink", "Drops", "Circuit breakers", "Buffers", "Lag"]


def main():
    binary = sys.argv[1]
    failures = []
    with open(DASHBOARD) as f:
        dashboard = json.load(f)

    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            failures.append(f"no {key}")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    if variables.get("datasource", {}).get("query") != "prometheus":
        failures.append("no Prometheus data source variable")

    panels = dashboard["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    for section in SECTIONS:
        if section not in rows:
            failures.append(f"no row {section!r}")

    cells = {}
    exprs = []
    for p in panels:
        g = p["gridPos"]
        if g["x"] < 0 or g["x"] + g["w"] > 24:
            failures.append(f"panel {p['title']!r} leaves the 24-column grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    failures.append(f"panel {p['title']!r} overlaps {cells[(x, y)]!r}")
                    break
                cells[(x, y)] = p["title"]
            else:
                continue
            break
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            failures.append(f"panel {p['title']!r} does not use the data source variable")
        if not p.get("targets"):
            failures.append(f"panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            exprs.append((f"panel {p['title']!r}", t["expr"]))

    names = promql_names.exported(promql_names.scrape_agent(binary))
    failures += promql_names.problems(exprs, names)
    for v in variables.values():
        query = v.get("definition", "")
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        if v["type"] != "query":
            continue
        if not m:
            failures.append(f"variable {v['name']}: not a label_values query: {query}")
            continue
        failures += promql_names.problems([(f"variable {v['name']}", m.group(1))], names)
        metric = promql_names.selectors(m.group(1))[0][0]
        if m.group(2) not in names.get(metric, {}) and m.group(2) not in promql_names.EXTERNAL_LABELS:
            failures.append(f"variable {v['name']}: {metric} has no label {m.group(2)}")

    timeline = [p for p in panels if p["type"] == "state-timeline"]
    if len(timeline) != 1:
        failures.append("no breaker state timeline")
    else:
        shown = {o["text"] for m in timeline[0]["fieldConfig"]["defaults"]["mappings"] for o in m["options"].values()}
        states = names.get("logcapture_breaker_state", {}).get("state", set())
        if shown != states:
            failures.append(f"the breaker timeline shows {sorted(shown)}, the agent's states are {sorted(states)}")

    promtool = shutil.which("promtool")
    if promtool:
        # Each query as a recording rule, with Grafana's variables as a query would have them.
        def filled(expr):
            expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            return re.sub(r"\$\{?(\w+)\}?", ".*", expr)
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query_{i}", "expr": filled(e)} for i, (_, e) in enumerate(exprs)]}]}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "queries.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(rules, f)
            result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            if result.returncode != 0:
                failures.append("a query is not valid PromQL:\n" + result.stdout + result.stderr)
    else:
        print("note: promtool is not installed, so the queries' syntax was not checked "
              "(Debian package prometheus; packaging/install-deps.sh test installs it)")

    for f in failures:
        print("FAIL:", f)
    print(f"dashboard: {len(panels)} panels, {len(exprs)} queries, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
