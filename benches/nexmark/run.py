#!/usr/bin/env python3
"""Runs the Nexmark queries on Sluice's embedded mini-cluster, and on Apache Flink's when
PyFlink (`pip install apache-flink==2.3.0`, Java 17) is installed, and prints a table.

For each query (benches/nexmark/queries/qN.sql, Flink's SQL as published) and each
parallelism: events/s, CPU-seconds of the `sluice run` process, events per CPU-second,
peak RSS, and a checksum of the results. A query's blackhole sink is replaced by a JSON
file sink, and the checksum is the count of result rows with the sum (mod 2^64) of a hash
of each row's canonical JSON, so it does not depend on the order of rows or files.
Updating queries (their results are changelogs a file sink refuses) run into the
blackhole sink and show no checksum. A query Sluice cannot plan is listed with its error.

Flink reads the same events from the JSON files of `sluice nexmark generate` through its
`filesystem` connector, with the published DDL and views (ddl_flink.sql), so both engines
see exactly the same input; the table shows its figures beside Sluice's, the ratio of
events per CPU-second, and whether the checksums agree. Flink's figures include parsing
JSON and starting its mini-cluster (several seconds), Sluice's include generating events.

    benches/nexmark/run.sh [--events N] [--queries q0,q1,...] [--parallelism 1,2]
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ALL_QUERIES = [f"q{i}" for i in [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]]
# Queries whose results are updated (GROUP BY without windows, Top-N over a join or a
# stream, a regular join feeding an aggregate): they run into the blackhole sink.
UPDATING = {"q4", "q9", "q15", "q16", "q17", "q18", "q19"}
# Queries whose results depend on processing time or on the wall clock.
NONDETERMINISTIC = {"q12", "q13"}


def sluice_binary():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ["release", "debug"]:
        if (target / profile / "sluice").exists():
            return target / profile / "sluice"
    sys.exit("no sluice binary: run `cargo build --release` first")


def sluice_ddl(events, tps):
    ddl = (HERE / "ddl_sluice.sql").read_text()
    return ddl.replace("${EVENTS_NUM}", str(events)).replace("${TPS}", str(tps))


def query_sql(name, workdir, side_input):
    """The query's SQL, its blackhole sink turned into a JSON file sink under `workdir` unless
    it is updating; returns (sql, output directory or None)."""
    sql = (HERE / "queries" / f"{name}.sql").read_text()
    sql = sql.replace("${FLINK_HOME}/data/side_input.txt", str(side_input))
    if name in UPDATING or "'connector' = 'blackhole'" not in sql:
        return sql, None
    out = workdir / f"{name}-out"
    sink = f"'connector' = 'filesystem',\n  'path' = '{out}',\n  'format' = 'json'"
    return sql.replace("'connector' = 'blackhole'", sink, 1), out


TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?$")
DECIMAL = re.compile(r"^-?\d+\.\d+$")


def canonical(value):
    """A result value written the same way whichever engine wrote it: timestamps as
    `YYYY-MM-DD HH:MM:SS.sss`, decimals and floats rounded to six places."""
    if isinstance(value, str):
        match = TIMESTAMP.match(value)
        if match:
            fraction = (match.group(3) or ".000")[1:].ljust(3, "0")[:3]
            return f"{match.group(1)} {match.group(2)}.{fraction}"
        if DECIMAL.match(value):
            return canonical(float(value))
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def checksum(out):
    """(rows, sum of row hashes mod 2^64) of the committed JSON lines under `out`."""
    rows, total = 0, 0
    if out is None or not out.exists():
        return None
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            text = json.dumps(canonical(json.loads(line)), sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256(text.encode()).digest()
            total = (total + int.from_bytes(digest[:8], "little")) % (1 << 64)
            rows += 1
    return f"{rows}:{total:016x}"


def measure(command):
    """Runs `command` and returns (ok, seconds, cpu seconds, peak RSS MiB, output); the CPU
    time and memory are the process's and its children's."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    cpu = usage.ru_utime + usage.ru_stime
    rss_mib = usage.ru_maxrss / 1024
    return os.waitstatus_to_exitcode(status) == 0, seconds, cpu, rss_mib, output


def job_seconds(output, fallback):
    """The job's own time as `sluice run` reports it (start-up left out), if it does."""
    match = re.search(r" FINISHED in ([0-9.]+)s", output)
    return float(match.group(1)) if match else fallback


def first_error(output):
    lines = [line for line in output.splitlines() if "error" in line.lower()]
    return (lines[0] if lines else output.strip().splitlines()[-1] if output.strip() else "failed")[:160]


def flink_available():
    return subprocess.run([sys.executable, "-c", "import pyflink"], capture_output=True).returncode == 0


