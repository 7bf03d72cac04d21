"""``team_balance``: one row per team at the end of every day on which one of its members had an event (the
``user_workload`` days of its members).

Members are the users of the team (users table). Each member's open points are their ``user_workload``
``open_points`` at the row's timestamp (same cumulative deltas). The Gini coefficient is normalised by
n / (n - 1) so that it spans the documented range: 0 when the open points are spread evenly (or there are none),
1 when one member holds all of them (a team of one scores 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.features.compute.common import SCALE, empty, to_arrow
from sunday.features.compute.workload import state_at

GROUP = "team_balance"


def gini(x: np.ndarray) -> np.ndarray:
    """Normalised Gini of each row of a non-negative (rows, n) matrix: 0 even / none, 1 one holder."""
    x = np.asarray(x, dtype=np.float64)
    rows, n = x.shape
    if n < 2:
        return np.zeros(rows)
    s = np.sort(x, axis=1)
    total = s.sum(axis=1)
    rank = 2 * np.arange(1, n + 1) - n - 1  # sum_i (2i - n - 1) x_(i) / (n * total) = mean abs diff / (2 mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (s @ rank.astype(np.float64)) / (n * total)
    g = np.where(total > 0, g * n / (n - 1), 0.0)
    return np.clip(g, 0.0, 1.0)


def balance_at(cum: pd.DataFrame, member_codes: np.ndarray, at: np.ndarray) -> dict[str, np.ndarray]:
    """Feature values of one team at each timestamp of ``at`` (members given by their user codes)."""
    m, k = len(at), len(member_codes)
    if k == 0:
        z = np.zeros(m)
        return {"open_points_gini": z, "open_points_total": z, "max_member_share": z,
                "member_count": np.zeros(m, np.int64)}
    users = np.tile(member_codes, m)
    stamps = np.repeat(np.asarray(at, dtype=np.int64), k)
    pts = state_at(cum, users, stamps, ["c_points"])["c_points"].to_numpy().reshape(m, k)
    pts = np.maximum(pts, 0)
    total = pts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, pts.max(axis=1) / np.maximum(total, 1), 0.0)
    return {
        "open_points_gini": gini(pts),
        "open_points_total": total / SCALE,
        "max_member_share": share,
        "member_count": np.full(m, k, dtype=np.int64),
    }


def compute(cum: pd.DataFrame, days: pd.DataFrame, users: pd.DataFrame, vocab: pd.Index) -> pa.Table:
    """``days``: the (user code, day end) rows of ``user_workload``."""
    u = users[["user_id", "team_id"]].dropna().drop_duplicates("user_id")
    code = vocab.get_indexer(u["user_id"].to_numpy())
    u = u.assign(code=code)
    team_of = pd.Series(u["team_id"].to_numpy(), index=u["code"].to_numpy())
    d = days.assign(team_id=team_of.reindex(days["user"].to_numpy()).to_numpy()).dropna(subset=["team_id"])
    parts = []
    for team, rows in d.groupby("team_id", sort=True):
        at = np.unique(rows["at"].to_numpy())
        members = np.sort(u.loc[u["team_id"] == team, "code"].to_numpy())
        parts.append(pd.DataFrame({"team_id": team, "event_timestamp": at, **balance_at(cum, members, at)}))
    if not parts:
        return empty(GROUP)
    df = pd.concat(parts, ignore_index=True)
    return to_arrow(GROUP, {c: df[c].to_numpy() for c in df.columns})
