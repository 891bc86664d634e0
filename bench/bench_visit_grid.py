"""Choosing the within-visit learning's defaults (`recommenders.visit.VisitLearning`) on the learning-loop simulator.

    python -m bench.bench_visit_grid                                   # the default grid on seeds 10-33
    python -m bench.bench_visit_grid --seeds 10-33 --grid mix=0.9 neighbours=400 degree_power=0,0.25,0.5

Every setting plays the visit arm of `app.simulate.learning_loop` (`visit_grid`: the same visitors, draws and
click model as `python -m app.simulate --rounds 5`, one model fit per seed, no retraining) on seeds that the
reported figures (seeds 0-3, BENCHMARKS.md) never use. Printed: per setting, the cumulative likes per visitor
over static (mean over seeds of each seed's percentage, and the worst seed), next to fold-in alone; `--json`
writes every seed's figures. The model is the one the simulator serves by default (the app's default), unless
`--model` names one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

DEFAULT_GRID = ("mix=0.5,0.75,0.9", "neighbours=100,400", "skip_weight=0,0.15,0.3")


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out:
        raise argparse.ArgumentTypeError(f"--seeds: expected e.g. 10-33 or 1,2,5, got {text!r}")
    return out


def settings_from(grid: list[str]):
    """The product of `name=v1,v2` axes as VisitLearning settings (the other fields at their defaults)."""
    from recommenders.visit import DEFAULT_VISIT, VisitLearning

    known = {f.name for f in fields(VisitLearning)}
    axes = []
    for axis in grid:
        name, _, values = axis.partition("=")
        if name not in known or not values:
            raise ValueError(f"--grid: expected NAME=V1,V2 with NAME one of {sorted(known)}, got {axis!r}")
        cast = int if name == "neighbours" else float
        axes.append([(name, cast(v)) for v in values.split(",")])
    return [VisitLearning(**{**asdict(DEFAULT_VISIT), **dict(combo)}) for combo in itertools.product(*axes)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_visit_grid", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=_seeds, default=_seeds("10-33"))
    parser.add_argument("--grid", nargs="+", default=list(DEFAULT_GRID), metavar="NAME=V1,V2")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default=None, help="default: what the app serves")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        grid = settings_from(args.grid)
    except ValueError as exc:
        parser.error(str(exc))
    import torch

    from app.settings import load_settings
    from app.simulate.cli import _served_model
    from app.simulate.learning_loop import LoopConfig, visit_grid
    from recommenders.data import load_dataset

    torch.set_num_threads(1)
    settings = load_settings()
    dataset = load_dataset(settings.dataset, settings.data_dir)
    model, features = _served_model(settings, dataset, args.model)
    rows = []
    start = time.perf_counter()
    for seed in args.seeds:
        config = LoopConfig(users=args.users, rounds=args.rounds, retrain=False, ips=False, model=model, seed=seed)
        got = visit_grid(dataset, config, grid, features=features)
        rows.append({"seed": seed, **got})
        print(f"seed {seed}: static {got['static']:.2f} fold-in {got['fold-in']:.2f} visit "
              + " ".join(f"{v:.2f}" for v in got["visit"]) + f" ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr, flush=True)
    static = np.array([r["static"] for r in rows])
    fold = 100 * (np.array([r["fold-in"] for r in rows]) / static - 1)
    visit = 100 * (np.array([r["visit"] for r in rows]) / static[:, None] - 1)  # (seeds, settings)
    print(f"model {model}, seeds {args.seeds[0]}..{args.seeds[-1]} ({len(rows)}), {args.users} visitors, "
          f"{args.rounds} rounds: cumulative likes over static, mean of the seeds' % [worst seed]")
    print(f"  fold-in alone: {fold.mean():+.1f}% [{fold.min():+.1f}%]")
    order = np.argsort(-visit.mean(0), kind="stable")
    for j in order:
        v = grid[j]
        print(f"  mix {v.mix:<5g} neighbours {v.neighbours:<5d} skip_weight {v.skip_weight:<5g} "
              f"dislike_weight {v.dislike_weight:<4g} degree_power {v.degree_power:<5g}: "
              f"{visit[:, j].mean():+.1f}% [{visit[:, j].min():+.1f}%]")
    if args.json:
        args.json.write_text(json.dumps({"model": model, "grid": [asdict(v) for v in grid], "seeds": rows},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
