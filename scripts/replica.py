#!/usr/bin/env python
"""One app replica of `scripts/serve_all.py --replicas N`: run it, watch it, restart it alone when it dies.

    python scripts/replica.py --name app.2 --url http://127.0.0.1:7862/ --after http://127.0.0.1:7861/ \\
        --cmd "python -m app"

With several replicas behind the front, one that dies (a crash, the OOM killer, a SIGKILL) or whose queue stops
(its page still answers 200; only a real event shows it: `scripts/healthcheck.py`'s check) must not take the
others down: nginx sends its visitors to the others meanwhile, and this script starts it again. It

1. waits, when `--after` names replica 1, until that one answers a real event (replica 1 alone fills the shared
   caches and migrates the database on a first start; the others then only read them);
2. runs `--cmd` (through /bin/sh, as the Procfile's `app` line does) in a session of its own, which dies with this script (Linux: PR_SET_PDEATHSIG);
3. every `--interval` seconds runs the app's /health event through its queue; `--retries` failures in a row (not
   counted while it starts, for at most `--start-period` seconds, unless it answered already) SIGKILL the app's
   process group;
4. when the app has exited, starts it again after a pause (1 s, doubling up to 30 s while it keeps failing);
   more than `--max-restarts` starts within `--restart-window` seconds is a crash loop: it exits 1, so that
   honcho stops the whole set and the container is restarted (a broken deployment must not look alive).

SIGTERM and SIGINT stop the app (SIGTERM to its group, SIGKILL after `--stop-timeout` seconds) and exit 143/130.
Its output goes where this script's goes (honcho prefixes it with the process name). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from healthcheck import add_health_args, check_app  # noqa: E402

POLL_S = 0.25  # how often the app's process is looked at (a death is noticed this fast)


def _say(name: str, message: str) -> None:
    print(f"replica {name}: {message}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL when this script dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum, _frame) -> None:
    raise Stop(signum)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop(proc: subprocess.Popen | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    _kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
        proc.wait()


def wait_for(url: str, timeout: float, name: str) -> None:
    """Poll `url`'s health event every second until it answers (a replica that goes first)."""
    _say(name, f"waiting for {url} to answer before starting")
    while check_app(url, timeout) is not None:
        time.sleep(1.0)


def run_once(args: argparse.Namespace) -> tuple[int, bool]:
    """Start the app, watch it until it exits (or is killed as unhealthy): (its exit status, whether it ever
    answered its health event)."""
    # through the shell, as the Procfile's own `app` line runs it (`exec`: the pid is the app's)
    proc = subprocess.Popen(["/bin/sh", "-c", f"exec {args.cmd}"], start_new_session=True,
                            preexec_fn=_die_with_parent)
    args.running = proc
    _say(args.name, f"app running as pid {proc.pid}")
    started, seen_ok, failures = time.monotonic(), False, 0
    next_check = started + min(args.interval, 5.0)  # the first look comes early: a start-up is seen as ok soon
    while proc.poll() is None:
        time.sleep(POLL_S)
        if time.monotonic() < next_check or proc.poll() is not None:
            continue
        problem = check_app(args.url, args.timeout)
        next_check = time.monotonic() + (args.interval if seen_ok or problem is None else min(args.interval, 5.0))
        if problem is None:
            if not seen_ok:
                _say(args.name, f"app answers its health event ({time.monotonic() - started:.1f} s after start)")
            seen_ok, failures = True, 0
        elif seen_ok or time.monotonic() - started > args.start_period:
            failures += 1
            _say(args.name, f"health check failed {failures}/{args.retries}: {problem}")
            if failures >= args.retries:
                _say(args.name, f"unhealthy: killing the app (pid={proc.pid}) to start it again")
                _kill_group(proc, signal.SIGKILL)
    args.running = None
    return proc.wait(), seen_ok


def supervise(args: argparse.Namespace) -> int:
    if args.after:
        wait_for(args.after, args.timeout, args.name)
    starts: deque[float] = deque()
    pause = 1.0
    while True:
        now = time.monotonic()
        starts.append(now)
        while starts and now - starts[0] > args.restart_window:
            starts.popleft()
        if len(starts) > args.max_restarts + 1:
            _say(args.name, f"{len(starts) - 1} restarts within {args.restart_window:.0f} s: a crash loop; giving up "
                            "(the set stops, for the container to be restarted)")
            return 1
        status, seen_ok = run_once(args)
        pause = 1.0 if seen_ok else min(2 * pause, 30.0)
        how = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
        _say(args.name, f"app {how}; starting it again in {pause:.0f} s")
        time.sleep(pause)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="app", help="this replica's name in the log lines (default app)")
    parser.add_argument("--url", required=True, help="the app's own root URL (its loopback port)")
    parser.add_argument("--cmd", required=True, help="the command that serves the app, shell words")
    parser.add_argument("--after", default="", help="start only once this URL answers its health event (replica 1's)")
    add_health_args(parser, env)  # --timeout, --interval, --retries (failures that restart the app), --start-period
    parser.add_argument("--max-restarts", type=int, default=int(env.get("VITRINE_REPLICA_MAX_RESTARTS") or 5),
                        help="restarts within --restart-window that make it give up (default "
                             "$VITRINE_REPLICA_MAX_RESTARTS, else 5)")
    parser.add_argument("--restart-window", type=float, default=float(env.get("VITRINE_REPLICA_RESTART_WINDOW_S")
                                                                        or 600),
                        help="seconds (default $VITRINE_REPLICA_RESTART_WINDOW_S, else 600)")
    parser.add_argument("--stop-timeout", type=float, default=4.0,
                        help="seconds the app has to stop on SIGTERM before SIGKILL (default 4: under honcho's 5)")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.interval <= 0 or args.retries < 1 or args.start_period < 0:
        parser.error("--timeout and --interval must be > 0, --retries >= 1, --start-period >= 0")
    if args.max_restarts < 0 or args.restart_window <= 0 or args.stop_timeout <= 0:
        parser.error("--max-restarts must be >= 0, --restart-window and --stop-timeout > 0")
    if not shlex.split(args.cmd):
        parser.error("--cmd: expected a command, got nothing")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.running = None
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        return supervise(args)
    except Stop as stop:
        _stop(args.running, args.stop_timeout)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
