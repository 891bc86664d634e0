#!/usr/bin/env python
"""Is Vitrine serving? A real event through Gradio's queue (the app's `/health` endpoint), and the dashboard's
health route: exit 0 when both answer, 1 otherwise (one line on stderr saying what failed).

    python scripts/healthcheck.py --url http://127.0.0.1:7860/                  # once (the Dockerfile's HEALTHCHECK)
    python scripts/healthcheck.py --url http://127.0.0.1:7861/ --watch          # the one-port set's watchdog
    python scripts/healthcheck.py --dashboard http://127.0.0.1:8501/dashboard/_stcore/health --watch  # replicas'

A process whose queue has stopped still answers `/config` and its page with 200; only an event shows it (Gradio
answers a join with `503 Queue is stopped.`). `--watch` checks every `--interval` seconds and exits 1 after
`--retries` failures in a row, so that honcho (deploy/Procfile) stops the other processes and `serve_all.py` exits
non-zero for the container to be restarted. While the app starts (before its first good answer, for at most
`--start-period` seconds) failures do not count. Standard library only: it runs in the image's HEALTHCHECK.
With several app replicas (`serve_all.py --replicas N`) each replica is watched, and restarted alone, by
`scripts/replica.py` (which runs `check_app` below), and this watchdog watches the dashboard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def _read(request: urllib.request.Request | str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2048).decode("utf-8", "replace")


def check_app(url: str, timeout: float, api_name: str = "health") -> str | None:
    """None when the app's `api_name` endpoint runs through the queue and answers "ok", else what went wrong."""
    base = url.rstrip("/") + "/gradio_api/call/" + api_name
    join = urllib.request.Request(base, data=b'{"data": []}', method="POST",
                                  headers={"Content-Type": "application/json"})
    try:
        status, body = _read(join, timeout)
        if status != 200:
            return f"joining the queue answered HTTP {status}: {body[:200]}"
        event_id = json.loads(body)["event_id"]
        status, body = _read(f"{base}/{event_id}", timeout)
    except (OSError, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if status != 200:
        return f"the event's result answered HTTP {status}: {body[:200]}"
    if 'event: complete\ndata: ["ok"]' not in body:
        return f"the event did not complete with 'ok': {body[:200]!r}"
    return None


def check_dashboard(url: str, timeout: float) -> str | None:
    """None when Streamlit's health route answers 200 "ok", else what went wrong."""
    try:
        status, body = _read(url, timeout)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if status == 200 and body.strip() == "ok" else f"the dashboard answered HTTP {status}: {body[:100]}"


def check(args: argparse.Namespace) -> str | None:
    problem = check_app(args.url, args.timeout) if args.url else None
    if problem is None and args.dashboard:
        problem = check_dashboard(args.dashboard, args.timeout)
    return problem


def watch(args: argparse.Namespace) -> int:
    started, seen_ok, failures = time.monotonic(), False, 0
    while True:
        problem = check(args)
        if problem is None:
            seen_ok, failures = True, 0
        elif seen_ok or time.monotonic() - started > args.start_period:
            failures += 1
            print(f"healthcheck: failed {failures}/{args.retries}: {problem}", file=sys.stderr, flush=True)
            if failures >= args.retries:
                print("healthcheck: unhealthy, exiting so that the processes are restarted", file=sys.stderr,
                      flush=True)
                return 1
        time.sleep(args.interval)


def add_health_args(parser: argparse.ArgumentParser, env) -> None:
    """--timeout, --interval, --retries, --start-period, with their environment defaults (this watchdog's and
    scripts/replica.py's)."""
    parser.add_argument("--timeout", type=float, default=float(env.get("VITRINE_HEALTH_TIMEOUT_S") or 10),
                        help="seconds one request may take (default $VITRINE_HEALTH_TIMEOUT_S, else 10)")
    parser.add_argument("--interval", type=float, default=float(env.get("VITRINE_HEALTH_INTERVAL_S") or 30),
                        help="seconds between checks (default $VITRINE_HEALTH_INTERVAL_S, else 30)")
    parser.add_argument("--retries", type=int, default=int(env.get("VITRINE_HEALTH_RETRIES") or 3),
                        help="failures in a row that count as unhealthy (default $VITRINE_HEALTH_RETRIES, else 3)")
    parser.add_argument("--start-period", type=float, default=float(env.get("VITRINE_HEALTH_START_S") or 900),
                        help="seconds failures do not count while the app starts, unless it answered already "
                             "(default $VITRINE_HEALTH_START_S, else 900: the first start computes features)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="the Gradio app's root URL (with several replicas each one's is "
                                                    "watched by scripts/replica.py: then --dashboard alone)")
    parser.add_argument("--dashboard", default=None, help="the dashboard's health URL (…/_stcore/health), if any")
    parser.add_argument("--watch", action="store_true", help="check forever; exit 1 when unhealthy")
    add_health_args(parser, env)
    args = parser.parse_args(argv)
    if not args.url and not args.dashboard:
        parser.error("give --url, --dashboard or both")
    if args.timeout <= 0 or args.interval <= 0 or args.retries < 1 or args.start_period < 0:
        parser.error("--timeout and --interval must be > 0, --retries >= 1, --start-period >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.watch:
        return watch(args)
    problem = check(args)
    if problem is not None:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
