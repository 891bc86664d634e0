"""App benchmarks: time from `make demo` to the first page, and /recommend + /feedback latency under load.

    .venv/bin/python -m bench.bench_app                      # both, on ml-100k, fallbacks on
    .venv/bin/python -m bench.bench_app --only startup
    .venv/bin/python -m bench.bench_app --only load --users 20 --seconds 60             # the target's load
    .venv/bin/python -m bench.bench_app --only load --users 20 --seconds 60 --think 0   # saturation

startup: runs `make demo` (warm install: venv and data already there) twice on one data dir: the first
run fills the feature and model caches, the second is timed until `GET /` answers 200.

load: serves the app (`python -m app`, fallback generators forced), then N `gradio_client` users, each in
its own thread with its own `Client`, call /recommend (random ml-100k user, k=10), pause, /feedback (like
one item of that slate), pause, and so on for the given seconds. A pause is drawn uniformly from 0.5-1.5x
`--think` (default 1 s: every user acts about once a second, a brisk human pace), and users start spread
over the first 2x`--think` seconds, as real visitors do not click in lock-step; `--think 0` is a closed
loop (every user fires again the moment an answer is back), which measures capacity, not latency.
The clients share one prebuilt SSL context (`ssl_verify=`): by default gradio_client builds a fresh one,
loading the CA bundle, for every request, even over plain http; on this 2-core machine that made the load
generator burn ~0.9 of a core and starve the server it measures (`--fresh-ssl` reproduces that).

load through the front: `--replicas N` serves the app as `scripts/serve_all.py --replicas N` does (nginx on the
public port, N app processes behind it, every user kept on one by the route cookie its page load drew; the front's
per-client bounds lifted like the app's), each run on a fresh PostgreSQL database beside `--database-url`;
`--replicas 1,2,1,2` runs them back to back and ends with the p95 ratios of each (1, N) pair:

    scripts/with_postgres.sh sh -c '.venv/bin/python -m bench.bench_app --only load --client http \
        --replicas 1,2,1,2 --database-url "$VITRINE_TEST_PG_URL"'

Prints JSON lines ("ok": false when a target is missed), with the CPU seconds the server and the load
generator used; exits 1 when a request failed, or with --strict when a target is missed. Targets: first
page < 20 s warm; p95 /recommend < 300 ms, /feedback < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"startup_s": 20.0, "recommend_p95_ms": 300.0, "feedback_p95_ms": 100.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        VITRINE_DATA_DIR=str(data_dir),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        VITRINE_COVER_MODEL="none",  # fallbacks on, as the targets say
        VITRINE_CAPTION_MODEL="none",
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        # every simulated user comes from 127.0.0.1, one client to the per-client limits: lift them
        VITRINE_RATE_SLATE="1000000/minute",
        VITRINE_RATE_GENERATE="1000000/minute",
        VITRINE_RATE_FEEDBACK="1000000/minute",
        VITRINE_RATE_ONBOARD="1000000/minute",
        VITRINE_RATE_JOIN="1000000/minute",
        VITRINE_QUEUE_PER_CLIENT="1900",
    )
    env.pop("PORT", None)
    return env


def _wait_for_page(url: str, proc: subprocess.Popen, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not served within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _serve(cmd: list[str], data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None
           ) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    cmd = [part.replace("{port}", str(port)) for part in cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**_env(data_dir, port), **(extra_env or {})}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/"


def _front_cmd(replicas: int) -> list[str]:
    """`scripts/serve_all.py` with `replicas` app processes on the public port `{port}`; every simulated user comes
    from 127.0.0.1, one client to the front's per-client bounds: they are lifted like the app's (`_env`)."""
    return [sys.executable, str(ROOT / "scripts" / "serve_all.py"), "--host", "127.0.0.1", "--port", "{port}",
            "--replicas", str(replicas), "--join-rate", "999999r/s", "--join-burst", "100000",
            "--conn-per-client", "10000"]


def _wait_for_replicas(log_path: Path, replicas: int, proc: subprocess.Popen, timeout: float) -> None:
    """Until every replica of a front answers its health event (scripts/replica.py says so in the log)."""
    deadline = time.perf_counter() + timeout
    while replicas > 1 and log_path.read_text().count("app answers its health event") < replicas:
        if proc.poll() is not None:
            raise RuntimeError(f"serve_all exited with code {proc.returncode}: {log_path.read_text()[-2000:]}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{replicas} replicas not up within {timeout} s: {log_path.read_text()[-2000:]}")
        time.sleep(0.5)


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of `root` and every live process below it (a front: nginx, the replicas, their
    supervisors; one app: the app and any worker it started)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    total = 0.0
    for pid in tree:
        try:
            total += _cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return total


class _PgWatch:
    """Samples the run database's connections once a second (pg_stat_activity, its own left out) and counts its
    committed transactions (pg_stat_database.xact_commit) until `stop()`: what the replicas ask of PostgreSQL."""

    def __init__(self, url: str):
        import psycopg
        from sqlalchemy.engine import make_url

        self.conn = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                                    autocommit=True)
        self.peak, self.started, self.own = 0, time.perf_counter(), 0
        self.commits = self._commits()
        self.own = 1  # that read's own transaction is counted from now on; and every statement after it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _query(self, sql: str):
        self.own += 1  # autocommit: each statement of this watch is a committed transaction too
        return self.conn.execute(sql).fetchone()

    def _commits(self) -> int:
        self._query("SELECT pg_stat_clear_snapshot()")
        return int(self._query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0])

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            n = self._query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid()")[0]
            self.peak = max(self.peak, int(n))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        time.sleep(1.0)  # the server publishes its statistics every second or so
        seconds = time.perf_counter() - self.started
        own = self.own + 1  # up to the statement before the last read (which is not committed when it reads)
        commits = self._commits() - self.commits - own
        self.conn.close()
        return {"connections_peak": self.peak, "commits_per_s": round(commits / seconds, 1)}


class _FreshDatabase:
    """A PostgreSQL database of its own for one run, next to `url`'s (created empty, dropped afterwards), so that
    every run of a comparison starts from the same empty store; any other URL is used as it is."""

    def __init__(self, url: str | None, tag: str):
        self.base, self.url, self.name = url, url, None
        if url and url.startswith("postgresql"):
            import uuid

            from sqlalchemy.engine import make_url

            self.name = f"vitrine_bench_{tag}_{uuid.uuid4().hex[:8]}"
            self.url = make_url(url).set(database=self.name).render_as_string(hide_password=False)
            self._admin(f'CREATE DATABASE "{self.name}"')

    def _admin(self, statement: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(self.base).set(drivername="postgresql", database="postgres")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(statement)

    def watch(self) -> "_PgWatch | None":
        """On PostgreSQL, a sampler of this run's connections and committed transactions (stop() reports them)."""
        return _PgWatch(self.url) if self.name else None

    def drop(self) -> None:
        if self.name:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def bench_startup(data_dir: Path, timeout: float) -> dict:
    """Seconds from `make demo` to the first page, warm: an untimed run first fills the feature and model
    caches (and says how long a cold start takes when they were empty)."""
    runs = ["warm-up", "timed"]
    result = {}
    for run in runs:
        proc, url = _serve(["make", "demo"], data_dir, data_dir / f"make-demo-{run}.log")
        try:
            seconds = _wait_for_page(url, proc, timeout)
        finally:
            _stop(proc)
        result[run] = round(seconds, 2)
    return {"bench": "app.startup", "command": "make demo", "first_page_s": result["timed"],
            "warm_up_s": result.get("warm-up"), "target_s": TARGETS["startup_s"],
            "ok": result["timed"] < TARGETS["startup_s"]}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


