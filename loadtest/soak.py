#!/usr/bin/env python3
"""The soak scenario's helpers for loadtest/run-local (docs/load-tests.md, "Soak").

    soak.py failing-endpoint PORT
        A tenant endpoint that is down: answers every POST 503 (no
        Retry-After), counts them, and answers GET /stats with
        {"requests": n}. Runs until SIGTERM.

    soak.py sample PID HEALTH_URL INTERVAL OUT [HEADER ...]
        Every INTERVAL seconds, until SIGTERM or until PID exits, appends one
        CSV row to OUT: the gateway's RSS, open file descriptors, threads,
        established TCP connections, and its bus counts from HEALTH_URL
        (GET, with each HEADER "Name: value"). A health check that does not
        answer within 5 s leaves the bus columns empty (the check counts it).

The checks that read the samples (`check`) are imported by run-local's
report. Only the standard library: run-local needs nothing but python3.
"""

import csv
import http.server
import json
import os
import signal
import sys
import time
import urllib.request

# What "flat" means (docs/load-tests.md, "What flat means"). The run is cut
# in thirds: the first is warm-up (allocator arenas, connection pools, and
# the gateway's bounded stores filling: the failing tenants' events waiting
# to be received again, up to about 2 minutes with 8 receives, and the
# idempotency keys, about 50,000 requests' worth), the second sets the
# level, and the last third's peak must stay within the second's peak
# times (1 + tolerance) plus slack. Peaks, not means, since each of these
# saws up and down; a leak makes every later peak higher.
BOUNDS = {
    # column: (tolerance, slack)
    # 5% + 4 MiB of the 10-minute run's ~115 MiB, over the ~200,000
    # requests between the two peaks: a leak of about 50 bytes a request.
    "rss_kib": (0.05, 4 * 1024),
    # The slack covers k6 adding VUs (each holds one keep-alive connection).
    "fds": (0.10, 32),
    # Plus one second of arrivals (`rate`): a sample may catch a backlog
    # of a moment's stall (the machine is shared), which is not growth.
    "held": (0.25, 0),
}
# A run shorter than this has its bounded stores still filling after its
# first third (run-local also lowers --max-receives to 3 for it): RSS may
# then grow by half plus 8 MiB, which still catches a leak of a few KiB a
# request but not a slow one. Only the full run measures flatness.
FULL_RUN_SECONDS = 450
SHORT_RSS_BOUND = (0.50, 8 * 1024)
COLUMNS = [
    "elapsed_s", "rss_kib", "fds", "threads", "tcp_established",
    "accepted", "delivered", "dead_lettered", "retrying", "in_flight", "queue_depth", "held",
]
BUS = ["accepted", "delivered", "dead_lettered", "retrying", "in_flight", "queue_depth"]


