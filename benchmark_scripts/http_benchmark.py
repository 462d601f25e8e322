#!/usr/bin/env python3
"""A benchmark script in the original tool's style, for a client recipe's `script:`
block: the orchestrator runs it as

    python3 http_benchmark.py --endpoint=http://HOST:PORT --num-requests=N ...

(each of the recipe's `parameters` as a `--flag`). It sends N sequential GET requests
to the endpoint with the standard library only and prints one JSON summary line:
requests, failures, mean and maximum latency in milliseconds, and its own arguments.
"""
import argparse
import json
import sys
import time
import urllib.request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="http://HOST:PORT of the service")
    parser.add_argument("--num-requests", type=int, default=10)
    parser.add_argument("--path", default="/")
    parser.add_argument("--wait-for-service", type=int, default=0, help="accepted, not needed")
    args = parser.parse_args()
    latencies, failures = [], 0
    for _ in range(args.num_requests):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(args.endpoint + args.path, timeout=10) as answer:
                answer.read()
            latencies.append((time.perf_counter() - start) * 1000)
        except OSError:
            failures += 1
    summary = {
        "endpoint": args.endpoint,
        "requests": len(latencies),
        "failures": failures,
        "mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "argv": sys.argv[1:],
    }
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