class HttpApiClient:
    """A lightweight client of the same named endpoints over Gradio's documented HTTP API (the queue route that
    gradio_client uses too: POST /gradio_api/call/<name>, then read the event's stream). It has no polling
    threads, so it shows what the server answers in; gradio_client adds a per-call floor of its own (~80 ms
    here, measured by `--only floor --users 1`).

    Like a browser or gradio_client, it loads the app's config before its first call and keeps the cookies: behind
    the front with several replicas (`serve_all.py --replicas N`) that answer sets the route cookie that keeps
    this client on one replica, whose number (X-Vitrine-Replica) the last answer named is `replica`."""

    def __init__(self, url: str):
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=60.0)
        self.replica: str | None = None  # the replica that answered last (None: one app process, no front)
        self._loaded = False

    def load_page(self) -> None:
        """GET /config, as a visitor's page load does (the front draws this client's route then)."""
        answer = self.http.get(f"{self.url}/config")
        answer.raise_for_status()
        self.replica = answer.headers.get("x-vitrine-replica")
        self._loaded = True

    def predict(self, *data, api_name: str):
        if not self._loaded:
            self.load_page()
        name = api_name.strip("/")
        event = self.http.post(f"{self.url}/gradio_api/call/{name}", json={"data": list(data)})
        event.raise_for_status()
        kind = None
        with self.http.stream("GET", f"{self.url}/gradio_api/call/{name}/{event.json()['event_id']}") as stream:
            stream.raise_for_status()
            self.replica = stream.headers.get("x-vitrine-replica")
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    payload = json.loads(line.split(":", 1)[1])
                    if kind == "error":
                        raise RuntimeError(f"/{name} answered an error: {payload}")
                    return payload[0]
        raise RuntimeError(f"/{name}: the stream ended without a result")


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one when pid is None), children not included."""
    if pid is None:
        usage = os.times()
        return usage.user + usage.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gradio_clients(url: str, n: int, fresh_ssl: bool = False) -> list:
    """`n` gradio_client Clients of `url`, sharing one SSL context unless `fresh_ssl` (see the module doc)."""
    from gradio_client import Client

    verify = True if fresh_ssl else ssl.create_default_context()
    return [Client(url, verbose=False, ssl_verify=verify) for _ in range(n)]


def bench_load(data_dir: Path, users: int, seconds: float, timeout: float, k: int = 10, think: float = 1.0,
               client: str = "gradio", fresh_ssl: bool = False, replicas: int | None = None,
               database_url: str | None = None) -> dict:
    """N concurrent users calling /recommend then /feedback for `seconds`, pausing 0.5-1.5x `think` seconds
    after each call (0: a closed loop). client "gradio" drives the endpoints with gradio_client, "http" with
    `HttpApiClient` (the same endpoints over plain HTTP). replicas None: `python -m app` alone; a number: that
    many replicas behind the one-port front (`scripts/serve_all.py --replicas`), on `database_url` (PostgreSQL:
    a fresh database of its own for this run)."""
    front = replicas is not None
    database = _FreshDatabase(database_url, f"r{replicas}" if front else "app")
    extra = {"DATABASE_URL": database.url} if database.url else {}
    log_path = data_dir / (f"front-{replicas}-load-{time.strftime('%H%M%S')}.log" if front else "app-load.log")
    proc, url = _serve(_front_cmd(replicas) if front else [sys.executable, "-m", "app"], data_dir, log_path, extra)
    split: dict[str, int] = {}
    try:
        _wait_for_page(url, proc, timeout)
        if front:
            _wait_for_replicas(log_path, replicas, proc, timeout)
        from recommenders.data import load_dataset

        user_ids = load_dataset("ml-100k", data_dir).users["user_id"].tolist()
        latencies: dict[str, list[float]] = {"recommend": [], "feedback": []}
        errors: list[str] = []
        lock = threading.Lock()
        if client == "gradio":
            clients = _gradio_clients(url, users, fresh_ssl)
        else:
            clients = [HttpApiClient(url) for _ in range(users)]
            for c in clients:
                c.load_page()
        if front and replicas == 1:
            split = {"1": users}
        elif front:  # which replica each user is kept on (the route cookie its page load drew)
            import httpx

            for c in clients:
                cookies = c.cookies if client == "gradio" else c.http.cookies
                replica = httpx.get(url + "config", cookies=cookies).headers.get("x-vitrine-replica", "?")
                split[replica] = split.get(replica, 0) + 1
        server_cpu, client_cpu = _tree_cpu_seconds(proc.pid), _cpu_seconds()
        watch = database.watch()
        start_at = time.perf_counter() + 1.0
        stop_at = start_at + seconds

        def user_loop(api, seed: int) -> None:
            rng = random.Random(seed)

            def pause() -> None:
                if think > 0:
                    time.sleep(rng.uniform(0.5, 1.5) * think)

            time.sleep(max(0.0, start_at - time.perf_counter()) + rng.uniform(0.0, 2.0 * think))
            while time.perf_counter() < stop_at:
                user_id = rng.choice(user_ids)
                try:
                    t0 = time.perf_counter()
                    slate = api.predict(user_id, "", k, False, api_name="/recommend")
                    t1 = time.perf_counter()
                    pause()
                    item = rng.choice(slate["items"])["item_id"]
                    t1b = time.perf_counter()
                    api.predict(user_id, item, "like", slate["impression_id"], "", api_name="/feedback")
                    t2 = time.perf_counter()
                    pause()
                except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                    with lock:
                        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                with lock:
                    latencies["recommend"].append((t1 - t0) * 1000)
                    latencies["feedback"].append((t2 - t1b) * 1000)

        threads = [threading.Thread(target=user_loop, args=(c, i), daemon=True) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 120)
        wall = time.perf_counter() - start_at
        server_cpu, client_cpu = _tree_cpu_seconds(proc.pid) - server_cpu, _cpu_seconds() - client_cpu
        postgres = watch.stop() if watch is not None else None
    finally:
        _stop(proc)
        database.drop()
    out = {"bench": "app.load", "client": client, "fresh_ssl": fresh_ssl, "users": users, "seconds": seconds,
           "k": k, "think_s": think, "errors": len(errors), "error_examples": sorted(set(errors))[:3],
           "cpu_s": {"server": round(server_cpu, 1), "load_generator": round(client_cpu, 1), "wall": round(wall, 1)},
           "load_avg_1m": round(os.getloadavg()[0], 1)}
    if postgres is not None:
        out["postgresql"] = postgres
    if front:
        out["log"] = str(log_path)
        if replicas > 1:  # scripts/replica.py's lines: a replica restarted during the run is a finding
            text = log_path.read_text()
            out.update(replica_restarts=text.count("app running as pid") - replicas,
                       health_check_failures=text.count("health check failed"))
        out.update(front=True, replicas=replicas, users_per_replica=dict(sorted(split.items())),
                   database="postgresql" if (database.url or "").startswith("postgresql") else "sqlite")
    for name, values in latencies.items():
        out[name] = {
            "n": len(values),
            "per_s": round(len(values) / seconds, 1),
            "p50_ms": round(_percentile(values, 50), 1),
            "p95_ms": round(_percentile(values, 95), 1),
            "p99_ms": round(_percentile(values, 99), 1),
            "mean_ms": round(statistics.fmean(values), 1) if values else None,
        }
    out["targets_ms"] = {"recommend_p95": TARGETS["recommend_p95_ms"], "feedback_p95": TARGETS["feedback_p95_ms"]}
    out["ok"] = (
        not errors
        and out["recommend"]["p95_ms"] < TARGETS["recommend_p95_ms"]
        and out["feedback"]["p95_ms"] < TARGETS["feedback_p95_ms"]
    )
    return out


def replica_summary(results: list[dict]) -> dict:
    """p50/p95 of each run in order, and for each 1-replica run followed by an N-replica run (back to back, as
    `--replicas 1,2,1,2` runs them) the ratio N/1 of each endpoint's p95 (below 1: the replicas answer faster)."""
    runs = [{"replicas": r["replicas"], "load_avg_1m": r["load_avg_1m"], "errors": r["errors"],
             **{f"{name}_{q}": r[name][f"{q}_ms"] for name in ("recommend", "feedback") for q in ("p50", "p95")}}
            for r in results]
    pairs = []
    for one, other in zip(runs, runs[1:]):
        if one["replicas"] == 1 and other["replicas"] > 1:
            pairs.append({"replicas": other["replicas"], **{
                f"{name}_p95_ratio": round(other[f"{name}_p95"] / one[f"{name}_p95"], 2) if one[f"{name}_p95"] else None
                for name in ("recommend", "feedback")}})
    return {"bench": "app.load.replicas", "runs": runs, "pairs": pairs}


