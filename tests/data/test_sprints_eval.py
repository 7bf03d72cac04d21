"""``sunday eval sprints`` on the real Apache sprints only (the smallest tracker; the others stay out to be fast)."""

from __future__ import annotations

import numpy as np
import pytest

from sunday.data.importers.sprint_delivery import load_tracker, tracker_files
from tests.conftest import linked_subset
from sunday.evaluation.sprints import MAIN, PAPER_BASELINE, PAPER_BEST, SprintDeliveryEvaluation
from sunday.models.effort.sprints import feature_columns, sprint_features, time_split

TIMES = (0, 30, 50, 80)


@pytest.fixture(scope="module")
def apache_dir(data_dir, tmp_path_factory):
    folder = data_dir / "sprint_delivery" / "Apache"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    files = [f"sprint_delivery/Apache/{f.name}" for f in sorted(folder.glob("*.csv"))]
    return linked_subset(data_dir, tmp_path_factory.mktemp("sprints"), files)


@pytest.fixture(scope="module")
def result(apache_dir):
    return SprintDeliveryEvaluation().run(apache_dir, progress=False)


def _row(result, key):
    rows = [r for r in result.rows if r["row"] == key]
    assert len(rows) == 1, key
    return rows[0]


def test_rows_models_and_anchors(result):
    assert result.key == "row" and {r["project"] for r in result.rows} == {"Apache", "mean"}
    models = {r["model"] for r in result.rows}
    assert models == {"mean", "median", "lgbm-delivered", "lgbm-diff", "linear", MAIN, f"{MAIN}:select-all",
                      f"{MAIN}:no-issues"}  # one project: no pooled variant
    for r in result.rows:
        assert all(r[f"nmae@{t}"] is not None and r[f"nmae@{t}"] > 0 for t in TIMES), r["row"]
        assert r["nmae"] == pytest.approx(np.mean([r[f"nmae@{t}"] for t in TIMES]), abs=1e-3)
    anchored = {(a.row, a.metric, a.value) for a in result.anchors}
    assert (f"mean/{MAIN}", "nmae", PAPER_BEST) in anchored
    assert ("mean/median", "nmae", PAPER_BASELINE) in anchored
    assert any(n.startswith("target:") for n in result.notes)
    assert any("time order = sprint id" in n for n in result.notes)


def test_split_sizes_and_baselines(result):
    """279 train / 69 test sprint rows, cut between sprint ids 126 and 127; the training mean/median baselines
    measured here: 0.741 / 0.689 at 0 %, 0.658 / 0.651 at 80 % (test IQR 22 and 20 story points)."""
    info = result.meta["projects"]["Apache"]
    for t in TIMES:
        assert (info[str(t)]["n_train"], info[str(t)]["n_test"]) == (279, 69)
        assert info[str(t)]["last_train_sprintid"] < info[str(t)]["first_test_sprintid"]
    assert info["0"]["iqr_test"] == 22 and info["80"]["iqr_test"] == 20
    mean, median = _row(result, "Apache/mean"), _row(result, "Apache/median")
    assert (mean["nmae@0"], median["nmae@0"]) == pytest.approx((0.741, 0.689), abs=2e-3)
    assert (mean["nmae@80"], median["nmae@80"]) == pytest.approx((0.658, 0.651), abs=2e-3)


def test_sprint_model_beats_the_baselines(result):
    """Measured on Apache: sprint-model 0.47 / 0.43 / 0.39 / 0.40 (mean 0.42) vs median 0.69 / 0.75 / 0.68 / 0.65."""
    main, median, mean = (_row(result, f"Apache/{m}") for m in (MAIN, "median", "mean"))
    for t in TIMES:
        assert main[f"nmae@{t}"] < 0.8 * min(median[f"nmae@{t}"], mean[f"nmae@{t}"]), t
    assert main["nmae"] < 0.5
    assert main["nmae"] <= min(_row(result, f"Apache/{m}")["nmae"] for m in ("lgbm-delivered", "linear")) + 0.02


def test_features_use_earlier_sprints_only(data_dir):
    """On the real Apache files at 50 %: scrambling the test sprints' outcomes leaves every training row's
    features unchanged, and the issue aggregates match the issue file row counts."""
    folder, prefix, times = tracker_files(data_dir / "sprint_delivery")["Apache"]
    tables = load_tracker(folder, prefix, [50])
    snaps, issues = tables["sprint_snapshots"], tables["sprint_issues"]
    base = sprint_features(snaps, issues)
    cut = time_split(base)
    late = snaps["sprintid"] >= base["sprintid"].iloc[cut]
    scrambled = snaps.copy()
    scrambled.loc[late, "vel_diff"] = np.random.default_rng(0).permutation(scrambled.loc[late, "vel_diff"]) * 3
    after = sprint_features(scrambled, issues)
    cols = feature_columns(base)
    assert base[cols].iloc[:cut].equals(after[cols].iloc[:cut])
    assert base["i_n"].sum() == len(issues)  # every issue row lands in its sprint