def flink_sql(name, workdir, events_dir, side_input):
    """Flink's DDL over the generated files and the query, sink as for Sluice."""
    ddl = (HERE / "ddl_flink.sql").read_text().replace("${EVENTS_DIR}", str(events_dir))
    sql, out = query_sql(name, workdir, side_input)
    return ddl + "\n" + sql, out


def figures(events, result):
    ok, seconds, cpu, rss, output = result
    seconds = job_seconds(output, seconds)
    jvm = re.search(r"JVM cpu=([0-9.]+) rss=([0-9.]+)", output)
    if jvm:  # Flink: the JVM's CPU time and memory, which the driver process does not wait for
        cpu, rss = cpu + float(jvm.group(1)), float(jvm.group(2))
    return {"rate": events / seconds, "cpu": cpu, "per_cpu": events / max(cpu, 1e-9), "rss": rss}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=int(os.environ.get("NEXMARK_EVENTS", 1_000_000)))
    parser.add_argument("--tps", type=int, default=10_000_000, help="event-time rate (first-event.rate)")
    parser.add_argument("--queries", default=",".join(ALL_QUERIES))
    parser.add_argument("--parallelism", default="1,2")
    parser.add_argument("--no-flink", action="store_true", help="run Sluice only")
    args = parser.parse_args()
    flink = not args.no_flink and flink_available()

    binary = sluice_binary()
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    parallelisms = [int(p) for p in args.parallelism.split(",")]
    load = os.getloadavg()
    print(f"Nexmark on Sluice: {args.events:,} events, event-time rate {args.tps:,}/s, "
          f"{os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before the run")
    columns = ["query", "p", "events/s", "CPU-s", "events/CPU-s", "peak RSS MiB", "checksum"]
    if flink:
        columns += ["Flink events/s", "Flink CPU-s", "Flink events/CPU-s", "Flink RSS MiB",
                    "events/CPU-s vs Flink", "checksums"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns), flush=True)
    with tempfile.TemporaryDirectory(prefix="nexmark-") as tmp:
        workdir = Path(tmp)
        side_input = workdir / "side_input.txt"
        side_input.write_text("".join(f"{i},{i}\n" for i in range(10_000)))
        events_dir = workdir / "events"
        if flink:
            subprocess.run(
                [str(binary), "nexmark", "generate", "--events", str(args.events), "--files", "4",
                 "--out", str(events_dir), "--option", f"first-event.rate={args.tps}"],
                check=True, stdout=subprocess.DEVNULL,
            )
        for name in queries:
            for parallelism in parallelisms:
                run_dir = workdir / f"{name}-p{parallelism}"
                run_dir.mkdir()
                sql, out = query_sql(name, run_dir, side_input)
                script = run_dir / "job.sql"
                script.write_text(sluice_ddl(args.events, args.tps) + "\n" + sql)
                result = measure([str(binary), "run", str(script), "-p", str(parallelism)])
                if not result[0]:
                    print(f"| {name} | {parallelism} | cannot run: {first_error(result[4])} |", flush=True)
                    shutil.rmtree(run_dir, ignore_errors=True)
                    break
                ours = figures(args.events, result)
                digest = checksum(out) or ("(updating)" if name in UPDATING else "-")
                if name in NONDETERMINISTIC:
                    digest += " (nondeterministic)"
                cells = [name, str(parallelism), f"{ours['rate']:,.0f}", f"{ours['cpu']:.1f}",
                         f"{ours['per_cpu']:,.0f}", f"{ours['rss']:.0f}", digest]
                if flink:
                    flink_dir = run_dir / "flink"
                    flink_dir.mkdir()
                    fsql, fout = flink_sql(name, flink_dir, events_dir, side_input)
                    (flink_dir / "job.sql").write_text(fsql)
                    theirs_result = measure([sys.executable, str(HERE / "flink_job.py"),
                                             str(flink_dir / "job.sql"), str(parallelism)])
                    if theirs_result[0]:
                        theirs = figures(args.events, theirs_result)
                        their_digest = checksum(fout)
                        same = "n/a" if their_digest is None or name in NONDETERMINISTIC else (
                            "equal" if their_digest == checksum(out) else f"DIFFER (Flink {their_digest})")
                        cells += [f"{theirs['rate']:,.0f}", f"{theirs['cpu']:.1f}", f"{theirs['per_cpu']:,.0f}",
                                  f"{theirs['rss']:.0f}", f"{ours['per_cpu'] / theirs['per_cpu']:.2f}", same]
                    else:
                        cells += [f"Flink failed: {first_error(theirs_result[4])}", "", "", "", "", ""]
                print("| " + " | ".join(cells) + " |", flush=True)
                shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main()
