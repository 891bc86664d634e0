"""The app on a real-size catalogue: cold start to the first page, warm restart, peak RSS, /recommend latency.

    .venv/bin/python -m recommenders synth --preset 25k --layout byo   --out .vitrine/synth/synth-25k
    .venv/bin/python -m recommenders synth --preset 1m  --layout mmrec --out .vitrine/synth/synth-1m
    .venv/bin/python -m bench.bench_scale_app --dataset .vitrine/synth/synth-25k --data-dir /tmp/scale-25k
    .venv/bin/python -m bench.bench_scale_app --dataset .vitrine/synth/synth-1m  --data-dir /tmp/scale-1m

For one catalogue and an empty data dir (`--data-dir`, wiped first unless `--keep`):
1. cold: `python -m app` under `/usr/bin/time -v` (fallback covers and captions, the default model: what the
   catalogue's size calls for), timed from the spawn until `/recommend` answers a page for a dataset user over
   the HTTP API; its peak RSS (the whole process, start-up included) and the start-up steps it logged;
2. warm: stopped and started again on the same data dir (features, parsed dataset, model and catalog sync all
   cached), timed the same way;
3. over the API, on the warm process: `--calls` sequential `/recommend` calls (random dataset users, k=10), each
   the whole HTTP round trip of Gradio's queue (POST /gradio_api/call, then its event stream);
4. in process (`--in-process`, a separate process built with `build_services` on the warm data dir): the
   default model's top-20 for random users (`Ranking.rank`) and the whole slate flow (`Slates.page`: rank,
   record the impression, look up the assets), `--calls` each;
5. the rest of the app at the size (`--ops`, in process on the warm data dir): a like on each of `--calls` slates
   (the write path), 20 label pairs made and labelled (the queue), a gated retrain of the default model (its
   estimate before, what each step took, the gate's decision) and a sync of the whole store to a local sink.

Prints one JSON line per step and a summary with the issue's targets (25k: first page <= 15 min cold and <= 60 s
warm, peak RSS <= 6 GB, /recommend p95 <= 300 ms; 1M: <= 15 min cold, <= 16 GB, top-20 p99 <= 20 ms in
process, /recommend p95 <= 300 ms).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_app import ROOT, HttpApiClient, _env, _free_port, _percentile, _stop

TARGETS = {"25k": {"cold_s": 900, "warm_s": 60, "rss_gb": 6, "api_p95_ms": 300},
           "1m": {"cold_s": 900, "warm_s": 60, "rss_gb": 16, "api_p95_ms": 300, "top20_p99_ms": 20}}


def _users(dataset: str, n: int, seed: int = 0) -> list[str]:
    """`n` dataset users with at least one interaction (read from the catalogue's own files, cheaply)."""
    from recommenders.data import load_dataset

    ds = load_dataset(dataset, Path("/tmp"))
    users = ds.interactions["user_id"].astype(str).unique()
    rng = random.Random(seed)
    return [str(users[rng.randrange(len(users))]) for _ in range(n)]


def _start(dataset: str, data_dir: Path, tag: str) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    env = _env(data_dir, port)
    env.update(VITRINE_DATASET=dataset, VITRINE_EXTRA_MODELS="pop")
    env.pop("VITRINE_MODEL", None)
    log_path, rss_path = data_dir / f"app-{tag}.log", data_dir / f"app-{tag}.time"
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(rss_path), sys.executable, "-m", "app"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/", log_path


def _first_page(proc: subprocess.Popen, url: str, user: str, timeout: float, started: float) -> float:
    """Seconds from `started` until /recommend answers a page for `user`."""
    client = None
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before its first page")
        try:
            client = client or HttpApiClient(url)
            page = client.predict(user, "", 10, False, api_name="recommend")
            if page["items"]:
                return time.perf_counter() - started
        except Exception:  # noqa: BLE001 - not serving yet
            client = None
        time.sleep(0.5)
    raise TimeoutError(f"no first page within {timeout} s")


def _peak_rss_gb(proc: subprocess.Popen) -> float | None:
    """The app's peak resident set so far (VmHWM of the Python process `/usr/bin/time` runs), in GB."""
    try:
        child = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0]
        found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{child}/status").read_text())
    except (OSError, IndexError):
        return None
    return round(int(found.group(1)) * 1024 / 1e9, 2) if found else None


def _steps(log_path: Path) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"start-up: ([a-z ]+) ([0-9.]+) s", log_path.read_text())}


def _notes(log_path: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"start-up note: (default model [^\n]+)", log_path.read_text())]


def _run(dataset: str, data_dir: Path, tag: str, user: str, timeout: float, calls: int, users: list[str]) -> dict:
    started = time.perf_counter()
    proc, url, log_path = _start(dataset, data_dir, tag)
    out = {"bench": "scale_app." + tag, "dataset": dataset}
    try:
        out["first_page_s"] = round(_first_page(proc, url, user, timeout, started), 1)
        if calls:
            client, lat = HttpApiClient(url), []
            for u in users[:calls]:
                t = time.perf_counter()
                client.predict(u, "", 10, False, api_name="recommend")
                lat.append(1000 * (time.perf_counter() - t))
            out["api_recommend_ms"] = {"p50": round(statistics.median(lat), 1), "p95": round(_percentile(lat, 95), 1),
                                       "p99": round(_percentile(lat, 99), 1), "calls": len(lat)}
        out["peak_rss_gb"] = _peak_rss_gb(proc)  # start-up and the calls above included
    finally:
        _stop(proc)
    out["startup_steps_s"] = _steps(log_path)
    out["choice"] = _notes(log_path)[:1]
    return out


