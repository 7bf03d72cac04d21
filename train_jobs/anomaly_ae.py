"""Train the LSTM autoencoder anomaly detector on NAB's normal history, log it to MLflow, register it and gate it.

    python train_jobs/anomaly_ae.py [--epochs 40] [--num-workers 2] [--use-gpu] [--max-windows 50000] [--no-ray]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/anomaly_ae.py

Data: the NAB corpus (``<data_dir>/nab``, ``SUNDAY_DATA_DIR``), only the probationary first 15% of each series
(min(floor(0.15 n), 750) points: NAB's own unscored warm-up, taken as normal history). A ``--holdout`` share of the
series is held out; the reconstruction MSE of their normal windows (``val_mse``, lower is better) gates the
``champion`` alias of the registered model ``anomaly_lstm_ae`` (``challenger`` always; the first version becomes
champion). Training: Ray Train ``TorchTrainer`` DDP workers (gloo on CPU, NCCL with ``--use-gpu``), or in process
with ``--no-ray``. A job submitted with ``--working-dir`` runs in a copy of the code, so pass the state folder's
absolute path as above.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 40)")
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers")
    p.add_argument("--use-gpu", action="store_true", help="Ray Train workers on GPUs (one each, NCCL)")
    p.add_argument("--max-windows", type=int, default=None, help="training windows at most (default 50000)")
    p.add_argument("--no-ray", action="store_true", help="train in process instead of on Ray Train workers")
    p.add_argument("--holdout", type=float, default=0.1, help="share of the series held out for the gate")
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import write_result
    from sunday.models.anomaly.lstm_ae import AeTrainConfig
    from sunday.models.anomaly.lstm_ae_mlflow import AeJobConfig, train_and_register
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        flags = {"epochs": args.epochs, "max_windows": args.max_windows, "seed": args.seed}
        model = AeTrainConfig(**{k: v for k, v in flags.items() if v is not None})
        job = AeJobConfig(model=model, use_ray=not args.no_ray, num_workers=args.num_workers,
                          use_gpu=args.use_gpu, holdout=args.holdout, register=not args.no_register)
        result = train_and_register(settings, job)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m, s = result.metrics, result.seconds
    print(f"final training loss {m['final_train_loss']:.4f}; held-out series ({result.n_holdout_series}) "
          f"reconstruction MSE {m['val_mse']:.4f}; time: data {s['data']:.1f} s, fit {s['fit']:.1f} s "
          f"({'in process' if args.no_ray else f'Ray Train, {args.num_workers} workers'})")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    else:
        print(f"model saved to {result.model_dir} (not registered)")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
