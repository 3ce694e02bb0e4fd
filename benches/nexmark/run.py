#!/usr/bin/env python3
"""Runs the Nexmark queries on Sluice's embedded mini-cluster, and on Apache Flink's when
PyFlink (`pip install apache-flink==2.3.0`, Java 17) is installed, and prints a table.

For each query (benches/nexmark/queries/qN.sql, Flink's SQL as published) and each
parallelism: events/s, CPU-seconds of the `sluice run` process, events per CPU-second,
peak RSS, and a checksum of the results. A query's blackhole sink is replaced by a JSON
file sink, and the checksum is the count of result rows with the sum (mod 2^64) of a hash
of each row's canonical JSON, so it does not depend on the order of rows or files.
Updating queries (their results are changelogs) write Debezium JSON instead, in both
engines, and their checksum is that of the final table the changes leave. A query Sluice
cannot plan is listed with its error.

Flink reads the same events from the JSON files of `sluice nexmark generate` through its
`filesystem` connector, with the published DDL and views (ddl_flink.sql), so both engines
see exactly the same input; the table shows its figures beside Sluice's, the ratio of
events per CPU-second, and whether the checksums agree. Flink's figures include parsing
JSON and starting its mini-cluster (several seconds), Sluice's include generating events.

With --kill, each query instead runs twice: once undisturbed on the embedded cluster, and
once on a cluster of processes (a jobmanager, two task managers) with checkpoints every
10 s, its sources paced to last about 20 s, where one task manager is killed with SIGKILL
after the first completed checkpoint and replaced; the table shows the checkpoints, the
restarts and whether the two checksums agree.

    benches/nexmark/run.sh [--events N] [--queries q0,q1,...] [--parallelism 1,2] [--kill]
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
# stream, a regular join feeding an aggregate): they write Debezium JSON.
UPDATING = {"q4", "q5", "q9", "q15", "q16", "q17", "q18", "q19"}
# The unique key of an updating query's results. Flink may send a sink only the new row of
# an update (no retraction of the old one), so changes are folded per key: a row replaces
# its key's row. q5 has none: Flink's results are final rows (a window join), Sluice's are
# retracted and replaced (its MAX over the windows' counts is a regular aggregate).
RESULT_KEYS = {
    "q4": ("id",),
    "q9": ("id",),
    "q15": ("day",),
    "q16": ("channel", "day"),
    "q17": ("auction", "day"),
    "q18": ("bidder", "auction"),
    "q19": ("auction", "rank_number"),
}
# Queries whose results depend on the order rows arrive in when ORDER BY values tie (q18
# keeps each bidder's and auction's last bid by time, and many bids share a millisecond):
# the engines agree only when both read the events in order, at parallelism 1.
ORDER_DEPENDENT = {"q18", "q19"}
# Queries whose results depend on processing time or on the wall clock.
NONDETERMINISTIC = {"q12"}


def sluice_binary():
    if os.environ.get("SLUICE_BIN"):
        return Path(os.environ["SLUICE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ["release", "debug"]:
        if (target / profile / "sluice").exists():
            return target / profile / "sluice"
    sys.exit("no sluice binary: run `cargo build --release` first")


def sluice_ddl(events, tps, paced=False):
    """The tables' DDL; `paced` sources emit at the event-time rate instead of at once."""
    ddl = (HERE / "ddl_sluice.sql").read_text()
    if paced:
        ddl = ddl.replace("'connector' = 'nexmark',", "'connector' = 'nexmark',\n    'max-emit-speed' = 'false',")
    return ddl.replace("${EVENTS_NUM}", str(events)).replace("${TPS}", str(tps))


def query_sql(name, workdir, side_input):
    """The query's SQL, its blackhole sink turned into a JSON file sink under `workdir` unless
    it is updating; returns (sql, output directory or None)."""
    sql = (HERE / "queries" / f"{name}.sql").read_text()
    sql = sql.replace("${FLINK_HOME}/data/side_input.txt", str(side_input))
    if "'connector' = 'blackhole'" not in sql:
        return sql, None
    out = workdir / f"{name}-out"
    form = "debezium-json" if name in UPDATING else "json"
    sink = f"'connector' = 'filesystem',\n  'path' = '{out}',\n  'format' = '{form}'"
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


