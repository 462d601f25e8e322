#!/usr/bin/env python3
"""A Redis benchmark script in the original tool's style (a wrapper around Redis's own
`redis-benchmark`), for a client recipe's `script:` block; the orchestrator runs it as

    python3 redis_benchmark.py --endpoint=redis://HOST:PORT --num-operations=N
        --clients=C --value-size=D --pipeline=P --native-tests=ping,set,get

Each test runs `redis-benchmark -t TEST -n N -c C -d D -P P --csv` (`ping` is two
commands to redis-benchmark: PING_INLINE and PING_MBULK). It prints
redis-benchmark's figures as one JSON line, and writes `results/summary.json` (the
requests of all tests, in the names the orchestrator's report reads), so that the
session's report has this client's request count.
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="redis://HOST:PORT")
    parser.add_argument("--num-operations", type=int, default=100000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--value-size", type=int, default=3)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--native-tests", default="ping,set,get")
    parser.add_argument("--wait-for-service", type=int, default=0, help="accepted, not needed")
    args = parser.parse_args()
    host, _, port = args.endpoint.split("://", 1)[-1].partition(":")
    tests = [t.strip() for t in args.native_tests.split(",") if t.strip()]
    figures = {}
    start = time.monotonic()
    for test in tests:
        run = subprocess.run(
            ["redis-benchmark", "-h", host, "-p", port or "6379", "-t", test,
             "-n", str(args.num_operations), "-c", str(args.clients),
             "-d", str(args.value_size), "-P", str(args.pipeline), "--csv"],
            capture_output=True, text=True, check=True)
        for row in csv.DictReader(io.StringIO(run.stdout)):
            figures[row["test"]] = {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"])}
    seconds = time.monotonic() - start
    # One CSV row per command benchmarked (`-t ping` is PING_INLINE and PING_MBULK),
    # each of --num-operations requests.
    requests = args.num_operations * len(figures)
    os.makedirs("results", exist_ok=True)
    with open("results/summary.json", "w") as out:
        json.dump({"source": "redis-benchmark", "requests_completed": requests,
                   "requests_failed": 0, "measured_seconds": seconds,
                   "requests_per_second": requests / seconds, "tests": figures}, out)
    print(json.dumps({"endpoint": args.endpoint, "requests": requests, "tests": figures}))


if __name__ == "__main__":
    sys.exit(main())
