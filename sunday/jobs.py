"""What the job entrypoints (``train_jobs/``, ``tune/``) share: the simulation they train on, ``--params`` files,
and the checks of the common training flags."""

from __future__ import annotations

import json
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