def bench_handlers(data_dir: Path, calls: int = 200, k: int = 10) -> dict:
    """The same two calls in-process, without Gradio or the network: what the app itself costs per request."""
    os.environ.setdefault("VITRINE_DATA_DIR", str(data_dir))
    from app.web.api import ApiHandlers
    from app.serving.services import build_services
    from app.settings import load_settings

    import torch

    torch.set_num_threads(1)
    env = _env(data_dir, 0)
    settings = load_settings({k2: v for k2, v in env.items() if k2.startswith(("VITRINE_", "DATABASE_URL"))})
    svc = build_services(settings, say=lambda msg: None)
    api = ApiHandlers(svc)
    rng = random.Random(0)
    rec, fb = [], []
    for _ in range(calls):
        user_id = rng.choice(svc.catalog.user_ids)
        t0 = time.perf_counter()
        slate = api.recommend(user_id, "", k)
        t1 = time.perf_counter()
        api.feedback(user_id, rng.choice(slate["items"])["item_id"], "like", slate["impression_id"])
        rec.append((t1 - t0) * 1000)
        fb.append((time.perf_counter() - t1) * 1000)
    svc.close()
    return {"bench": "app.web", "calls": calls, "k": k,
            "recommend": {"p50_ms": round(_percentile(rec, 50), 1), "p95_ms": round(_percentile(rec, 95), 1)},
            "feedback": {"p50_ms": round(_percentile(fb, 50), 1), "p95_ms": round(_percentile(fb, 95), 1)}}


