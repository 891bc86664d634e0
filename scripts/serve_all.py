#!/usr/bin/env python
"""One public port for the whole of Vitrine: the Gradio app at `/`, the Streamlit dashboard at `/dashboard/`.

This is the container's entry point (see the Dockerfile), and works the same without a container:

    python scripts/serve_all.py                      # public port: $PORT, else 7860; binds 0.0.0.0
    python scripts/serve_all.py --port 8080 --host 127.0.0.1

A thin launcher, no proxy code: it picks free private loopback ports (the app's, the dashboard's), renders
`deploy/nginx.conf.template` into a private run directory (`deploy/render.py`), checks it with `nginx -t`, and runs
the three processes of `deploy/Procfile` under honcho's process manager (and a fourth, the health watchdog):

    nginx      the public port: static routing, websocket upgrade, body cap, forwarded headers (deploy/nginx.conf.template)
    app        `python -m app` on 127.0.0.1 (GRADIO_SERVER_NAME/PORT), VITRINE_TRUST_PROXY=1 (nginx sets the
               X-Forwarded-For the app's rate limits key on)
    dashboard  `streamlit run app/dashboard/main.py --server.baseUrlPath dashboard` on 127.0.0.1
    health     `scripts/healthcheck.py --watch`: a real event through the app's queue every 30 s; exits after 3
               failures in a row (a stopped queue leaves the app process up and its page answering 200)

When any of them exits, honcho stops the others and this script exits non-zero, so a container supervisor
restarts the whole thing; SIGTERM/SIGINT stop everything (exit 143/130) and the run directory is removed.
nginx comes from Debian (`scripts/system_deps.sh` installs it); honcho is pinned in requirements.txt.

Replicas: `--replicas N` (or $VITRINE_REPLICAS) runs N app processes behind nginx's upstream, each on its own
loopback port, instead of one:

    DATABASE_URL=postgresql+psycopg://user@db:5432/vitrine python scripts/serve_all.py --replicas 2

    nginx             one upstream of N servers, a visitor kept on one of them (a consistent hash on a route
                      cookie the front draws; the template says why), a replica that is down passed over
    app.1 ... app.N   `scripts/replica.py` each: runs the app, runs its health event, restarts that replica alone
                      when it dies or its queue stops (the others keep serving), gives up on a crash loop
    dashboard-health  the dashboard's watchdog (the replicas watch themselves)

They share what a replica writes: the database, which must be PostgreSQL (a SQLite file has one writer on one
disk: refused, with a message), and the blob store of covers and model versions (VITRINE_BLOB_URL, else
<data dir>/blobs: the same directory for all, since they share the data dir; a `memory://` store lives in one
process and is refused). Replica 1 starts first and the others once it answers (it alone fills the shared
caches and migrates the database on a first start). Work that must happen once runs in replica 1 only: the
event sink (VITRINE_SYNC_URL) and the retrain schedules (VITRINE_RETRAIN_EVERY_*, VITRINE_REWARD_EVERY_LABELS);
promotions reach every replica through the registry (VITRINE_MODEL_POLL_S).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from deploy.render import MAX_REPLICAS, RunConfig, free_port, render_run_dir  # noqa: E402

PROCFILE = REPO_ROOT / "deploy" / "Procfile"
# the Procfile's lines each set runs: one app process, or N replicas (`replica` once per replica, as app.1 ...)
ONE_APP = ("nginx", "app", "dashboard", "health")
REPLICATED = ("nginx", "dashboard", "dashboard-health")
# settings of work that must happen once, whatever the number of replicas: replica 1 alone gets them
ONCE_ONLY = ("VITRINE_SYNC_URL", "VITRINE_RETRAIN_EVERY_EVENTS", "VITRINE_RETRAIN_EVERY_MINUTES",
             "VITRINE_REWARD_EVERY_LABELS")


def find_nginx() -> str:
    """The nginx binary: on PATH, else Debian's /usr/sbin/nginx (not on a non-root user's PATH everywhere)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        raise SystemExit("serve_all: nginx not found; install Debian's nginx (scripts/system_deps.sh, as root)")
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=env.get("VITRINE_PUBLIC_HOST", "0.0.0.0"),
                        help="public interface (default 0.0.0.0, or $VITRINE_PUBLIC_HOST)")
    parser.add_argument("--port", type=int, default=int(env.get("PORT") or 7860),
                        help="public port (default $PORT, else 7860)")
    parser.add_argument("--max-body", default=env.get("VITRINE_MAX_BODY_BYTES") or "1m",
                        help="largest request body nginx lets through, nginx size syntax (default: the app's own "
                             "cap $VITRINE_MAX_BODY_BYTES, else 1m); larger bodies get 413 before the app")
    parser.add_argument("--public-scheme", choices=("http", "https"),
                        default=env.get("VITRINE_PUBLIC_SCHEME") or ("https" if env.get("SPACE_ID") else "http"),
                        help="scheme browsers use to reach this port: https behind a TLS proxy such as a Space "
                             "(default: https when SPACE_ID is set, else http; or $VITRINE_PUBLIC_SCHEME)")
    trusted = env.get("VITRINE_TRUSTED_PROXY") or ("0.0.0.0/0" if env.get("SPACE_ID") else "none")
    parser.add_argument("--trusted-proxy", default=trusted,
                        help="network (CIDR) of a proxy in front whose X-Forwarded-For names the client, or 'none' "
                             "(default: 0.0.0.0/0 on a Space, where only the Space's proxy can reach the port, "
                             "else none; or $VITRINE_TRUSTED_PROXY)")
    parser.add_argument("--join-rate", default=env.get("VITRINE_FRONT_JOIN_RATE") or "5r/s",
                        help="joins of Gradio's queue one client may make, nginx syntax (default 5r/s, or "
                             "$VITRINE_FRONT_JOIN_RATE); 429 above")
    parser.add_argument("--join-burst", type=int, default=int(env.get("VITRINE_FRONT_JOIN_BURST") or 30),
                        help="joins one client may make at once above that rate (default 30, or "
                             "$VITRINE_FRONT_JOIN_BURST)")
    parser.add_argument("--conn-per-client", type=int, default=int(env.get("VITRINE_FRONT_CONN_PER_CLIENT") or 64),
                        help="requests one client may have open at once (default 64, or "
                             "$VITRINE_FRONT_CONN_PER_CLIENT); 429 above")
    parser.add_argument("--frame-ancestors",
                        default=env.get("VITRINE_FRAME_ANCESTORS")
                        or ("'self' https://huggingface.co" if env.get("SPACE_ID") else "'self'"),
                        help="who may frame the pages, CSP sources (default 'self'; on a Space 'self' "
                             "https://huggingface.co, whose page frames the app; or $VITRINE_FRAME_ANCESTORS)")
    parser.add_argument("--app-cmd", default=None,
                        help="command that serves the Gradio app (default: python -m app); it must honour "
                             "GRADIO_SERVER_NAME and GRADIO_SERVER_PORT")
    parser.add_argument("--dashboard-script", default="app/dashboard/main.py", help="the Streamlit script")
    parser.add_argument("--replicas", type=int, default=env.get("VITRINE_REPLICAS") or "1",  # a string: parsed
                        help="app processes behind the front (default 1, or $VITRINE_REPLICAS); more than one needs "
                             "PostgreSQL (DATABASE_URL) and a blob store they all see")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if not 1 <= args.replicas <= MAX_REPLICAS:
        parser.error(f"--replicas must be between 1 and {MAX_REPLICAS}, got {args.replicas}")
    return args


