"""`python -m app.simulate`: the command line of the three simulations, and the setup they share.

    python -m app.simulate --users 50 --days 7                          # traffic (app.simulate.traffic)
    python -m app.simulate --rounds 5 --users 200 --retrain --json loop.json   # the learning loop (learning_loop)
    python -m app.simulate --reward --labels 2000 --json out.json       # the generation loop (generation_loop)
    python -m app.simulate --reward --captions real --labels 1000 --trials 100 --json real.json   # real captions
    python -m app.simulate --reward --pair-selection random,active --seeds 0,1,2 --json sel.json   # labeling_loop
    python -m app.simulate --reward --quality --labels 2000 --json quality.json                      # labeling_loop

Written once for the three: torch on one thread, the settings (`app.settings`: VITRINE_DATASET,
VITRINE_DATA_DIR, DATABASE_URL), the dataset, the database (`--database-url`, else DATABASE_URL, else the app's
SQLite file; migrated first; the learning loop and the pair-selection arms keep their own stores in `--workdir`),
progress on stderr, the
report as JSON (`--json OUT`, NaN written as null) and the summary on stdout. Bad arguments exit with status 2
and a message naming the argument.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from app.simulate import generation_loop, labeling_loop, learning_loop, traffic
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
    parser.add_argument("--retrain", action="store_true",
                        help="run the treatment arm (fold-in + learning within the visit + gated retraining)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="the served model (default: the one `python -m app` serves "
                        "with these settings, its item features computed as the app computes them)")
    parser.add_argument("--tolerance", type=float, default=0.0)
    parser.add_argument("--no-ips", action="store_true", help="skip the IPS check")
    parser.add_argument("--min-ratings", type=int, default=40, help="visitors have at least this many ratings")
    parser.add_argument("--ips-candidates", default="itemknn,pop", help="second models the IPS check estimates")
    parser.add_argument("--ips-replicates", type=int, default=10, help="logged slates per visitor for IPS")
    parser.add_argument("--workdir", type=Path, default=None, help="store + artifacts (default: a temporary dir)")
    return _parsed(parser, argv, lambda a: learning_loop.LoopConfig(
        users=a.users, rounds=a.rounds, retrain=a.retrain, seed=a.seed, tolerance=a.tolerance,
        **({"model": a.model} if a.model else {}),
        ips=not a.no_ips, min_ratings=a.min_ratings, ips_replicates=a.ips_replicates,
        ips_candidates=tuple(c.strip() for c in a.ips_candidates.split(",") if c.strip())))


def parse_reward(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Any]:
    parser = argparse.ArgumentParser(prog="python -m app.simulate --reward",
                                     description=generation_loop.__doc__.split("\n\n")[0])
    parser.add_argument("--reward", action="store_true", help=argparse.SUPPRESS)  # the flag that chose this parser
    parser.add_argument("--annotators", default=None,
                        help="comma-separated name:accuracy, default careful:0.95,average:0.8,sloppy:0.6 (with "
                             "--quality: ...,spammer:0.5,adversary:0.2)")
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--checkpoints", default=None, help="label counts to train at, default 100,500,LABELS")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--best-of", type=int, default=4)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--holdout", type=int, default=400, help="labels after the last checkpoint, for testing")
    parser.add_argument("--eval-pairs", type=int, default=None, help="fresh pairs judged against the truth "
                        "(default 600; 2000 with --pair-selection or --quality)")
    parser.add_argument("--encoder", default="minilm", choices=("minilm", "hashing"))
    parser.add_argument("--captions", default="template", choices=generation_loop.CAPTION_SOURCES,
                        help="caption candidates: a template with traits switched on/off, or the real caption model's "
                             "(traits measured from the text)")
    parser.add_argument("--caption-model", default=None, help="--captions real: the model (default: "
                        "VITRINE_CAPTION_MODEL, else the app's default)")
    parser.add_argument("--caption-threads", type=int, default=1, help="--captions real: the model's CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the app's SQLite file")
    study = parser.add_argument_group("labeling studies (app.simulate.labeling_loop)")
    study.add_argument("--pair-selection", default=None, metavar="ARMS",
                       help="compare pair selections from a pool of waiting pairs: random,active (one store per arm "
                            "and seed in --workdir); labels needed to reach --target")
    study.add_argument("--quality", action="store_true",
                       help="annotators of mixed quality, gold pairs: reliability-weighted vs unweighted model")
    study.add_argument("--seeds", default=None, help="--pair-selection: comma-separated seeds (default: --seed)")
    study.add_argument("--pool", type=int, default=None, help="waiting pairs recorded first (default 4000; 1500 "
                       "with --quality)")
    study.add_argument("--step", type=int, default=100, help="--pair-selection: labels between retrainings")
    study.add_argument("--target", type=float, default=0.75, help="--pair-selection: truth accuracy to reach")
    study.add_argument("--max-labels", type=int, default=2500, help="--pair-selection: an arm stops here")
    study.add_argument("--full-curves", action="store_true", help="--pair-selection: run every arm to --max-labels")
    study.add_argument("--overlap", type=int, default=None, help="annotators per pair (default 1; 2 with --quality)")
    study.add_argument("--gold", type=int, default=40, help="--quality: pairs with a known answer")
    study.add_argument("--gold-rate", type=float, default=0.1, help="--quality: share of pairs that are gold")
    study.add_argument("--reward-rank", default=None, help="--pair-selection: both arms' preference model with a "
                       "weight matrix of this rank, or 'full' (RewardConfig.rank; default the app's)")
    study.add_argument("--reward-l2", default=None, help="--pair-selection: comma-separated L2 grid of the preference "
                       "model (RewardConfig.l2_grid; default the app's)")
    study.add_argument("--workdir", type=Path, default=None, help="--pair-selection: the arms' stores "
                       "(default: a temporary dir)")

    def make(a: argparse.Namespace) -> Any:
        if a.pair_selection and a.quality:
            raise ValueError("--pair-selection and --quality are two experiments: give one")
        if a.pair_selection:
            return [labeling_loop.SelectionSimConfig(
                arms=tuple(x.strip() for x in a.pair_selection.split(",") if x.strip()), pool=a.pool or 4000,
                max_labels=a.max_labels, step=a.step, target=a.target, stop_at_target=not a.full_curves,
                users=a.users, overlap=a.overlap or 1, eval_pairs=a.eval_pairs or 2000, encoder=a.encoder, seed=seed,
                reward=_reward_config(a.reward_rank, a.reward_l2),
                **({"annotators": parse_annotators(a.annotators)} if a.annotators else {}))
                for seed in _seeds(a.seeds, a.seed)]
        if a.quality:
            return labeling_loop.QualitySimConfig(
                labels=a.labels, pool=a.pool or 1500, gold=a.gold, gold_rate=a.gold_rate, overlap=a.overlap or 2,
                users=a.users, eval_pairs=a.eval_pairs or 2000, encoder=a.encoder, seed=a.seed,
                **({"annotators": parse_annotators(a.annotators)} if a.annotators else {}))
        if a.captions == "real":
            from app.settings import load_settings

            settings = load_settings()
            real = {"caption_model": a.caption_model or settings.caption_model or generation_loop.DEFAULT_MODEL,
                    "caption_runtime": settings.caption_runtime, "caption_threads": a.caption_threads}
        else:
            real = {}
        return generation_loop.RewardSimConfig(
            labels=a.labels, users=a.users, best_of=a.best_of, trials=a.trials, holdout=a.holdout,
            eval_pairs=a.eval_pairs or 600, encoder=a.encoder, seed=a.seed, captions=a.captions, **real,
            checkpoints=(tuple(int(c) for c in a.checkpoints.split(",")) if a.checkpoints else
                         tuple(c for c in (100, 500) if c < a.labels) + (a.labels,)),
            **({"annotators": parse_annotators(a.annotators)} if a.annotators else {}))

    return _parsed(parser, argv, make)


def _reward_config(rank: str | None, l2: str | None) -> Any:
    """--reward-rank (an int or 'full') / --reward-l2 as a RewardConfig, or None (the app's default model) without
    either."""
    if rank is None and l2 is None:
        return None
    from generation.reward import RewardConfig

    fields: dict[str, Any] = {}
    if rank is not None:
        try:
            fields["rank"] = None if rank.strip().lower() == "full" else int(rank)
        except ValueError:
            raise ValueError(f"--reward-rank must be an integer or 'full', got {rank!r}") from None
    if l2 is not None:
        try:
            fields["l2_grid"] = tuple(float(x) for x in l2.split(",") if x.strip())
        except ValueError:
            raise ValueError(f"--reward-l2 must be comma-separated numbers, got {l2!r}") from None
    return RewardConfig(**fields)


def _seeds(text: str | None, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None


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


def _served_model(settings, dataset, model: str | None) -> tuple[str, dict[str, Any] | None]:
    """(model, item features) the learning loop serves: `model` when given, else the one `python -m app` would
    serve with these settings (VITRINE_MODEL, the selection file's best, or what the catalogue's size calls
    for), with the item features the app computes (the same cache)."""
    from app.serving.startup import app_features, default_choice, served_names
    from recommenders.models import FEATURE_MODELS

    notes: list[str] = []
    features = app_features(dataset, settings, _say).arrays if model is None or model in FEATURE_MODELS else {}
    if model is None:
        model = served_names(settings, features, [], notes, default_choice(settings, dataset, features, notes)[0])[0]
        _say(f"sim_loop: serving {model}, the app's default ({'; '.join(notes)})")
    return model, (features or None)


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
            model, features = _served_model(settings, dataset, args.model)
            config = replace(config, model=model)
            report = learning_loop.run_loop(dataset, config, workdir, log=_say, features=features)
    elif mode == REWARD and isinstance(config, list):  # --pair-selection: one store per arm and seed
        with tempfile.TemporaryDirectory(prefix="vitrine-selection-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            report = {"seeds": {}}
            for cfg in config:
                with contextlib.ExitStack() as stack:
                    factories = {arm: stack.enter_context(_database(
                        f"sqlite:///{workdir / f'selection-seed{cfg.seed}-{arm}.db'}")) for arm in cfg.arms}
                    report["seeds"][str(cfg.seed)] = labeling_loop.simulate_selection(
                        factories, dataset, workdir / "assets", cfg, log=_say)
            report["summary"] = labeling_loop.selection_summary(report["seeds"])
    else:
        url = args.database_url or settings.database_url
        with _database(url) as session_factory:
            if mode == TRAFFIC:
                report = traffic.simulate(session_factory, dataset, config, log=_say)
            elif isinstance(config, labeling_loop.QualitySimConfig):
                report = labeling_loop.simulate_quality(session_factory, dataset, settings.data_dir / "assets",
                                                        config, log=_say)
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
    print(f"sim_loop: model {report['config']['model']}, treatment = {report['treatment']}")
    control = report["control"]["rounds"][-1]["cumulative_likes"]
    for name, arm in report["arms"].items():
        r = arm["rounds"][-1]
        over = f", {100 * (r['cumulative_likes'] / control - 1):+.1f}% over static" if control else ""
        print(f"{name:8s} round {r['round']}: like rate {r['like_rate']:.3f}, unrevealed NDCG@10 {r['ndcg@10']:.3f}, "
              f"cumulative likes/visitor {r['cumulative_likes']:.2f}{over}")
    for pair, comp in report["comparisons"].items():
        for metric, c in comp.items():
            print(f"{pair:18s} {metric:22s} {c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]"
                  f"{'' if c['excludes_zero'] else '  (interval includes 0)'}")
    if "ips" in report:
        for name, c in report["ips"]["candidates"].items():
            print(f"IPS {name:28s} truth {c['truth']:.4f}  IPS {c['ips']:.4f}  SNIPS {c['snips']:.4f} "
                  f"[{c['snips_ci'][0]:.4f}, {c['snips_ci'][1]:.4f}]  support {c['support']:.2f}")
    print(f"sim_loop: done in {report['seconds']['total']:.1f} s" + (f", report in {args.json}" if args.json else ""))


def _reward_summary(report: Any, args: argparse.Namespace, config: Any, url: str | None) -> None:
    if isinstance(config, list):
        summary = report["summary"]
        for seed, run in report["seeds"].items():
            arms = ", ".join(f"{arm} {r['labels_to_target'] or 'not reached'}" for arm, r in run["arms"].items())
            print(f"sim-selection seed {seed}: labels to reach truth accuracy {config[0].target}: {arms}")
        means = ", ".join(f"{arm} {v:.0f}" if v is not None else f"{arm} n/a"
                          for arm, v in summary["mean_labels_to_target"].items())
        fewer = summary.get("fewer_labels")
        print(f"sim-selection: mean over {len(report['seeds'])} seeds: {means}"
              + (f"; active needs {fewer:.0%} fewer labels" if fewer is not None else ""))
        return
    if isinstance(config, labeling_loop.QualitySimConfig):
        print(f"sim-quality: done in {report['seconds']:.1f} s into {url}: {report['labels']:,} labels; truth accuracy "
              f"reliability-weighted {report['weighted']['truth_accuracy']:.3f} vs unweighted "
              f"{report['unweighted']['truth_accuracy']:.3f} ({report['gain_points']:+.1f} points); flagged: "
              f"{', '.join(a['name'] for a in report['annotators'] if a['flagged']) or 'none'}")
        return
    curve = ", ".join(f"{p['labels']}: {p['truth_accuracy']:.3f} (captions {p['truth_accuracy_by_kind']['caption']:.3f})"
                      for p in report.learning_curve)
    made = (f"; {report.captions['made']:,} real captions, {report.captions['fallback']:,} the template"
            if config.captions == "real" else "")
    print(f"sim-reward: done in {report.seconds:.1f} s into {url}: {report.labels:,} labels, {report.assets:,} assets; "
          f"accuracy vs truth {curve}; best-of-{config.best_of} cover win rate "
          f"{report.best_of_n['cover']['win_rate']:.1%}, caption {report.best_of_n['caption']['win_rate']:.1%}; "
          f"policy regret {report.policy['regret_mean_first_10pct']:.3f} -> "
          f"{report.policy['regret_mean_last_10pct']:.3f}"
          f" (random {report.policy['random_policy_regret_mean']:.3f}){made}")


SUMMARIES = {TRAFFIC: _traffic_summary, LOOP: _loop_summary, REWARD: _reward_summary}