def _services(dataset: str, data_dir: Path):
    """The app's services on the warm data dir, in this process (fallback generators, torch on one thread)."""
    import os

    from app.serving.services import build_services
    from app.settings import load_settings

    os.environ.update(VITRINE_DATA_DIR=str(data_dir), VITRINE_DATASET=dataset, VITRINE_EXTRA_MODELS="pop",
                      VITRINE_COVER_MODEL="none", VITRINE_CAPTION_MODEL="none")
    import torch

    torch.set_num_threads(1)
    return build_services(load_settings(), say=lambda m: None)


def _in_process(dataset: str, data_dir: Path, calls: int, users: list[str]) -> dict:
    svc = _services(dataset, data_dir)
    try:
        name = svc.ranking.default_model
        top, page = [], []
        for u in users[:calls]:
            t = time.perf_counter()
            svc.ranking.rank(name, u, 20)
            top.append(1000 * (time.perf_counter() - t))
        visits = [svc.events.visitor(u) for u in users[:calls]]
        choice = svc.ranking.parse("")
        for v in visits:
            t = time.perf_counter()
            svc.slates.page(v, choice, 10, seed=0, tab="bench")
            page.append(1000 * (time.perf_counter() - t))
    finally:
        svc.close()

    return {"bench": "scale_app.in_process", "dataset": dataset, "model": name, "top20_ms": _stats(top),
            "slate_page_ms": _stats(page)}


def _ops(dataset: str, data_dir: Path, calls: int, users: list[str]) -> dict:
    from app.serving.sync_runner import SyncRunner

    svc = _services(dataset, data_dir)
    out: dict = {"bench": "scale_app.ops", "dataset": dataset, "model": svc.ranking.default_model}
    try:
        choice, likes = svc.ranking.parse(""), []
        for u in users[:calls]:
            page = svc.slates.page(svc.events.visitor(u), choice, 10, seed=1, tab="bench")
            t = time.perf_counter()
            svc.events.record_feedback(u, page.item_ids[0], "like", page.impression_id)
            likes.append(1000 * (time.perf_counter() - t))
        out["like_ms"] = _stats(likes)
        t = time.perf_counter()
        made = svc.labeling.make_pairs(20)
        out["make_pairs"] = {"pairs": made, "seconds": round(time.perf_counter() - t, 2)}
        annotator, labels = svc.labeling.sign_in("bench-annotator"), []
        while (pair := svc.labeling.next_pair(annotator)) is not None and len(labels) < 20:
            t = time.perf_counter()
            svc.labeling.record_label(annotator, pair["pair_id"], "A")
            labels.append(1000 * (time.perf_counter() - t))
        out["label_ms"] = _stats(labels)
        from app.learning.retrain import RetrainBudgetError

        t = time.perf_counter()
        try:
            result = svc.retrain(out["model"])
        except RetrainBudgetError as exc:  # refused before anything was fitted: what the admin would read
            out["retrain"] = {"wall_s": round(time.perf_counter() - t, 1), "refused": str(exc)}
        else:
            out["retrain"] = {"wall_s": round(time.perf_counter() - t, 1), "timing": result.timing(),
                              "promoted": result.promoted, "reason": result.reason}
        sink = data_dir / "bench-sink"
        shutil.rmtree(sink, ignore_errors=True)
        runner = SyncRunner(str(sink), 3600, svc.events.Session, svc.events.ReadSession)
        t = time.perf_counter()
        ok = runner.sync_now()
        out["sync"] = {"ok": ok, "seconds": round(time.perf_counter() - t, 2), "rows": runner.status().rows_shipped,
                       "error": runner.status().last_error}
        runner.stop()
    finally:
        svc.close()
    return out


def _stats(values: list[float]) -> dict:
    return {"p50": round(statistics.median(values), 2), "p95": round(_percentile(values, 95), 2),
            "p99": round(_percentile(values, 99), 2), "calls": len(values)} if values else {"calls": 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale_app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a bring-your-own or MMRec folder")
    parser.add_argument("--data-dir", type=Path, required=True, help="the app's data dir (wiped first)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir: no cold run")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds a start may take")
    parser.add_argument("--in-process", action="store_true", help="only the in-process latencies (warm data dir)")
    parser.add_argument("--ops", action="store_true", help="only likes, label pairs, a retrain, a sync (warm data dir)")
    args = parser.parse_args(argv)
    users = _users(args.dataset, args.calls + 1)
    if args.ops:
        print(json.dumps(_ops(args.dataset, args.data_dir, args.calls, users[1:])), flush=True)
        return 0
    if args.in_process:
        print(json.dumps(_in_process(args.dataset, args.data_dir, args.calls, users[1:])), flush=True)
        return 0
    if not args.keep and args.data_dir.exists():
        shutil.rmtree(args.data_dir)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    runs = [] if args.keep else [_run(args.dataset, args.data_dir, "cold", users[0], args.timeout, 0, [])]
    runs.append(_run(args.dataset, args.data_dir, "warm", users[0], args.timeout, args.calls, users[1:]))
    for run in runs:
        print(json.dumps(run), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
