#!/usr/bin/env python3
"""Runs one SQL script on Apache Flink's local mini-cluster (PyFlink from PyPI) in streaming
mode and prints `FINISHED in <seconds>s` for the job itself (JVM start-up left out), and
`JVM cpu=<seconds> rss=<MiB>`: the CPU time and peak memory of the JVM PyFlink started
(it is not this process's waited-for child, so the caller cannot count it).

    python3 flink_job.py SCRIPT PARALLELISM
"""

import os
import sys
import time

from pyflink.table import EnvironmentSettings, TableEnvironment


def statements(script):
    """The script's statements, split at semicolons that end a line."""
    text = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    parts, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            parts.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "\n".join(current).strip():
        parts.append("\n".join(current).strip())
    return [p for p in parts if p]


def descendants():
    """The pids of this process's descendants, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def jvm_usage():
    """CPU seconds and peak resident MiB of the descendant processes (the JVM)."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, rss = 0.0, 0.0
    for pid in descendants():
        try:
            stat = open(f"/proc/{pid}/stat").read()
            fields = stat[stat.rindex(")") + 2:].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    rss = max(rss, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return cpu, rss


def main():
    script, parallelism = open(sys.argv[1]).read(), sys.argv[2]
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", parallelism)
    # The file sink commits what it wrote at checkpoints, and a last time when the
    # bounded input ends.
    config.set("execution.checkpointing.interval", "10 s")
    config.set("pipeline.name", sys.argv[1])
    inserts = []
    for statement in statements(script):
        if statement.upper().lstrip().startswith("INSERT"):
            inserts.append(statement)
        else:
            env.execute_sql(statement)
    started = time.monotonic()
    for insert in inserts:
        env.execute_sql(insert).wait()
    print(f"job FINISHED in {time.monotonic() - started:.2f}s", file=sys.stderr)
    cpu, rss = jvm_usage()
    print(f"JVM cpu={cpu:.2f} rss={rss:.0f}", file=sys.stderr)


if __name__ == "__main__":
    main()