def natural(path):
    """A sort key for part file names that orders their numbers as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def checksum(out, key=None):
    """(rows, sum of row hashes mod 2^64) of the committed JSON lines under `out`. Debezium
    JSON changes are folded into the final table first: per `key` (column names), a row
    replaces its key's row and a deletion removes it; without a key a deletion takes out one
    equal row."""
    if out is None or not out.exists():
        return None
    rows, by_key = {}, {}
    files = sorted((p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")), key=natural)
    for path in files:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            delete = False
            if isinstance(record, dict) and set(record) == {"before", "after", "op"}:
                delete = record["op"] == "d"
                record = record["before"] if delete else record["after"]
            text = json.dumps(canonical(record), sort_keys=True, separators=(",", ":"))
            if key:
                k = tuple(json.dumps(canonical(record.get(c))) for c in key)
                if not delete:
                    by_key[k] = text
                elif by_key.get(k) == text:
                    del by_key[k]
            else:
                rows[text] = rows.get(text, 0) + (-1 if delete else 1)
    for text in by_key.values():
        rows[text] = rows.get(text, 0) + 1
    count, total = 0, 0
    for text, times in rows.items():
        if times < 0:
            return f"invalid: a retraction of a row never added ({text[:80]})"
        digest = hashlib.sha256(text.encode()).digest()
        total = (total + times * int.from_bytes(digest[:8], "little")) % (1 << 64)
        count += times
    return f"{count}:{total:016x}"


def measure(command, timeout=None):
    """Runs `command` and returns (ok, seconds, cpu seconds, peak RSS MiB, output): the CPU
    time of the process and its children, and the peak resident memory of the process as
    its VmHWM, read while it runs (the rusage of a child counts the memory of this runner
    at the fork). After `timeout` seconds the process and its children are killed."""
    import threading
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    peak, done = [0.0], threading.Event()
    if timeout:
        def stop():
            if not done.wait(timeout):
                os.killpg(process.pid, signal.SIGKILL)
                print(f"(killed after {timeout} s)", file=sys.stderr)
        threading.Thread(target=stop, daemon=True).start()

    def watch():
        while not done.is_set():
            try:
                for line in open(f"/proc/{process.pid}/status"):
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    watcher.join()
    seconds = time.monotonic() - started
    cpu = usage.ru_utime + usage.ru_stime
    return os.waitstatus_to_exitcode(status) == 0, seconds, cpu, peak[0], output


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
    # Flink 2 no longer reads the legacy option keys q13's side-input table is declared with.
    for legacy, now in [("connector.type", "connector"), ("connector.path", "path"), ("format.type", "format")]:
        sql = sql.replace(f"'{legacy}'", f"'{now}'")
    return ddl + "\n" + sql, out


def figures(events, result):
    ok, seconds, cpu, rss, output = result
    seconds = job_seconds(output, seconds)
    jvm = re.search(r"JVM cpu=([0-9.]+) rss=([0-9.]+)", output)
    if jvm:  # Flink: the JVM's CPU time and memory, which the driver process does not wait for
        cpu, rss = cpu + float(jvm.group(1)), float(jvm.group(2))
    return {"rate": events / seconds, "cpu": cpu, "per_cpu": events / max(cpu, 1e-9), "rss": rss}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessCluster:
    """A jobmanager and task managers as processes of `binary`, logging under `workdir`."""

    def __init__(self, binary, workdir, taskmanagers, slots):
        self.binary, self.workdir, self.slots = binary, workdir, slots
        self.address = f"127.0.0.1:{free_port()}"
        self.processes = []
        self.jobmanager = self.spawn("jobmanager", ["jobmanager", "--rpc-address", self.address,
                                                    "--rest-address", "off",
                                                    "--checkpoint-dir", str(workdir / "checkpoints")])
        deadline = time.monotonic() + 20
        while self.cli(["list"]).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the jobmanager did not start: " + self.logs())
            time.sleep(0.1)
        self.taskmanagers = [self.add_taskmanager() for _ in range(taskmanagers)]

    def spawn(self, name, args):
        log = open(self.workdir / f"{name}-{len(self.processes)}.log", "w")
        process = subprocess.Popen([str(self.binary)] + args, stdout=subprocess.DEVNULL, stderr=log,
                                   env=dict(os.environ, RUST_LOG="info"))
        self.processes.append(process)
        return process

    def add_taskmanager(self):
        return self.spawn("taskmanager", ["taskmanager", "--jobmanager", self.address, "--slots", str(self.slots),
                                          "--bind", "127.0.0.1:0"])

    def cli(self, args):
        return subprocess.run([str(self.binary)] + args + ["--jobmanager", self.address], capture_output=True,
                              text=True)

    def status(self, job):
        out = self.cli(["status", job, "--json"])
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def logs(self):
        return "".join(f"--- {p.name} ---\n" + p.read_text()[-2000:] for p in sorted(self.workdir.glob("*.log")))

    def stop(self):
        for process in self.processes:
            process.kill()
            process.wait()


def killed_run(binary, script, parallelism, workdir, timeout=600):
    """Runs `script` on a process cluster with checkpoints every 10 s, kills one task manager
    after the first completed checkpoint and starts another; returns (final state,
    checkpoints completed, restarts, error text)."""
    cluster = ProcessCluster(binary, workdir, taskmanagers=2, slots=parallelism)
    try:
        out = cluster.cli(["submit", str(script), "-p", str(parallelism), "--checkpoint-interval", "10s"])
        if out.returncode != 0:
            return "FAILED", 0, 0, first_error(out.stderr + out.stdout)
        job = out.stdout.strip().splitlines()[-1].strip()
        killed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = cluster.status(job)
            state = status.get("state")
            completed = (status.get("checkpoints") or {}).get("completed", 0)
            if state in ("FINISHED", "FAILED", "CANCELED"):
                return state, completed, status.get("restarts", 0), "" if killed else "finished before the kill"
            if not killed and state == "RUNNING" and completed >= 1:
                victim = cluster.taskmanagers.pop(0)
                victim.kill()
                victim.wait()
                cluster.taskmanagers.append(cluster.add_taskmanager())
                killed = True
            time.sleep(0.2)
        return "TIMEOUT", 0, 0, "did not finish in time"
    finally:
        cluster.stop()


def kill_mode(binary, args, queries, parallelisms):
    """--kill: each query undisturbed, then with checkpoints and a task manager kill."""
    tps = max(1, args.events // 20)
    print(f"Nexmark on Sluice with a task manager kill: {args.events:,} events paced at {tps:,}/s "
          f"(about 20 s), checkpoints every 10 s")
    columns = ["query", "p", "state", "checkpoints", "restarts", "checksum undisturbed", "checksum with a kill",
               "same"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns), flush=True)
    with tempfile.TemporaryDirectory(prefix="nexmark-kill-") as tmp:
        workdir = Path(tmp)
        side_input = workdir / "side_input.txt"
        side_input.write_text("".join(f"{i},{i}\n" for i in range(10_000)))
        for name in queries:
            for parallelism in parallelisms:
                run_dir = workdir / f"{name}-p{parallelism}"
                (run_dir / "plain").mkdir(parents=True)
                (run_dir / "killed").mkdir()
                sql, out = query_sql(name, run_dir / "plain", side_input)
                plain = run_dir / "plain" / "job.sql"
                plain.write_text(sluice_ddl(args.events, tps) + "\n" + sql)
                result = measure([str(binary), "run", str(plain), "-p", str(parallelism)])
                if not result[0]:
                    print(f"| {name} | {parallelism} | cannot run: {first_error(result[4])} |", flush=True)
                    break
                ksql, kout = query_sql(name, run_dir / "killed", side_input)
                killed = run_dir / "killed" / "job.sql"
                killed.write_text(sluice_ddl(args.events, tps, paced=True) + "\n" + ksql)
                state, checkpoints, restarts, error = killed_run(binary, killed, parallelism, run_dir / "killed")
                expected, got = checksum(out, RESULT_KEYS.get(name)), checksum(kout, RESULT_KEYS.get(name))
                if name in NONDETERMINISTIC or (name in ORDER_DEPENDENT and parallelism > 1):
                    same = "n/a"
                else:
                    same = "equal" if state == "FINISHED" and expected == got else "DIFFER"
                print(f"| {name} | {parallelism} | {state}{' (' + error + ')' if error else ''} | {checkpoints} | "
                      f"{restarts} | {expected} | {got} | {same} |", flush=True)
                shutil.rmtree(run_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=int(os.environ.get("NEXMARK_EVENTS", 1_000_000)))
    parser.add_argument("--tps", type=int, default=10_000_000, help="event-time rate (first-event.rate)")
    parser.add_argument("--queries", default=",".join(ALL_QUERIES))
    parser.add_argument("--parallelism", default="1,2")
    parser.add_argument("--no-flink", action="store_true", help="run Sluice only")
    parser.add_argument("--flink-timeout", type=int, default=300, help="seconds a Flink job may take")
    parser.add_argument("--kill", action="store_true",
                        help="check each query's result through checkpoints and a task manager kill")
    args = parser.parse_args()
    flink = not args.no_flink and flink_available()

    binary = sluice_binary()
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    parallelisms = [int(p) for p in args.parallelism.split(",")]
    if args.kill:
        return kill_mode(binary, args, queries, parallelisms)
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
                [str(binary), "nexmark", "generate", "--events", str(args.events), "--files", "1",
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
                digest = checksum(out, RESULT_KEYS.get(name)) or "-"
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
                                             str(flink_dir / "job.sql"), str(parallelism)], args.flink_timeout)
                    if theirs_result[0]:
                        theirs = figures(args.events, theirs_result)
                        their_digest = checksum(fout, RESULT_KEYS.get(name))
                        if their_digest is None or name in NONDETERMINISTIC:
                            same = "n/a"
                        elif name in ORDER_DEPENDENT and parallelism > 1:
                            same = "n/a (ties: arrival order)"
                        else:
                            same = "equal" if their_digest == digest else f"DIFFER (Flink {their_digest})"
                        cells += [f"{theirs['rate']:,.0f}", f"{theirs['cpu']:.1f}", f"{theirs['per_cpu']:,.0f}",
                                  f"{theirs['rss']:.0f}", f"{ours['per_cpu'] / theirs['per_cpu']:.2f}", same]
                    elif theirs_result[1] >= args.flink_timeout:
                        cells += [f"Flink did not finish in {args.flink_timeout} s", "", "", "", "", ""]
                    else:
                        cells += [f"Flink failed: {first_error(theirs_result[4])}", "", "", "", "", ""]
                print("| " + " | ".join(cells) + " |", flush=True)
                shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main()