def replica_problem(replicas: int, env: dict[str, str]) -> str | None:
    """Why `replicas` app processes cannot share this environment's stores (None: they can)."""
    if replicas == 1:
        return None
    database = (env.get("DATABASE_URL") or "").strip()
    if not database.startswith("postgresql"):
        shown = database.split("://", 1)[0] + "://..." if database else "unset: the SQLite file in the data dir"
        return (f"--replicas {replicas} needs PostgreSQL: set DATABASE_URL=postgresql+psycopg://USER@HOST:PORT/DB "
                f"(DATABASE_URL is {shown}). A SQLite file has one writer on one disk; replicas write at once.")
    blob = (env.get("VITRINE_BLOB_URL") or "").strip()
    if blob.startswith("memory://"):
        return (f"--replicas {replicas} needs a blob store every replica sees: VITRINE_BLOB_URL={blob} lives in one "
                "process; leave it unset (<data dir>/blobs, shared here) or give a directory, s3:// or hf:// URL")
    return None


def processes(procfile: dict[str, str], env: dict[str, str], app_ports: tuple[int, ...]
              ) -> list[tuple[str, str, dict[str, str]]]:
    """(name, command, environment) of each process of the set: the Procfile's lines for one app process, or
    for N replicas (`replica` once per port, as app.1 ... app.N, replica 1 first and alone with ONCE_ONLY)."""
    if len(app_ports) == 1:
        return [(name, procfile[name], env) for name in ONE_APP]
    out = [(name, procfile[name], env) for name in REPLICATED]
    first = f"http://127.0.0.1:{app_ports[0]}/"
    for n, port in enumerate(app_ports, 1):
        replica_env = {**env, "VITRINE_APP_PORT": str(port), "VITRINE_REPLICA": f"app.{n}",
                       "VITRINE_REPLICA_AFTER": "" if n == 1 else first}
        if n > 1:
            for name in ONCE_ONLY:
                replica_env.pop(name, None)
        out.append((f"app.{n}", procfile["replica"], replica_env))
    return out


