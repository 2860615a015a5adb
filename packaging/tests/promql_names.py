"""Which metric names and label values PromQL text uses, and whether a running agent exports them.

Shared by the alert and dashboard tests: a rule or panel that names a metric the agent does not export
never fires or stays empty without a word, so both tests scrape a real agent and compare.
"""

import os
import re
import subprocess
import tempfile
import time
import urllib.request

# Labels that Prometheus or its scrape config adds (job, instance, Kubernetes service discovery, the
# relabelled `critical` of alerts.yaml), not the agent.
EXTERNAL_LABELS = {"job", "instance", "critical", "namespace", "pod", "node", "container"}
# Metrics of Prometheus itself.
EXTERNAL_METRICS = {"up"}
# Labels whose values are fixed by the agent's code (not by a config's names): their values are checked.
ENUMERATED_LABELS = {"state", "result", "from", "to", "reason", "policy"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"} | AGGREGATIONS
LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def selectors(expr):
    """[(metric name or None, [(label, op, value)])] of every vector selector in a PromQL expression."""
    out = []
    i, n = 0, len(expr)
    pending = None  # a metric name whose {matchers} may follow
    while i < n:
        c = expr[i]
        if c in "\"'`":
            end = expr.index(c, i + 1)
            i = end + 1
            continue
        if c == "[":
            i = expr.index("]", i) + 1
            continue
        if c == "{":
            end = expr.index("}", i)
            matchers = [(m.group(1), m.group(2), m.group(3)) for m in _MATCHER.finditer(expr[i + 1:end])]
            if pending is not None:
                out[-1] = (pending, matchers)
            else:
                out.append((None, matchers))
            pending = None
            i = end + 1
            continue
        m = _IDENT.match(expr, i)
        if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_.$")):
            word = m.group(0)
            j = m.end()
            while j < n and expr[j] == " ":
                j += 1
            i = m.end()
            if word in LIST_KEYWORDS:
                if j < n and expr[j] == "(":  # a label list, not metrics
                    i = expr.index(")", j) + 1
                pending = None
                continue
            if word.lower() in KEYWORDS or (j < n and expr[j] == "("):
                pending = None
                continue
            out.append((word, []))
            pending = word
            continue
        if not c.isspace():
            pending = None
        i += 1
    return out


def scrape_agent(binary):
    """The /metrics text of a short-lived agent with one file input and one sink."""
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        os.mkdir(os.path.join(tmp, "logs"))
        with open(os.path.join(tmp, "logs", "app.log"), "w") as f:
            f.write("a line\n")
        config = os.path.join(tmp, "capture.yaml")
        with open(config, "w") as f:
            f.write(f"""agent:
  state_dir: {tmp}/state
  admin: {{listen: "127.0.0.1:{port}"}}
inputs:
  - {{name: app, type: file, paths: ["{tmp}/logs/*.log"], start_at: beginning}}
sinks:
  - {{name: out, type: console, path: "{tmp}/out.ndjson"}}
""")
        agent = subprocess.Popen([binary, "run", "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                        return r.read().decode()
                except OSError:
                    if agent.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the agent did not serve /metrics: " + agent.stderr.read().decode())
                    time.sleep(0.2)
        finally:
            agent.terminate()
            agent.wait(timeout=30)


def exported(metrics_text):
    """{metric name: {label: set of values}} of a Prometheus text exposition."""
    names = {}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, matchers = selectors(line.split(" ")[0] if "{" not in line else line[:line.rindex("}") + 1])[0]
        labels = names.setdefault(name, {})
        for label, _, value in matchers:
            labels.setdefault(label, set()).add(value)
    return names


def problems(exprs, names):
    """What the expressions name that the agent does not export: a list of sentences."""
    found = []
    for where, expr in exprs:
        for metric, matchers in selectors(expr):
            if metric is None or metric in EXTERNAL_METRICS:
                continue
            if metric not in names:
                found.append(f"{where}: the agent exports no metric {metric}")
                continue
            for label, op, value in matchers:
                if label in EXTERNAL_LABELS or label == "__name__":
                    continue
                if label not in names[metric]:
                    found.append(f"{where}: {metric} has no label {label}")
                    continue
                if label not in ENUMERATED_LABELS or op in ("!=", "!~") or "$" in value:
                    continue
                values = value.split("|") if op == "=~" else [value]
                for v in values:
                    if v not in names[metric][label]:
                        found.append(f"{where}: {metric}{{{label}}} is never {v!r}; "
                                     f"the agent exports {sorted(names[metric][label])}")
    return found


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