def serve_echo() -> None:
    """The floor's server: a no-op `gr.api` endpoint, in a queue set up like the app's (port from the env)."""
    import gradio as gr

    from app.web.launch import enable_queue

    def echo(x: str) -> str:
        return x

    with gr.Blocks() as demo:
        gr.api(echo, api_name="echo", concurrency_limit=16)
    enable_queue(demo)
    demo.launch(server_name="127.0.0.1", server_port=int(os.environ["GRADIO_SERVER_PORT"]), quiet=True)


def bench_floor(data_dir: Path, users: int, seconds: float, fresh_ssl: bool = False, think: float = 0.0) -> dict:
    """The transport floor: the no-op endpoint of `serve_echo`, served by its own process like the app, driven
    by N gradio_client users the way `bench_load` drives the app (closed loop unless `think`)."""
    proc, url = _serve([sys.executable, "-m", "bench.bench_app", "--serve-echo"], data_dir, data_dir / "echo.log")
    try:
        _wait_for_page(url, proc, 120)
        latencies: list[float] = []
        lock = threading.Lock()
        clients = _gradio_clients(url, users, fresh_ssl)
        server_cpu, client_cpu = _cpu_seconds(proc.pid), _cpu_seconds()
        stop_at = time.perf_counter() + seconds

        def loop(client, seed: int) -> None:
            rng = random.Random(seed)
            time.sleep(rng.uniform(0.0, 2.0 * think))
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                client.predict("x", api_name="/echo")
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
                if think > 0:
                    time.sleep(rng.uniform(0.5, 1.5) * think)

        threads = [threading.Thread(target=loop, args=(c, i), daemon=True) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 60)
        server_cpu, client_cpu = _cpu_seconds(proc.pid) - server_cpu, _cpu_seconds() - client_cpu
    finally:
        _stop(proc)
    return {"bench": "app.floor", "users": users, "seconds": seconds, "think_s": think, "fresh_ssl": fresh_ssl,
            "cpu_s": {"server": round(server_cpu, 1), "load_generator": round(client_cpu, 1)}, "n": len(latencies),
            "per_s": round(len(latencies) / seconds, 1), "p50_ms": round(_percentile(latencies, 50), 1),
            "p95_ms": round(_percentile(latencies, 95), 1), "p99_ms": round(_percentile(latencies, 99), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["startup", "load", "handlers", "floor"],
                        help="run one: startup and load are the targets; handlers (in-process cost per call) and "
                        "floor (a no-op endpoint under the same load) explain the load figures")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("VITRINE_BENCH_DATA_DIR", "/tmp/vitrine-bench-app")),
                        help="data dir of the app under test (its own SQLite DB; model/feature caches kept)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=1.0,
                        help="mean seconds each user pauses after each call (drawn from 0.5-1.5x); 0: closed loop")
    parser.add_argument("--fresh-ssl", action="store_true",
                        help="let gradio_client build an SSL context per request, as it does by default")
    parser.add_argument("--client", choices=["gradio", "http"], default="gradio",
                        help="load: drive the endpoints with gradio_client (default) or over plain HTTP")
    parser.add_argument("--replicas", default=None,
                        help="load: through the one-port front (scripts/serve_all.py) with this many app replicas, "
                        "or a comma list run back to back (e.g. 1,2,1,2), then their p95 ratios; more than one "
                        "needs PostgreSQL (--database-url)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="load: the app's database (default $DATABASE_URL, else the data dir's SQLite file); on "
                        "PostgreSQL each run gets a fresh database of its own beside it")
    parser.add_argument("--timeout", type=float, default=600.0, help="the longest wait for the first page")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is missed (default: only failed requests make it exit 1, so that "
                        "`python -m bench` goes on to the other benchmarks on a slow machine)")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)  # the floor's server process
    args = parser.parse_args(argv)
    runs: list[int | None] = [None]
    if args.replicas is not None:
        try:
            runs = [int(n) for n in args.replicas.split(",")]
        except ValueError:
            parser.error(f"--replicas: expected a number or a comma list such as 1,2,1,2, got {args.replicas!r}")
        if not all(n >= 1 for n in runs):
            parser.error(f"--replicas: expected numbers >= 1, got {args.replicas!r}")
    if args.serve_echo:
        serve_echo()
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    ok = True  # every target met
    clean = True  # no request failed
    if args.only in (None, "startup"):
        result = bench_startup(args.data_dir, args.timeout)
        print(json.dumps(result), flush=True)
        ok &= result["ok"]
    if args.only in (None, "load"):
        results = []
        for replicas in runs:
            result = bench_load(args.data_dir, args.users, args.seconds, args.timeout, think=args.think,
                                client=args.client, fresh_ssl=args.fresh_ssl, replicas=replicas,
                                database_url=args.database_url)
            print(json.dumps(result), flush=True)
            results.append(result)
            ok &= result["ok"]
            clean &= result["errors"] == 0
        if len(set(runs)) > 1:
            print(json.dumps(replica_summary(results)), flush=True)
    if args.only == "handlers":
        print(json.dumps(bench_handlers(args.data_dir)), flush=True)
    if args.only == "floor":
        print(json.dumps(bench_floor(args.data_dir, args.users, args.seconds, args.fresh_ssl, args.think)), flush=True)
    if not clean:
        return 1
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
