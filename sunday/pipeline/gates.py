"""The promotion gate: every check with its numbers, pass or fail; promotion only when all pass.

Checks (``challenger`` against the current ``champion``, both scored on the same holdout in the same process):

- ``threshold``: the primary metric reaches ``min_metric`` (at least it when higher is better, at most it when
  lower is better); skipped when there is no threshold;
- ``no_drop``: the primary metric does not get worse than the champion's by more than ``max_drop`` (relative,
  0.02 = 2 %);
- ``latency``: the challenger's predict p99 (ms) on the fixed holdout batch is within ``max_latency_ratio`` of the
  champion's (1.2 = 20 % slower at most). ``latency_slack_ms`` is an absolute tolerance on top (timer noise of
  sub-millisecond calls on a shared machine); 0 makes the check the bare ratio. Both p99s come from
  :func:`p99_pair` (interleaved, the median of five blocks' p99s); the pipeline measures a failing pair once more
  and judges the second measure.

Without a champion (first version) only the threshold applies; the two champion checks are listed as skipped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from sunday.errors import SundayError


@dataclass
class Check:
    name: str
    passed: bool | None  # None: skipped (listed, not counted)
    value: float | None
    limit: float | None
    detail: str

    def line(self) -> str:
        verdict = "skip" if self.passed is None else ("pass" if self.passed else "FAIL")
        return f"{self.name}: {verdict} ({self.detail})"


@dataclass
class GateResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.passed is False]

    def line(self) -> str:
        head = "gate passed" if self.passed else f"gate refused: failed {', '.join(self.failed)}"
        return head + "; " + "; ".join(c.line() for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed, "checks": [asdict(c) for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GateResult":
        return cls([Check(**c) for c in data["checks"]])


@dataclass
class Gate:
    min_metric: float | None = None
    max_drop: float = 0.02
    max_latency_ratio: float = 1.2
    latency_slack_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.min_metric is not None and not math.isfinite(self.min_metric):
            raise SundayError(f"Gate.min_metric must be a finite number, got {self.min_metric}")
        if not 0 <= self.max_drop < 1:
            raise SundayError(f"Gate.max_drop must be in [0, 1) (relative, 0.02 = 2 %), got {self.max_drop}")
        if self.max_latency_ratio < 1:
            raise SundayError(f"Gate.max_latency_ratio must be at least 1, got {self.max_latency_ratio}")
        if self.latency_slack_ms < 0:
            raise SundayError(f"Gate.latency_slack_ms must be >= 0, got {self.latency_slack_ms}")

    def latency_limit(self, champion_p99_ms: float) -> float:
        """The largest challenger p99 (ms) the latency check accepts against ``champion_p99_ms``."""
        return max(champion_p99_ms * self.max_latency_ratio, champion_p99_ms + self.latency_slack_ms)

    def check(self, metric: str, higher_is_better: bool, challenger: float, champion: float | None = None,
              challenger_p99_ms: float | None = None, champion_p99_ms: float | None = None) -> GateResult:
        """The verdict of ``challenger`` (its ``metric`` value) against ``champion`` (None: no champion yet)."""
        checks = []
        ok_value = challenger is not None and math.isfinite(challenger)
        if self.min_metric is None:
            checks.append(Check("threshold", None, challenger, None, f"{metric}={challenger:.4f}, no threshold"))
        else:
            op = ">=" if higher_is_better else "<="
            passed = ok_value and (challenger >= self.min_metric if higher_is_better else challenger <= self.min_metric)
            checks.append(Check("threshold", bool(passed), challenger, self.min_metric,
                                f"{metric}={challenger:.4f} {op} {self.min_metric:.4f} needed"))
        if champion is None or not math.isfinite(champion):
            why = "no champion yet" if champion is None else "champion could not be scored"
            checks.append(Check("no_drop", None, None, self.max_drop, why))
            checks.append(Check("latency", None, challenger_p99_ms, None, why))
            return GateResult(checks)
        worse = (champion - challenger) if higher_is_better else (challenger - champion)
        drop = worse / max(abs(champion), 1e-12)
        checks.append(Check("no_drop", bool(ok_value and drop <= self.max_drop), drop, self.max_drop,
                            f"{metric} {challenger:.4f} vs champion {champion:.4f}: relative drop {drop:+.2%} "
                            f"(at most {self.max_drop:.0%})"))
        if challenger_p99_ms is None or champion_p99_ms is None:
            checks.append(Check("latency", None, challenger_p99_ms, None, "latency not measured"))
        else:
            limit = self.latency_limit(champion_p99_ms)
            ratio = challenger_p99_ms / max(champion_p99_ms, 1e-9)
            checks.append(Check("latency", challenger_p99_ms <= limit, ratio, self.max_latency_ratio,
                                f"p99 {challenger_p99_ms:.3f} ms vs champion {champion_p99_ms:.3f} ms = x{ratio:.2f} "
                                f"(limit {limit:.3f} ms: x{self.max_latency_ratio:g}"
                                + (f" or +{self.latency_slack_ms:g} ms" if self.latency_slack_ms else "") + ")"))
        return GateResult(checks)


def p99_pair(call_a, call_b=None, reps: int = 60, warmup: int = 3, blocks: int = 5) -> tuple[float, float | None]:
    """p99 (ms) of ``call_a()`` and of ``call_b()`` measured interleaved in this process (the same load on both).

    The ``reps`` calls of each are cut into ``blocks`` consecutive blocks and the median of the blocks' p99s is
    returned: a single stall of the machine (GC, another process) lands in one block and does not decide the gate
    (with one block, two identical models measured 1.9 vs 2.4 ms here)."""
    import time

    import numpy as np

    for _ in range(warmup):
        call_a()
        if call_b is not None:
            call_b()
    a: list[float] = []
    b: list[float] = []
    for i in range(reps):
        order = ((call_a, a), (call_b, b)) if i % 2 == 0 else ((call_b, b), (call_a, a))
        for call, out in order:
            if call is None:
                continue
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1000.0)

    def p99(samples: list[float]) -> float:
        parts = np.array_split(np.asarray(samples), max(1, min(int(blocks), len(samples))))
        return float(np.median([np.percentile(part, 99) for part in parts]))

    return p99(a), (p99(b) if b else None)
