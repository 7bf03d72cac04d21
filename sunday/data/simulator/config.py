"""Simulation settings and the deterministic plan that splits the world into workspaces and partitions.

The unit of generation is the *workspace*: workspace ``i`` draws every random number from its own generator,
seeded by ``SeedSequence(seed, spawn_key=(1, i))``. Partitions are only contiguous groups of workspaces, so the
output is the same whatever the engine and however many partitions the work is split into.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from sunday.errors import SundayError

#: the skill vocabulary the simulator knows (each has its own ticket vocabulary, see ``text.py``)
SKILLS: tuple[str, ...] = (
    "backend", "frontend", "data", "devops", "design", "qa", "mobile", "docs", "security", "ml",
)

#: average number of observable events one task produces over the simulated period (calibrated on the model
#: in ``events.py``; used to turn an event budget into a number of tasks)
EVENTS_PER_TASK = 9.9

#: events per partition when the caller does not choose the number of partitions
DEFAULT_PARTITION_EVENTS = 250_000

_FLAGS = {"n_events": "--events"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _int_field(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SundayError(f"{_flag(name)} must be an integer, got {value!r}")
    if value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise SundayError(f"{_flag(name)} must be {what}, got {value}")
    if maximum is not None and value > maximum:
        raise SundayError(f"{_flag(name)} must be at most {maximum}, got {value}")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Same config (and seed) -> identical tables, whatever the engine."""

    n_events: int
    seed: int = 0
    start: datetime = datetime(2024, 1, 1)
    days: int = 365
    users_per_team: int = 6
    events_per_workspace: int = 40_000
    anomaly_rate: float = 1.0
    skills: tuple[str, ...] = field(default=SKILLS)

    def __post_init__(self) -> None:
        _int_field("n_events", self.n_events, 1)
        _int_field("seed", self.seed, 0)
        _int_field("days", self.days, 30, 3650)
        _int_field("users_per_team", self.users_per_team, 2, 50)
        _int_field("events_per_workspace", self.events_per_workspace, 100, 1_000_000)
        if isinstance(self.anomaly_rate, bool) or not isinstance(self.anomaly_rate, numbers.Real) \
                or not math.isfinite(self.anomaly_rate) or not 0 <= self.anomaly_rate <= 10:
            raise SundayError(f"--anomaly-rate must be a number between 0 and 10, got {self.anomaly_rate!r}")
        if not isinstance(self.start, datetime):
            raise SundayError(f"--start must be a datetime, got {self.start!r}")
        if self.start.tzinfo is not None:  # timestamps are naive UTC
            object.__setattr__(self, "start", self.start.astimezone(timezone.utc).replace(tzinfo=None))
        skills = tuple(self.skills)
        unknown = [s for s in skills if s not in SKILLS]
        if unknown:
            raise SundayError(f"--skills: unknown skill {unknown[0]!r}; known: {', '.join(SKILLS)}")
        if len(set(skills)) != len(skills) or len(skills) < 2:
            raise SundayError(f"--skills must name at least 2 distinct skills, got {list(skills)}")
        object.__setattr__(self, "skills", skills)
        object.__setattr__(self, "n_events", int(self.n_events))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "anomaly_rate", float(self.anomaly_rate))

    # -- derived --------------------------------------------------------------------------------------------
    @property
    def horizon_hours(self) -> float:
        return self.days * 24.0

    @property
    def end(self) -> datetime:
        """The observation cut-off: nothing after it is in the observable log."""
        from datetime import timedelta

        return self.start + timedelta(days=self.days)

    @property
    def start_us(self) -> int:
        epoch = datetime(1970, 1, 1)
        delta = self.start - epoch
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["skills"] = list(self.skills)
        return d

    def workspace_seed(self, index: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(1, int(index)))


@dataclass(frozen=True)
class Plan:
    """How the event budget is shared among workspaces, and how workspaces are grouped into partitions."""

    workspace_events: tuple[int, ...]
    partitions: tuple[tuple[int, int], ...]  # [lo, hi) workspace index ranges

    @property
    def n_workspaces(self) -> int:
        return len(self.workspace_events)

    @property
    def n_partitions(self) -> int:
        return len(self.partitions)


def make_plan(config: SimConfig, partitions: int | None = None) -> Plan:
    """Split ``config.n_events`` over workspaces of varied size, then group them into ``partitions``.

    Workspace sizes depend only on the config; ``partitions`` only changes the grouping.
    """
    n_ws = max(1, round(config.n_events / config.events_per_workspace))
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0,)))
    weights = rng.lognormal(0.0, 0.45, n_ws)
    share = weights / weights.sum() * config.n_events
    sizes = np.floor(share).astype(np.int64)
    rest = config.n_events - int(sizes.sum())
    if rest:
        sizes[np.argsort(-(share - sizes), kind="stable")[:rest]] += 1
    if partitions is None:
        partitions = math.ceil(config.n_events / DEFAULT_PARTITION_EVENTS)
    else:
        _int_field("partitions", partitions, 1)
    n_parts = max(1, min(int(partitions), n_ws))
    # contiguous groups with roughly equal event counts, each holding at least one workspace
    cum = np.cumsum(sizes)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_parts) / n_parts, side="left") + 1
    bounds = [0]
    for i, cut in enumerate(cuts, start=1):
        bounds.append(int(min(max(cut, bounds[-1] + 1), n_ws - (n_parts - i))))
    bounds.append(n_ws)
    parts = tuple((a, b) for a, b in zip(bounds[:-1], bounds[1:]))
    return Plan(tuple(int(s) for s in sizes), parts)
