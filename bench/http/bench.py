#!/usr/bin/env python3
"""netvantage http vs Prometheus blackbox_exporter, same machine, same local targets, same run.

Everything talks to 127.0.0.1 only: a local target server (crates/http/examples/bench_server.rs)
listening on many ports, netvantage checking N distinct URLs on it, and blackbox_exporter
driven through /probe at the same concurrency by an asyncio driver in this script.

Measured per tool and size: cycle completion time (one pass over all N endpoints), CPU seconds
per 1,000 checks (user+sys of the tool's process only, not of the server or the driver), peak
RSS; then the p50 latency error against a server that sleeps a known time.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_server(binary, ports):
    proc = subprocess.Popen([binary, str(ports)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, [int(p) for p in line.strip().split(",")]


def write_config(path, urls):
    with open(path, "w") as f:
        for i, url in enumerate(urls):
            f.write(f"- name: endpoint {i}\n  url: {url}\n")


def run_netvantage(nv, config, frequency, duration, concurrency, fmt, workdir, tag):
    """Runs netvantage to completion; returns its stdout, cycle times and rusage."""
    out_path = os.path.join(workdir, f"nv-{tag}.out")
    err_path = os.path.join(workdir, f"nv-{tag}.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            [nv, "-v", "--log-format", "json", "http", "-f", frequency, "-r", duration,
             "--concurrency", str(concurrency), "--format", fmt, config],
            stdout=out, stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    cycles = []
    with open(err_path) as f:
        for line in f:
            if '"cycle done"' in line:
                cycles.append(json.loads(line)["fields"]["elapsed_ms"] / 1e3)
    with open(out_path) as f:
        stdout = f.read()
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mib": usage.ru_maxrss / 1024,
        "cycles_s": cycles,
        "stdout": stdout,
    }


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_blackbox(binary, port, workdir):
    config = os.path.join(workdir, "blackbox.yml")
    with open(config, "w") as f:
        f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n"
                "    http:\n      preferred_ip_protocol: ip4\n")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            asyncio.run(probe_once(port, "/-/healthy"))
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("blackbox_exporter did not start")


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    headers = head.decode("latin-1").lower()
    m = re.search(r"content-length:\s*(\d+)", headers)
    if m:
        return await reader.readexactly(int(m.group(1)))
    body = b""
    while True:  # chunked
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return body
        body += chunk[:-2]


async def probe_once(port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    body = await read_response(reader)
    writer.close()
    return body


async def drive_blackbox(port, targets, concurrency):
    """Probes every target once through blackbox_exporter, `concurrency` in flight."""
    queue = asyncio.Queue()
    for t in targets:
        queue.put_nowait(t)
    results = []

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            try:
                target = queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            writer.write(f"GET /probe?module=http_2xx&target={target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            text = (await read_response(reader)).decode()
            ok = re.search(r"^probe_success (\S+)", text, re.M)
            duration = re.search(r"^probe_duration_seconds (\S+)", text, re.M)
            results.append((ok and float(ok.group(1)) == 1.0, float(duration.group(1)) if duration else None))
        writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
    return results


def blackbox_cycles(bb_bin, port, targets, concurrency, cycles, workdir):
    proc = start_blackbox(bb_bin, port, workdir)
    try:
        cpu0 = proc_cpu_s(proc.pid)
        times, ups, durations = [], 0, []
        for _ in range(cycles):
            t = time.monotonic()
            results = asyncio.run(drive_blackbox(port, targets, concurrency))
            times.append(time.monotonic() - t)
            ups += sum(1 for ok, _ in results if ok)
            durations += [d for _, d in results if d is not None]
        cpu = proc_cpu_s(proc.pid) - cpu0
        return {"cpu_s": cpu, "max_rss_mib": proc_hwm_mib(proc.pid), "cycles_s": times,
                "up": ups, "checks": cycles * len(targets), "durations": durations}
    finally:
        proc.terminate()
        proc.wait()


def summary_counts(stdout):
    m = re.search(r"^summary: (\d+) cycles, (\d+) checks$", stdout, re.M)
    up = re.search(r"^127\.0\.0\.1: \d+% available, (\d+) up", stdout, re.M)
    return int(m.group(1)), int(m.group(2)), int(up.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--netvantage", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--blackbox", default="prometheus-blackbox-exporter")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--server-ports", type=int, default=50)
    ap.add_argument("--sleep-ms", type=int, default=100)
    ap.add_argument("--latency-endpoints", type=int, default=5)
    ap.add_argument("--latency-cycles", type=int, default=40)
    ap.add_argument("--out", default="bench/out/http.json")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="nv-bench-http-")
    server, ports = start_server(args.server, args.server_ports)
    bb_port = 19115
    report = {"concurrency": args.concurrency, "cycles": args.cycles, "server_ports": len(ports), "sizes": []}
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/e/{i}" for i in range(n)]
            config = os.path.join(workdir, f"endpoints-{n}.yaml")
            write_config(config, urls)
            frequency = 15 if n > 1000 else 5
            nv = run_netvantage(args.netvantage, config, f"{frequency}s", f"{frequency * args.cycles}s",
                                args.concurrency, "text", workdir, str(n))
            cycles, checks, up = summary_counts(nv["stdout"])
            bb = blackbox_cycles(args.blackbox, bb_port, urls, args.concurrency, args.cycles, workdir)
            row = {
                "endpoints": n,
                "frequency_s": frequency,
                "netvantage": {"checks": checks, "up": up, "cycle_s": nv["cycles_s"],
                               "cpu_s_per_1000": 1000 * nv["cpu_s"] / checks,
                               "max_rss_mib": nv["max_rss_mib"], "exit": nv["exit"]},
                "blackbox": {"checks": bb["checks"], "up": bb["up"], "cycle_s": bb["cycles_s"],
                             "cpu_s_per_1000": 1000 * bb["cpu_s"] / bb["checks"],
                             "max_rss_mib": bb["max_rss_mib"]},
            }
            row["cpu_ratio_blackbox_over_netvantage"] = (
                row["blackbox"]["cpu_s_per_1000"] / row["netvantage"]["cpu_s_per_1000"])
            report["sizes"].append(row)
            print(json.dumps(row), flush=True)

        # Latency error against a server that sleeps a known time.
        m = args.latency_endpoints
        urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/sleep/{args.sleep_ms}?e={i}" for i in range(m)]
        config = os.path.join(workdir, "latency.yaml")
        write_config(config, urls)
        nv = run_netvantage(args.netvantage, config, "250ms", f"{args.latency_cycles * 0.25}s", args.concurrency,
                            "json", workdir, "latency")
        nv_lat = [json.loads(l)["latency_ms"] for l in nv["stdout"].splitlines() if l.strip()]
        bb = blackbox_cycles(args.blackbox, bb_port, urls, args.concurrency, args.latency_cycles, workdir)
        bb_lat = [d * 1e3 for d in bb["durations"]]
        # Reference: curl, one request at a time, against the same server: what the server's
        # own sleep overshoot and loopback cost add, with no concurrency at all.
        curl_lat = []
        for i in range(50):
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", urls[i % m]],
                                 capture_output=True, text=True, check=True).stdout
            curl_lat.append(float(out) * 1e3)
        report["latency"] = {
            "sleep_ms": args.sleep_ms,
            "endpoints": m,
            "curl_sequential": {"samples": len(curl_lat), "p50_ms": statistics.median(curl_lat),
                                "p50_abs_error_ms": abs(statistics.median(curl_lat) - args.sleep_ms)},
            "netvantage": {"samples": len(nv_lat), "p50_ms": statistics.median(nv_lat),
                           "p50_abs_error_ms": abs(statistics.median(nv_lat) - args.sleep_ms)},
            "blackbox": {"samples": len(bb_lat), "p50_ms": statistics.median(bb_lat),
                         "p50_abs_error_ms": abs(statistics.median(bb_lat) - args.sleep_ms)},
        }
        print(json.dumps(report["latency"]), flush=True)
    finally:
        server.terminate()
        server.wait()

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print_table(report)


def print_table(report):
    print(f"\nconcurrency {report['concurrency']}, {report['cycles']} cycles per tool, "
          f"target server on {report['server_ports']} loopback ports\n")
    print("| endpoints | tool | cycle time (s, per cycle) | up | CPU s / 1,000 checks | peak RSS (MiB) |")
    print("|---:|---|---|---:|---:|---:|")
    for row in report["sizes"]:
        for tool in ("netvantage", "blackbox"):
            r = row[tool]
            cycles = ", ".join(f"{c:.2f}" for c in r["cycle_s"])
            name = "netvantage http" if tool == "netvantage" else "blackbox_exporter /probe"
            print(f"| {row['endpoints']:,} | {name} | {cycles} | {r['up']}/{r['checks']} | "
                  f"{r['cpu_s_per_1000']:.3f} | {r['max_rss_mib']:.1f} |")
        print(f"| {row['endpoints']:,} | **ratio** (blackbox CPU / netvantage CPU) | | | "
              f"**{row['cpu_ratio_blackbox_over_netvantage']:.1f}×** | |")
    lat = report["latency"]
    print(f"\nLatency against a server sleeping {lat['sleep_ms']} ms, {lat['endpoints']} endpoints per cycle "
          f"(p50 of {lat['netvantage']['samples']} / {lat['blackbox']['samples']} / "
          f"{lat['curl_sequential']['samples']} samples):\n")
    print("| tool | p50 (ms) | p50 absolute error (ms) |")
    print("|---|---:|---:|")
    for tool in ("netvantage", "blackbox", "curl_sequential"):
        r = lat[tool]
        print(f"| {tool} | {r['p50_ms']:.3f} | {r['p50_abs_error_ms']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
