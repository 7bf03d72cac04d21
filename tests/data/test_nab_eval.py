"""``sunday eval nab`` on a few real NAB series (the corpus format, unchanged): rows, anchors, results CSVs, and the
ensemble beating the null and random detectors."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import linked_subset

SERIES = ["artificialWithAnomaly/art_daily_jumpsup.csv", "artificialWithAnomaly/art_daily_flatmiddle.csv",
          "artificialNoAnomaly/art_daily_small_noise.csv", "realAdExchange/exchange-3_cpc_results.csv"]


@pytest.mark.timeout(300)
def test_nab_eval_on_a_subset(data_dir, tmp_path, monkeypatch):
    from sunday.evaluation import run_evaluation

    files = ([f"nab/data/{s}" for s in SERIES]
             + ["nab/labels/combined_windows.json", "nab/config/profiles.json", "nab/results/final_results.json"])
    subset = linked_subset(data_dir, tmp_path / "data", files)
    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "state"))
    result, path = run_evaluation("nab", subset, tmp_path / "eval", lstm="none", progress=False,
                                  results_dir=str(tmp_path / "results"))
    assert path.is_file()
    by = {r["detector"]: r for r in result.rows}
    for name in ("ensemble", "robust_z", "ewma", "seasonal", "iforest", "null", "random"):
        assert {"standard", "low_FP", "low_FN"} <= set(by[name]), name
    assert by["null"]["standard"] == 0.0
    windows = by["null"]["windows_missed"]
    assert windows == 5  # jumpsup 1, flatmiddle 1, exchange-3_cpc 3
    # the three artificial windows are easy: the ensemble must find them and beat random
    assert by["ensemble"]["windows_hit"] >= 3
    assert by["ensemble"]["standard"] > by["random"]["standard"] + 20
    assert {a.row for a in result.anchors} >= {"Numenta HTM (published, 58 series)",
                                                "ARTime (published, 58 series)"}
    # NAB's results layout, one folder per detector
    csv = tmp_path / "results" / "ensemble" / "artificialWithAnomaly" / "ensemble_art_daily_jumpsup.csv"
    df = pd.read_csv(csv)
    assert list(df.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert df["label"].sum() > 0 and df["anomaly_score"].between(0, 1).all()
    assert (tmp_path / "results" / "iforest" / "realAdExchange" / "iforest_exchange-3_cpc_results.csv").is_file()


def test_nab_eval_bad_option(data_dir, tmp_path):
    from sunday.evaluation import run_evaluation

    subset = linked_subset(data_dir, tmp_path / "data", [f"nab/data/{SERIES[0]}", "nab/labels/combined_windows.json",
                                                         "nab/config/profiles.json"])
    with pytest.raises(ValueError, match="unknown option"):
        run_evaluation("nab", subset, tmp_path / "eval", detector="ewma")
    with pytest.raises(ValueError, match="matches none"):
        run_evaluation("nab", subset, tmp_path / "eval", lstm="none", series="nope", progress=False)
