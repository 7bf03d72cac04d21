"""Fine-tune the QMSum passage reranker (a MiniLM CrossEncoder), log it to MLflow, register it and gate the champion.

    python train_jobs/reranker.py [--epochs 1] [--max-pairs 6000] [--negatives 5] [--loss bce|listwise] ...
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/reranker.py

Data: QMSum *train* (``<data_dir>/qmsum``, ``SUNDAY_DATA_DIR``); a ``--holdout`` share of its meetings is held out
for the checkpoint choice and the champion gate (QMSum val stays the evaluation's: ``sunday eval qmsum-search``).
The registered model is ``qmsum_reranker``: ``challenger`` always, ``champion`` when its held-out MRR (dense top
``--holdout-depth`` reranked) beats the current champion re-scored on the same held-out queries. A job submitted
with ``--working-dir`` runs in a copy of the code, so pass the state folder's absolute path as above.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 1)")
    p.add_argument("--max-pairs", type=int, default=None, help="training pairs at most (default 1500)")
    p.add_argument("--negatives", type=int, default=None, help="negatives per positive (default 5)")
    p.add_argument("--loss", default=None, choices=["bce", "listwise"], help="training loss (default bce)")
    p.add_argument("--holdout", type=float, default=0.1, help="share of the train meetings held out")
    p.add_argument("--holdout-depth", type=int, default=20, help="held-out scoring reranks the dense top N")
    p.add_argument("--holdout-queries", type=int, default=30, help="held-out queries scored at most")
    p.add_argument("--no-before", action="store_true", help="skip scoring the untrained start on the holdout")
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--params", type=Path, help="RerankerConfig settings JSON (flags given here win)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import read_params, write_result
    from sunday.nlp.reranker import RerankerConfig
    from sunday.nlp.reranker_mlflow import RerankerJobConfig, train_and_register
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        values = read_params(args.params)
        flags = {"epochs": args.epochs, "max_pairs": args.max_pairs, "negatives": args.negatives,
                 "loss": args.loss, "seed": args.seed}
        values.update({k: v for k, v in flags.items() if v is not None})
        try:
            model = RerankerConfig.from_dict(values)
        except ValueError as exc:
            raise SundayError(str(exc)) from None
        job = RerankerJobConfig(holdout=args.holdout, holdout_depth=args.holdout_depth,
                                holdout_queries=args.holdout_queries, score_before=not args.no_before,
                                register=not args.no_register, model=model)
        result = train_and_register(settings, job, progress=not args.no_progress)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"held-out ({result.n_holdout_meetings} train meetings, {int(m['n_holdout_queries'])} queries; dense top "
          f"{args.holdout_depth} reranked):")
    print(f"  {'':22} {'R@5':>6} {'R@10':>6} {'MRR':>6}")
    for label, prefix in (("dense", "dense"), ("untrained start", "before"), ("dense + reranker", "rerank")):
        if f"{prefix}_MRR" in m:
            print(f"  {label:22} {m[f'{prefix}_R@5']:6.3f} {m[f'{prefix}_R@10']:6.3f} {m[f'{prefix}_MRR']:6.3f}")
    s = result.seconds
    print(f"  {result.n_pairs:,} training pairs from {result.n_train_meetings} meetings; time: pairs "
          f"{s.get('pairs', 0):.0f} s, fit {s.get('fit', 0):.0f} s")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
