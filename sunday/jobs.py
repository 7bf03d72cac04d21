"""What the job entrypoints (``train_jobs/``, ``tune/``) share: the simulation they train on, ``--params`` files,
and the checks of the common training flags."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sunday.errors import SundayError


def ensure_simulation(settings, name: str, events: int, seed: int) -> None:
    """Simulate ``events`` events as ``name`` and build its feature platform, unless that simulation exists."""
    from sunday.features.platform import build_platform, simulation_path

    try:
        simulation_path(settings, name)
        return
    except SundayError:
        pass
    from sunday.data.pipeline import run_simulation

    print(f"simulation '{name}' not found: simulating {events:,} events and building its features")
    run_simulation(settings, events=events, seed=seed, engine="ray", name=name)
    build_platform(settings, sim_name=name, engine="ray", accept_drift=True)


def read_params(path: Path | None) -> dict[str, Any]:
    """The JSON object of a ``--params`` file (e.g. a sweep's best settings); {} without one."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise SundayError(f"--params: no such file {path}")
    try:
        params = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SundayError(f"--params: {path} is not JSON ({exc})") from None
    if not isinstance(params, dict):
        raise SundayError(f"--params: {path} must hold a JSON object of settings")
    return params


def settings_from(cls: type, params: dict[str, Any], what: str) -> Any:
    """``cls(**params)`` for a settings dataclass, refusing unknown keys with a SundayError that names them and the
    known ones (``what``: e.g. "priority" in "unknown priority setting(s) ...")."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(params) - known)
    if unknown:
        raise SundayError(f"unknown {what} setting(s) {unknown}; known: {', '.join(sorted(known))}")
    return cls(**params)


def check_ranges(obj: Any, checks: dict[str, bool], what: str) -> None:
    """SundayError naming the first setting of ``obj`` whose check is False (``checks``: name -> in range)."""
    for name, ok in checks.items():
        if not ok:
            raise SundayError(f"{what} setting {name!r} is out of range: {getattr(obj, name)!r}")


def check_training_flags(profile: str, profiles: Iterable[str], trainer: str, holdout: float, num_workers: int,
                         zero_stage: int) -> None:
    """The flags every training job has: SundayError naming the flag."""
    profiles = list(profiles)
    if profile not in profiles:
        raise SundayError(f"--profile must be one of {', '.join(profiles)}, got {profile!r}")
    if trainer not in ("ray", "local"):
        raise SundayError(f"--trainer must be 'ray' or 'local', got {trainer!r}")
    if not 0 < holdout < 1:
        raise SundayError(f"--holdout must be between 0 and 1, got {holdout}")
    if num_workers < 1:
        raise SundayError(f"--num-workers must be at least 1, got {num_workers}")
    if zero_stage not in (0, 1, 2, 3):
        raise SundayError(f"--zero-stage must be 0, 1, 2 or 3, got {zero_stage}")


def write_result(path: Path | None, result: Any) -> None:
    """A training job's ``--json`` file: holdout metrics, MLflow run, registered version, promotion, timings."""
    if path is None:
        return
    promotion = None if result.promotion is None else result.promotion.line()
    Path(path).write_text(json.dumps({"metrics": result.metrics, "run_id": result.run_id, "version": result.version,
                                      "promotion": promotion, "seconds": result.seconds}, indent=2, default=str))


# -- the tabular jobs on a simulation (train_jobs/priority.py, workload.py) ----------------------------------------

@dataclass
class JobResult:
    """What a tabular job's ``train_and_register`` returns (``sunday.models.priority.job``, ``workload.job``)."""

    metrics: dict[str, float]
    run_id: str | None
    version: str | None
    promotion: Any
    model_dir: Path
    rows: list[dict[str, Any]]
    example: dict[str, Any]
    seconds: dict[str, float]
    holdout: Any = None  # what the gate re-scores a model on (the job's holdout frame(s))


def sim_job_parser(description: str, params_help: str, fraction_help: str) -> argparse.ArgumentParser:
    """The flags of a job that trains on a simulation with a time split: --sim, --events, --train-fraction,
    --params, --no-register, --seed, --json."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--sim", default="demo", help="simulation name under the state folder (default: demo)")
    p.add_argument("--events", type=int, default=200_000, help="events to simulate when --sim does not exist")
    p.add_argument("--train-fraction", type=float, default=0.7, help=fraction_help)
    p.add_argument("--params", type=Path, help=params_help)
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the result here")
    return p


def sim_job_config(args: argparse.Namespace, config_cls: type, what: str):
    """``(settings, config)`` of such a job: the flags checked, ``--params`` read (``seed`` belongs to ``--seed``)
    into ``config_cls.from_dict``, the simulation made when it does not exist."""
    from sunday.settings import get_settings

    if not 0 < args.train_fraction < 1:
        raise SundayError(f"--train-fraction must be between 0 and 1, got {args.train_fraction}")
    settings = get_settings().ensure_dirs()
    params = read_params(args.params)
    if "seed" in params:
        raise SundayError(f"{what} setting 'seed' is set by the job's --seed flag, not --params")
    config = config_cls.from_dict({**params, "seed": args.seed})
    ensure_simulation(settings, args.sim, args.events, args.seed)
    return settings, config
