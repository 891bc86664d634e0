#!/usr/bin/env python
"""One public port for the whole of Vitrine: the Gradio app at `/`, the Streamlit dashboard at `/dashboard/`.

This is the container's entry point (see the Dockerfile), and works the same without a container:

    python scripts/serve_all.py                      # public port: $PORT, else 7860; binds 0.0.0.0
    python scripts/serve_all.py --port 8080 --host 127.0.0.1

A thin launcher, no proxy code: it picks two free private loopback ports, renders `deploy/nginx.conf.template`
into a private run directory (`deploy/render.py`), checks it with `nginx -t`, and runs the three processes of
`deploy/Procfile` under honcho's process manager (and a fourth, the health watchdog):

    nginx      the public port: static routing, websocket upgrade, body cap, forwarded headers (deploy/nginx.conf.template)
    app        `python -m app` on 127.0.0.1 (GRADIO_SERVER_NAME/PORT), VITRINE_TRUST_PROXY=1 (nginx sets the
               X-Forwarded-For the app's rate limits key on)
    dashboard  `streamlit run app/dashboard/main.py --server.baseUrlPath dashboard` on 127.0.0.1
    health     `scripts/healthcheck.py --watch`: a real event through the app's queue every 30 s; exits after 3
               failures in a row (a stopped queue leaves the app process up and its page answering 200)

When any of them exits, honcho stops the others and this script exits non-zero, so a container supervisor
restarts the whole thing; SIGTERM/SIGINT stop everything (exit 143/130) and the run directory is removed.
nginx comes from Debian (`scripts/system_deps.sh` installs it); honcho is pinned in requirements.txt.
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

from deploy.render import RunConfig, free_port, render_run_dir  # noqa: E402

PROCFILE = REPO_ROOT / "deploy" / "Procfile"


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
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    args = parse_args(argv)
    nginx = find_nginx()
    try:
        config = RunConfig(host=args.host, port=args.port, app_port=free_port(), dashboard_port=free_port(),
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
        for name, cmd in parse_procfile(PROCFILE.read_text()).processes.items():
            manager.add_process(name, cmd, env=env, cwd=str(REPO_ROOT))
        print(f"serve_all: http://{args.host}:{args.port}/ (app) and /dashboard/ (dashboard) through nginx; "
              f"app on 127.0.0.1:{config.app_port}, dashboard on 127.0.0.1:{config.dashboard_port}",
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