class _Stop:
    """Set by SIGTERM: the loops finish their current step and return."""

    stopped = False

    @classmethod
    def install(cls):
        def handler(_signum, _frame):
            cls.stopped = True
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def failing_endpoint(port):
    """Answers every POST 503, reading the body first so the connection is
    kept alive as a real server would; GET /stats counts them."""
    count = {"requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (the standard library's name)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            count["requests"] += 1
            self._answer(503, {"error": "this endpoint is down (soak test)"})

        def do_GET(self):  # noqa: N802
            self._answer(200, count) if self.path == "/stats" else self._answer(404, {})

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def _status_fields(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


def _established(pid):
    """The process's established TCP connections: its socket inodes that
    /proc/net/tcp{,6} lists in state 01 (in or out, loopback included)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "01" and cols[9] in inodes:
                        count += 1
        except OSError:
            pass
    return count


def _health(url, headers):
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["bus"]


def sample(pid, url, interval, out, header_lines):
    headers = dict(h.split(":", 1) for h in header_lines)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    _Stop.install()
    start = time.monotonic()
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        next_at = start
        while not _Stop.stopped:
            try:
                rss, threads = _status_fields(pid)
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                tcp = _established(pid)
            except OSError:
                return  # the gateway exited
            try:
                bus = _health(url, headers)
                counts = [bus[k] for k in BUS]
                counts.append(bus["queue_depth"] + bus["in_flight"] + bus["retrying"])
            except Exception:  # noqa: BLE001 (any failure is a missed sample)
                counts = [""] * (len(BUS) + 1)
            writer.writerow([round(time.monotonic() - start, 1), rss, fds, threads, tcp, *counts])
            f.flush()
            next_at += interval
            while not _Stop.stopped and time.monotonic() < next_at:
                time.sleep(min(0.2, max(0.0, next_at - time.monotonic())))


def read_samples(path):
    """The samples as dicts of ints (None where the health check missed)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {k: (None if v == "" else float(v) if k == "elapsed_s" else int(v)) for k, v in row.items()}
        for row in rows
    ]


def over_time(samples, every):
    """About one sample per `every` seconds (the nearest at or after each
    mark), the first and the last included: the table run-local prints."""
    if not samples:
        return []
    picked, mark = [], 0.0
    for s in samples:
        if s["elapsed_s"] >= mark:
            picked.append(s)
            mark = (int(s["elapsed_s"] // every) + 1) * every
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return picked


def bounds(duration, rate):
    """The (tolerance, slack) of each judged column for a run this long
    at `rate` submissions a second."""
    judged = {**BOUNDS, "held": (BOUNDS["held"][0], BOUNDS["held"][1] + rate)}
    if duration < FULL_RUN_SECONDS:
        judged["rss_kib"] = SHORT_RSS_BOUND
    return judged


def flatness(samples, duration, rate):
    """For each bounded column: (name, middle third's peak, last third's
    peak, allowed, ok). Samples are placed in thirds of `duration` (the
    load's length) by their time; samples after it (none normally) count
    in the last third."""
    third = duration / 3
    middle = [s for s in samples if third <= s["elapsed_s"] < 2 * third]
    last = [s for s in samples if s["elapsed_s"] >= 2 * third]
    results = []
    for name, (tolerance, slack) in bounds(duration, rate).items():
        mid = [s[name] for s in middle if s[name] is not None]
        end = [s[name] for s in last if s[name] is not None]
        if not mid or not end:
            results.append((name, None, None, None, False))
            continue
        allowed = max(mid) * (1 + tolerance) + slack
        results.append((name, max(mid), max(end), allowed, max(end) <= allowed))
    return results


def table(samples, every):
    """The samples over time as Markdown rows, for docs/performance.md."""
    lines = [
        "| time | RSS | open fds | TCP conns | accepted | delivered | dead-lettered | retrying | in flight | queue depth |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in over_time(samples, every):
        t = int(s["elapsed_s"])
        cells = [f"{t // 60}:{t % 60:02d}", f"{s['rss_kib'] / 1024:.1f} MiB", s["fds"], s["tcp_established"]]
        cells += ["—" if s[k] is None else f"{s[k]:,}" for k in BUS]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def dead_letters(path):
    """The dead-letter file's records: (submission_id, tenant_id, reason)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [(r.get("submission_id"), r.get("tenant_id"), r.get("reason"))
                for r in (json.loads(line) for line in f if line.strip())]


def check(*, samples, duration, rate, metrics, final, by_tenant, letters, capacity):
    """The soak's own checks; returns (lines to print, failures)."""
    out, failures = [], []
    accepted = {c: int(metrics.get(f"submissions_accepted{{class:{c}}}", {}).get("count", 0))
                for c in ("fast", "slow", "failing")}
    received = {c: sum(v["delivered"] for t, v in by_tenant.items() if t.startswith(f"{c}-"))
                for c in ("fast", "slow", "failing")}
    duplicates = sum(v["duplicates"] for v in by_tenant.values())
    ids = [i for i, _, _ in letters]
    lettered = {c: sum(1 for _, t, _ in letters if (t or "").startswith(f"{c}-"))
                for c in ("fast", "slow", "failing")}
    reasons = {}
    for _, _, r in letters:
        reasons[r] = reasons.get(r, 0) + 1
    out.append("accepted by class (k6): " + " · ".join(f"{c} {n:,}" for c, n in accepted.items()))
    why = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
    out.append(f"received by the endpoints: fast {received['fast']:,} · slow {received['slow']:,}; "
               f"dead letters {len(letters):,}" + (f" ({why})" if why else ""))
    total = sum(accepted.values())
    if final["accepted"] != total:
        failures.append(f"the gateway accepted {final['accepted']:,}, k6 saw {total:,} accepted")
    if final["accepted"] != final["delivered"] + final["dead_lettered"]:
        failures.append(f"lost: accepted {final['accepted']:,} ≠ delivered {final['delivered']:,} "
                        f"+ dead-lettered {final['dead_lettered']:,}")
    for c in ("fast", "slow"):
        if received[c] != accepted[c] or lettered[c]:
            failures.append(f"{c} tenants: {accepted[c]:,} accepted, {received[c]:,} received, "
                            f"{lettered[c]:,} dead-lettered (all must be received)")
    if received["failing"] or lettered["failing"] != accepted["failing"]:
        failures.append(f"failing tenants: {accepted['failing']:,} accepted, {lettered['failing']:,} "
                        f"dead-lettered, {received['failing']:,} received (all must be dead-lettered)")
    if len(set(ids)) != len(ids) or len(ids) != final["dead_lettered"]:
        failures.append(f"dead-letter file: {len(ids):,} records, {len(set(ids)):,} distinct IDs, "
                        f"the gateway counted {final['dead_lettered']:,}")
    if final["delivered"] != received["fast"] + received["slow"] or duplicates:
        failures.append(f"the gateway delivered {final['delivered']:,}, the endpoints received "
                        f"{received['fast'] + received['slow']:,} ({duplicates} duplicates)")

    missed = sum(1 for s in samples if s["accepted"] is None)
    out.append(f"samples: {len(samples)} ({missed} without an answer from the health check)")
    if len(samples) < 6:
        failures.append(f"only {len(samples)} samples: DURATION is too short to tell anything")
    if missed:
        failures.append(f"the health check did not answer {missed} of {len(samples)} samples within 5 s")
    peak = {k: max((s[k] for s in samples if s[k] is not None), default=0)
            for k in ("rss_kib", "fds", "held", "queue_depth", "in_flight", "retrying")}
    other = max((s["fds"] - s["tcp_established"] for s in samples), default=0)
    vus = int(metrics.get("vus_max", {}).get("max", metrics.get("vus_max", {}).get("value", 0)))
    out.append(f"peaks: RSS {peak['rss_kib'] / 1024:.1f} MiB · open fds {peak['fds']} ({other} not TCP "
               f"connections; k6 ran up to {vus} VUs, a connection each) · events held {peak['held']:,} "
               f"(queued {peak['queue_depth']:,}, in flight {peak['in_flight']}, retrying {peak['retrying']:,}) "
               f"of capacity {capacity:,}")
    if peak["held"] >= capacity:
        failures.append(f"the queue reached its capacity ({capacity:,}): not bounded by the load")
    out.append("flat (the last third's peak ≤ the middle third's × (1 + tolerance) + slack)"
               + ("" if duration >= FULL_RUN_SECONDS else
                  f"; a run under {FULL_RUN_SECONDS} s allows RSS +50% + 8 MiB (its stores are still filling)")
               + ":")
    shown = {"rss_kib": ("RSS", lambda v: f"{v / 1024:.1f} MiB"), "fds": ("open fds", lambda v: f"{v:,.0f}"),
             "held": ("events held", lambda v: f"{v:,.0f}")}
    for name, mid, end, allowed, ok in flatness(samples, duration, rate):
        label, fmt = shown[name]
        if mid is None:
            out.append(f"  {label}: no samples in the middle or last third")
            failures.append(f"{label}: no samples to compare")
            continue
        out.append(f"  {label:11} middle {fmt(mid)} · last {fmt(end)} · allowed {fmt(allowed)} · "
                   + ("flat" if ok else "GROWING"))
        if not ok:
            failures.append(f"{label} grew: the last third's peak {fmt(end)} > {fmt(allowed)} "
                            f"(the middle third's peak {fmt(mid)})")
    return out, failures


def main(argv):
    if len(argv) >= 2 and argv[0] == "failing-endpoint":
        failing_endpoint(int(argv[1]))
    elif len(argv) >= 5 and argv[0] == "sample":
        sample(int(argv[1]), argv[2], float(argv[3]), argv[4], argv[5:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
