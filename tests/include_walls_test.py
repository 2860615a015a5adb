#!/usr/bin/env python3
"""The walls between the product's folders, checked on every #include "..." (as Chromium's checkdeps).

    include_walls_test.py SOURCE_DIR

Reads each .h and .cc of base/, circuit/, config/, sinks/ and agent/ and fails on an include that crosses
a wall, naming the file, the line and the rule. The same walls are in the build (one library per folder,
each seeing only the headers of what it links); this names the rule where the compiler only says that a
file was not found. docs/architecture.md draws them.
"""

import pathlib
import re
import sys

# The folders of the product, each with the folders its files may include, and why.
RULES = {
    "base": ({"base"}, "base/ is the shared vocabulary: the standard library and spdlog only"),
    "circuit": ({"circuit"}, "circuit/ is the breaker, pure: the standard library only"),
    "config": ({"config", "base"}, "config/ stands on base/ only"),
    "sinks": ({"sinks", "config", "base"}, "sinks/ stand on base/ and config/"),
    "agent": ({"agent", "sinks", "config", "circuit", "base"}, "agent/ may use every folder of the product"),
}

# The table of sink types (sinks/types.h) and the keys of each type (sinks/<type>/<type>_config.h) compile
# into config's library: config reads these headers of sinks/, and they read nothing else of sinks/.
SETTINGS_HEADER = re.compile(r"^sinks/(types|record_template|([^/]+)/\2_config)\.h$")
SETTINGS_SOURCE = re.compile(r"^sinks/(types|record_template|([^/]+)/\2_config)\.(h|cc)$")

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')

# The rooms of agent/ compile into one library (the pipeline wires the inputs and the runners, which share
# its queue): these walls stand in the check alone. Records go from inputs to runners through the queue,
# the acks and the deliveries, which include nothing else of agent/; an input and a runner know each
# other only through them. The files at agent/'s root (main, daemon) may include every room.
RECORD_WAY = {"agent/pipeline/queue.h", "agent/pipeline/ack.h", "agent/pipeline/delivery.h"}
RECORD_WAY_SOURCE = re.compile(r"^agent/pipeline/(queue|ack|delivery)\.(h|cc)$")
ROOMS = {
    "inputs": ({"inputs"}, {"agent/pipeline/queue.h", "agent/pipeline/ack.h"},
               "agent/inputs/ hands records to the queue: of the other rooms it includes only "
               "agent/pipeline/queue.h and ack.h"),
    "runner": ({"runner"}, RECORD_WAY,
               "agent/runner/ takes deliveries: of the other rooms it includes only "
               "agent/pipeline/queue.h, ack.h and delivery.h"),
    "pipeline": ({"pipeline", "inputs", "runner"}, set(),
                 "agent/pipeline/ wires inputs and runners: it includes neither admin/ nor agent/'s root"),
    "admin": ({"admin", "pipeline", "inputs", "runner"}, set(),
              "agent/admin/ reads the pipeline's parts: it includes nothing of agent/'s root (main, daemon)"),
}


def room(path):
    """The room of agent/ that `path` (agent/...) is in, or "" for agent/'s root."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else ""


def room_violation(path, target):
    """The wall between the rooms of agent/ that `path` breaks by including `target`, or None."""
    if RECORD_WAY_SOURCE.match(path):
        if target in RECORD_WAY or not target.startswith("agent/"):
            return None
        return "the queue, acks and deliveries carry records between rooms: of agent/ they include only each other"
    here = room(path)
    if not here or not target.startswith("agent/"):
        return None
    there = room(target)
    rooms, headers, why = ROOMS[here]
    if there in rooms or target in headers:
        return None
    return why


def violation(path, target):
    """The rule `path` breaks by including `target`, or None."""
    folder = path.split("/", 1)[0]
    to = target.split("/", 1)[0]
    if to not in RULES:
        return f"{folder}/ includes only headers of the product folders ({', '.join(RULES)}), not {to}/"
    if SETTINGS_SOURCE.match(path):
        if to in ("base", "config") or SETTINGS_HEADER.match(target):
            return None
        return "the keys of a sink type (compiled into config) include base/, config/ and the other sink settings only"
    allowed, why = RULES[folder]
    if to in allowed:
        return room_violation(path, target) if folder == "agent" else None
    if folder == "config" and SETTINGS_HEADER.match(target):
        return None
    return why


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    failures = 0
    checked = 0
    for folder in RULES:
        for file in sorted((root / folder).rglob("*")):
            if file.suffix not in (".h", ".cc") or not file.is_file():
                continue
            path = file.relative_to(root).as_posix()
            for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                checked += 1
                rule = violation(path, match.group(1))
                if rule:
                    failures += 1
                    print(f'{path}:{number}: #include "{match.group(1)}" crosses a wall: {rule}')
    if failures:
        print(f"{failures} include(s) cross a wall (of {checked} checked); see docs/architecture.md")
        return 1
    print(f"{checked} includes checked, none crosses a wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
