"""`python -m app.simulate`: the command line of the three simulations, and the setup they share.

    python -m app.simulate --users 50 --days 7                          # traffic (app.simulate.traffic)
    python -m app.simulate --rounds 5 --users 200 --retrain --json loop.json   # the learning loop (learning_loop)
    python -m app.simulate --reward --labels 2000 --json out.json       # the generation loop (generation_loop)

Written once for the three: torch on one thread, the settings (`app.settings`: VITRINE_DATASET,
VITRINE_DATA_DIR, DATABASE_URL), the dataset, the database (`--database-url`, else DATABASE_URL, else the app's
SQLite file; migrated first; the learning loop keeps its own store in `--workdir`), progress on stderr, the
report as JSON (`--json OUT`, NaN written as null) and the summary on stdout. Bad arguments exit with status 2
and a message naming the argument.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from app.simulate import generation_loop, learning_loop, traffic
from app.simulate.shared import parse_annotators

TRAFFIC, LOOP, REWARD = "traffic", "learning loop", "generation loop"


def mode_of(argv: Sequence[str]) -> str:
    """`--rounds` runs the learning loop, `--reward` the generation loop; anything else is traffic."""
    if any(a == "--rounds" or a.startswith("--rounds=") for a in argv):
        return LOOP
    return REWARD if "--reward" in argv else TRAFFIC


def _parsed(parser: argparse.ArgumentParser, argv: Sequence[str] | None, make_config) -> tuple[Any, Any]:
    """(arguments, the config `make_config` builds from them); a ValueError of the config exits as a usage error."""
    args = parser.parse_args(argv)
    try:
        return args, make_config(args)
    except ValueError as exc:
        parser.error(str(exc))


def parse_traffic(argv: Sequence[str] | None) -> tuple[argparse.Namespace, traffic.SimConfig]:
    parser = argparse.ArgumentParser(prog="python -m app.simulate", description=traffic.__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated visitors (ml-100k users)")
    parser.add_argument("--days", type=int, default=7, help="days of traffic, ending today")
    parser.add_argument("--models", default="ease,pop", help="comma-separated recommenders; the first should win")
    parser.add_argument("--slate", type=int, default=10, help="items per slate")
    parser.add_argument("--sessions-per-day", type=float, default=1.0, help="mean slates per visitor per day")
    parser.add_argument("--interleave", type=float, default=0.3, help="share of interleaved sessions")
    parser.add_argument("--asset-items", type=int, default=40, help="(visitor, item) pairs with generated captions")
    parser.add_argument("--annotators", default=None,
                        help="comma-separated name:accuracy[:bias], default "
                             "ann-careful:0.95,ann-average:0.8,ann-sloppy:0.6:0.4")
    parser.add_argument("--overlap", type=int, default=3, help="annotators per pair")
    parser.add_argument("--no-eval", action="store_true", help="skip the offline evaluation runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the app's SQLite file")
    return _parsed(parser, argv, lambda a: traffic.SimConfig(
        users=a.users, days=a.days, models=tuple(m.strip() for m in a.models.split(",") if m.strip()),
        slate=a.slate, sessions_per_day=a.sessions_per_day, interleave=a.interleave, asset_items=a.asset_items,
        overlap=a.overlap, evaluate=not a.no_eval, seed=a.seed,
        **({"annotators": parse_annotators(a.annotators)} if a.annotators else {})))


def parse_loop(argv: Sequence[str] | None) -> tuple[argparse.Namespace, learning_loop.LoopConfig]:
    parser = argparse.ArgumentParser(prog="python -m app.simulate --rounds R",
                                     description=learning_loop.__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--retrain", action="store_true", help="run the treatment arm (fold-in + gated retraining)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="ease")
    parser.add_argument("--tolerance", type=float, default=0.0)
    parser.add_argument("--no-ips", action="store_true", help="skip the IPS check")
    parser.add_argument("--min-ratings", type=int, default=40, help="visitors have at least this many ratings")
    parser.add_argument("--ips-candidates", default="itemknn,pop", help="second models the IPS check estimates")
    parser.add_argument("--ips-replicates", type=int, default=10, help="logged slates per visitor for IPS")
    parser.add_argument("--workdir", type=Path, default=None, help="store + artifacts (default: a temporary dir)")
    return _parsed(parser, argv, lambda a: learning_loop.LoopConfig(
        users=a.users, rounds=a.rounds, retrain=a.retrain, seed=a.seed, model=a.model, tolerance=a.tolerance,
        ips=not a.no_ips, min_ratings=a.min_ratings, ips_replicates=a.ips_replicates,
        ips_candidates=tuple(c.strip() for c in a.ips_candidates.split(",") if c.strip())))


def parse_reward(argv: Sequence[str] | None) -> tuple[argparse.Namespace, generation_loop.RewardSimConfig]:
    parser = argparse.ArgumentParser(prog="python -m app.simulate --reward",
                                     description=generation_loop.__doc__.split("\n\n")[0])
    parser.add_argument("--reward", action="store_true", help=argparse.SUPPRESS)  # the flag that chose this parser
    parser.add_argument("--annotators", default=None,
                        help="comma-separated name:accuracy, default careful:0.95,average:0.8,sloppy:0.6")
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--checkpoints", default=None, help="label counts to train at, default 100,500,LABELS")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--best-of", type=int, default=4)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--holdout", type=int, default=400, help="labels after the last checkpoint, for testing")
    parser.add_argument("--eval-pairs", type=int, default=600)
    parser.add_argument("--encoder", default="minilm", choices=("minilm", "hashing"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the app's SQLite file")
    return _parsed(parser, argv, lambda a: generation_loop.RewardSimConfig(
        labels=a.labels, users=a.users, best_of=a.best_of, trials=a.trials, holdout=a.holdout,
        eval_pairs=a.eval_pairs, encoder=a.encoder, seed=a.seed,
        checkpoints=(tuple(int(c) for c in a.checkpoints.split(",")) if a.checkpoints else
                     tuple(c for c in (100, 500) if c < a.labels) + (a.labels,)),
        **({"annotators": parse_annotators(a.annotators)} if a.annotators else {})))


PARSERS = {TRAFFIC: parse_traffic, LOOP: parse_loop, REWARD: parse_reward}


@contextlib.contextmanager
def _database(url: str) -> Iterator[Any]:
    """A session factory on the migrated database at `url`; the engine is disposed on the way out."""
    from annotation.db import make_engine, make_session_factory, upgrade

    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _write_json(path: Path, report: Any) -> None:
    from app.learning.retrain import json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    data = json_safe(asdict(report) if is_dataclass(report) else report)  # NaN -> null: valid JSON
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = mode_of(argv)
    args, config = PARSERS[mode](argv)
    import torch

    from app.settings import load_settings
    from recommenders.data import load_dataset

    torch.set_num_threads(1)
    settings = load_settings()
    dataset = load_dataset(settings.dataset, settings.data_dir)
    url = None
    if mode == LOOP:
        with tempfile.TemporaryDirectory(prefix="vitrine-loop-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            report = learning_loop.run_loop(dataset, config, workdir, log=_say)
    else:
        url = args.database_url or settings.database_url
        with _database(url) as session_factory:
            if mode == TRAFFIC:
                report = traffic.simulate(session_factory, dataset, config, log=_say)
            else:
                report = generation_loop.simulate_reward(session_factory, dataset, settings.data_dir / "assets",
                                                         config, log=_say)
    if getattr(args, "json", None):
        _write_json(args.json, report)
    SUMMARIES[mode](report, args, config, url)
    return 0


def _traffic_summary(report: traffic.SimReport, args: argparse.Namespace, config: traffic.SimConfig,
                     url: str) -> None:
    print(f"simulate: done in {report.seconds:.1f} s into {url}: {report.users} users, {report.impressions:,} slates "
          f"({report.interleaved:,} interleaved), {report.feedback:,} feedback events, {report.assets:,} assets, "
          f"{report.pairs:,} pairs, {report.labels:,} labels, {report.eval_runs} evaluation runs")


def _loop_summary(report: dict, args: argparse.Namespace, config: learning_loop.LoopConfig, url: None) -> None:
    for name, arm in report["arms"].items():
        r = arm["rounds"][-1]
        print(f"{name:8s} round {r['round']}: like rate {r['like_rate']:.3f}, unrevealed NDCG@10 {r['ndcg@10']:.3f}, "
              f"cumulative likes/visitor {r['cumulative_likes']:.2f}")
    for pair, comp in report["comparisons"].items():
        for metric, c in comp.items():
            print(f"{pair:18s} {metric:22s} {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]"
                  f"{'' if c['excludes_zero'] else '  (interval includes 0)'}")
    if "ips" in report:
        for name, c in report["ips"]["candidates"].items():
            print(f"IPS {name:28s} truth {c['truth']:.4f}  IPS {c['ips']:.4f}  SNIPS {c['snips']:.4f} "
                  f"[{c['snips_ci'][0]:.4f}, {c['snips_ci'][1]:.4f}]  support {c['support']:.2f}")
    print(f"sim_loop: done in {report['seconds']['total']:.1f} s" + (f", report in {args.json}" if args.json else ""))


def _reward_summary(report: generation_loop.RewardSimReport, args: argparse.Namespace,
                    config: generation_loop.RewardSimConfig, url: str) -> None:
    curve = ", ".join(f"{p['labels']}: {p['truth_accuracy']:.3f}" for p in report.learning_curve)
    print(f"sim-reward: done in {report.seconds:.1f} s into {url}: {report.labels:,} labels, {report.assets:,} assets; "
          f"accuracy vs truth {curve}; best-of-{config.best_of} cover win rate "
          f"{report.best_of_n['cover']['win_rate']:.1%}, caption {report.best_of_n['caption']['win_rate']:.1%}; "
          f"policy regret {report.policy['regret_mean_first_10pct']:.3f} -> "
          f"{report.policy['regret_mean_last_10pct']:.3f}"
          f" (random {report.policy['random_policy_regret_mean']:.3f})")


SUMMARIES = {TRAFFIC: _traffic_summary, LOOP: _loop_summary, REWARD: _reward_summary}