def _distinct_ports(n: int) -> list[int]:
    """`n` free loopback ports, all different (the OS may hand out a port again once its socket is closed)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def main(argv: list[str] | None = None) -> int:
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    args = parse_args(argv)
    problem = replica_problem(args.replicas, dict(os.environ))
    if problem is not None:
        print(f"serve_all: {problem}", file=sys.stderr)
        return 2
    nginx = find_nginx()
    try:
        ports = _distinct_ports(args.replicas + 1)  # the app's (one per replica), then the dashboard's
        config = RunConfig(host=args.host, port=args.port, app_port=ports[0], dashboard_port=ports[-1],
                           replica_ports=tuple(ports[1:-1]),
                           max_body=args.max_body, public_scheme=args.public_scheme,
                           trusted_proxy=None if args.trusted_proxy.lower() == "none" else args.trusted_proxy,
                           join_rate=args.join_rate, join_burst=args.join_burst,
                           conn_per_client=args.conn_per_client, frame_ancestors=args.frame_ancestors)
    except ValueError as exc:
        print(f"serve_all: {exc}", file=sys.stderr)
        return 2
    run_dir = render_run_dir(config)
    try:
        check = subprocess.run([nginx, "-t", "-q", "-e", "stderr", "-p", str(run_dir), "-c", str(run_dir / "nginx.conf")],
                               capture_output=True, text=True)
        if check.returncode != 0:
            print(f"serve_all: the rendered nginx config is refused:\n{check.stderr}", file=sys.stderr)
            return 2
        python_bin = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if k != "PORT"}  # PORT is the public port; children get private ones
        env.update({
            "PATH": python_bin + os.pathsep + env.get("PATH", ""),  # `python` in the Procfile is this interpreter
            "PYTHONUNBUFFERED": "1",
            "VITRINE_RUN_DIR": str(run_dir),
            "VITRINE_NGINX": nginx,
            "VITRINE_APP_PORT": str(config.app_port),
            "VITRINE_DASHBOARD_PORT": str(config.dashboard_port),
            "VITRINE_APP_CMD": args.app_cmd or shlex.join([sys.executable, "-m", "app"]),
            "VITRINE_DASHBOARD_SCRIPT": args.dashboard_script,
        })
        manager = Manager(Printer(sys.stdout, colour=False))
        procfile = parse_procfile(PROCFILE.read_text()).processes
        for name, cmd, process_env in processes(procfile, env, config.app_ports):
            manager.add_process(name, cmd, env=process_env, cwd=str(REPO_ROOT))
        apps = ", ".join(f"127.0.0.1:{port}" for port in config.app_ports)
        print(f"serve_all: http://{args.host}:{args.port}/ (app) and /dashboard/ (dashboard) through nginx; "
              f"app{' replicas' if args.replicas > 1 else ''} on {apps}, dashboard on 127.0.0.1:{config.dashboard_port}",
              file=sys.stderr, flush=True)
        manager.loop()  # returns once all have stopped (one exited, or SIGTERM/SIGINT)
        if manager.returncode == 0:  # a child ended by itself with 0: still not a state to keep serving in
            print("serve_all: a process exited; stopped the others", file=sys.stderr, flush=True)
            return 1
        return manager.returncode if manager.returncode is not None else 1
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
