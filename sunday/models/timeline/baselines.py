"""Two forecasting baselines practitioners use, on the same daily ``project_velocity`` series as the model.

* **Burn-down extrapolation** (:func:`burndown_forecast`): remaining open tasks at the cut / average tasks done per
  day over the last ``window`` days. p10 / p90 use the 90th / 10th percentile of the rolling weekly throughput
  (a fast week / a slow week sustained) -- the spread a burn-down chart's "optimistic / pessimistic" lines show.
* **Monte Carlo throughput resampling** (:func:`monte_carlo_forecast`): draw daily ``tasks_done`` values with
  replacement from the last ``window`` days until the remaining open tasks are done; the p10 / p50 / p90 of the
  number of days over ``n_sims`` runs.

Both only know today's backlog (no scope growth) and return days from the cut (float), capped at ``MAX_DAYS``.
When no task was done in the window, the throughput floor ``MIN_RATE`` tasks/day applies (documented fallback: the
forecast is then long, never NaN or infinite).
"""

from __future__ import annotations

import numpy as np

MAX_DAYS = 365.0
MIN_RATE = 0.05  # tasks/day floor when nothing was done in the window


def _arrays(series: np.ndarray, length: int, columns: tuple[str, ...]) -> tuple[np.ndarray, float]:
    done = np.asarray(series[-length:, columns.index("tasks_done")], np.float64) if length else np.zeros(0)
    backlog = float(series[-1, columns.index("backlog_tasks")]) if length else 0.0
    return done, backlog


def burndown_forecast(done: np.ndarray, backlog: float, window: int = 28) -> tuple[float, float, float]:
    """(p10, p50, p90) days to clear ``backlog`` open tasks at the recent daily throughput ``done``."""
    done = np.asarray(done, np.float64)[-window:]
    if backlog <= 0:
        return 0.0, 0.0, 0.0
    mean = max(done.mean() if len(done) else 0.0, MIN_RATE)
    if len(done) >= 7:
        weekly = np.convolve(done, np.ones(7) / 7, mode="valid")
        fast, slow = max(np.quantile(weekly, 0.9), MIN_RATE), max(np.quantile(weekly, 0.1), MIN_RATE)
    else:
        fast, slow = mean * 1.5, mean / 1.5
    p = np.array([backlog / fast, backlog / mean, backlog / slow])
    p = np.minimum(np.sort(p), MAX_DAYS)
    return float(p[0]), float(p[1]), float(p[2])


def monte_carlo_forecast(done: np.ndarray, backlog: float, window: int = 42, n_sims: int = 500,
                         seed: int = 0) -> tuple[float, float, float]:
    """(p10, p50, p90) days to clear ``backlog`` by resampling the last ``window`` days' throughput."""
    done = np.asarray(done, np.float64)[-window:]
    if backlog <= 0:
        return 0.0, 0.0, 0.0
    if len(done) == 0 or done.sum() <= 0:
        d = min(backlog / MIN_RATE, MAX_DAYS)
        return d, d, d
    rng = np.random.default_rng(seed)
    horizon = int(MAX_DAYS)
    draws = rng.choice(done, size=(n_sims, horizon), replace=True)
    cum = np.cumsum(draws, axis=1)
    reached = cum >= backlog
    days = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, horizon).astype(np.float64)
    q = np.quantile(days, [0.1, 0.5, 0.9])
    return float(q[0]), float(q[1]), float(q[2])


def forecast_snapshots(snap, method: str, columns: tuple[str, ...] | None = None, **kwargs) -> np.ndarray:
    """(n, 3) p10/p50/p90 days for every snapshot of a :class:`~sunday.models.timeline.data.Snapshots`."""
    from sunday.models.timeline.data import SERIES_COLUMNS

    columns = columns or SERIES_COLUMNS
    fn = {"burndown": burndown_forecast, "monte_carlo": monte_carlo_forecast}[method]
    out = np.zeros((len(snap), 3))
    for i in range(len(snap)):
        done, backlog = _arrays(snap.series[i], int(snap.length[i]), columns)
        out[i] = fn(done, backlog, **kwargs)
    return out
