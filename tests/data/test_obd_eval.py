"""``sunday eval obd`` on the real Open Bandit sample (the OBD folder format, unchanged): table structure, on-policy
CTRs equal to the files' click means, finite estimates with their CIs, the anchors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import linked_subset

CAMPAIGNS = ("all", "men", "women")
FILES = [f"open_bandit_sample/obd/{p}/{c}/{f}" for p in ("random", "bts") for c in CAMPAIGNS
         for f in (f"{c}.csv", "item_context.csv")]
POLICIES = ("bts via random log", "linear TS (contextual)", "linear TS (no context)", "greedy item CTR")


@pytest.mark.timeout(300)
def test_obd_eval_on_the_sample(data_dir, tmp_path, monkeypatch):
    import sunday.evaluation.obd  # noqa: F401  (registers "obd" even before the registry lists it)
    from sunday.evaluation import run_evaluation

    subset = linked_subset(data_dir, tmp_path / "data", FILES)
    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "state"))
    result, path = run_evaluation("obd", subset, tmp_path / "eval", bootstrap=50, folds=3, n_samples=200,
                                  progress=False)
    saved = json.loads(path.read_text())
    assert saved["name"] == "obd" and len(saved["rows"]) == len(result.rows)
    by = {r["row"]: r for r in result.rows}
    assert len(by) == len(result.rows) == 3 * (2 + 3 * len(POLICIES))
    for c in CAMPAIGNS:
        for policy in ("random", "bts"):
            clicks = pd.read_csv(data_dir / "open_bandit_sample" / "obd" / policy / c / f"{c}.csv")["click"]
            row = by[f"{c}: {policy}, on-policy"]
            assert row["value_pct"] == pytest.approx(100 * clicks.mean(), abs=1e-9)
            assert row["ci_low_pct"] < row["value_pct"] < row["ci_high_pct"]
        for policy in POLICIES:
            for est in ("IPW", "SNIPW", "DR"):
                row = by[f"{c}: {policy}, {est}"]
                for col in ("value_pct", "ci_low_pct", "ci_high_pct", "ess_w"):
                    assert math.isfinite(row[col]), (row["row"], col)
                assert row["ci_low_pct"] <= row["ci_high_pct"]
                assert 0 <= row["value_pct"] < 5  # a click rate in percent; the logs' are 0.38-0.69
                assert 0 < row["ess_w"] <= 10_000
                if policy == "bts via random log":
                    assert row["rel_err"] is not None and row["rel_err"] < 1.0
                    assert row["beats_random"] is None
                else:
                    assert row["rel_err"] is None and isinstance(row["beats_random"], bool)
            # the cross-fitted estimators see the same held-out data: IPW and SNIPW stay close
            ipw, snipw = by[f"{c}: {policy}, IPW"]["value_pct"], by[f"{c}: {policy}, SNIPW"]["value_pct"]
            assert abs(ipw - snipw) <= 0.5 * max(ipw, snipw) + 1e-9
        info = result.meta["bts_dist"][c]
        assert len(info["leftover"]) == 3 and all(0 <= x <= 1 for x in info["leftover"])
    anchors = {(a.row, a.metric): a.value for a in result.anchors}
    assert anchors[("all: bts, on-policy", "value_pct")] == pytest.approx(0.42)
    assert anchors[("men: random, on-policy", "value_pct")] == pytest.approx(0.46)
    assert anchors[("women: bts via random log, DR", "value_pct")] == pytest.approx(0.46)
    assert any("relative standard error" in n for n in result.notes)
    assert np.isfinite([r["value_pct"] for r in result.rows]).all()


def test_obd_eval_options(data_dir, tmp_path):
    import sunday.evaluation.obd  # noqa: F401
    from sunday.evaluation import run_evaluation

    subset = linked_subset(data_dir, tmp_path / "data", [f for f in FILES if "/men/" in f])
    with pytest.raises(ValueError, match="unknown option"):
        run_evaluation("obd", subset, tmp_path / "eval", campaign="men")
    with pytest.raises(ValueError, match="not found"):
        run_evaluation("obd", subset, tmp_path / "eval", campaigns="all", progress=False)
    with pytest.raises(ValueError, match="bts_dist"):
        run_evaluation("obd", subset, tmp_path / "eval", bts_dist="median", progress=False)
    result, _ = run_evaluation("obd", subset, tmp_path / "eval", campaigns="men", bootstrap=20, folds=2,
                               n_samples=50, fold_by="random", bts_dist="frequency", progress=False)
    assert {r["row"].split(":")[0] for r in result.rows} == {"men"}
