"""The signal datasets (NAB, QMSum, Open Bandit sample) import with the counts their SOURCE.md states."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pytest

from sunday.data.importers import get_importer, import_dataset
from sunday.data.importers.nab import load_profiles, load_series, load_windows
from sunday.schema import validate
from sunday.store import Warehouse

NAB_TOTAL_WINDOWS = 116  # all 58 series of NAB v1.1 (SOURCE.md)
NAB_REALTWEETS_WINDOWS = 33  # realTweets windows upstream; this copy drops them from combined_windows.json


def _load(name: str, data_dir: Path) -> dict:
    imp = get_importer(name)
    tables = imp.load(imp.source_dir(data_dir))
    notes = tables.pop("_notes", [])
    validated = {t: validate(imp.specs.get(t, t), data) for t, data in tables.items()}
    return {"tables": validated, "notes": notes, "source": imp.source_dir(data_dir)}


@pytest.fixture(scope="module")
def nab(data_dir):
    return _load("nab", data_dir)


@pytest.fixture(scope="module")
def qmsum(data_dir):
    return _load("qmsum", data_dir)


@pytest.fixture(scope="module")
def obd(data_dir):
    return _load("open_bandit", data_dir)


# --- NAB -------------------------------------------------------------------------------------------------------------

def test_nab_series(nab):
    source = nab["source"]
    points = nab["tables"]["metric_series"]
    files = sorted(p.relative_to(source / "data").as_posix() for p in (source / "data").rglob("*.csv"))
    assert len(files) == 48
    assert sorted(pc.unique(points.column("series_id")).to_pylist()) == files
    lines = sum(len(p.read_text().splitlines()) - 1 for p in (source / "data").rglob("*.csv"))
    assert points.num_rows == lines
    assert pc.all(pc.equal(points.column("workspace_id"), "nab")).as_py()
    assert points.column("timestamp").type.unit == "us" and points.column("timestamp").type.tz is None

    series = load_series(source)
    assert len(series) == 48 and sum(len(df) for df in series.values()) == points.num_rows
    taxi = series["realKnownCause/nyc_taxi.csv"]
    assert list(taxi.columns) == ["timestamp", "value"]
    assert taxi["timestamp"].iloc[0] == pd.Timestamp("2014-07-01 00:00:00") and taxi["value"].iloc[0] == 10844


def test_nab_windows(nab):
    source = nab["source"]
    raw = json.loads((source / "labels" / "combined_windows.json").read_text())
    present = {p.relative_to(source / "data").as_posix() for p in (source / "data").rglob("*.csv")}
    expected = sum(len(w) for sid, w in raw.items() if sid in present)
    realtweets = sum(len(w) for sid, w in raw.items() if sid.startswith("realTweets/")) or NAB_REALTWEETS_WINDOWS

    windows = nab["tables"]["anomaly_windows"]
    assert windows.num_rows == expected == NAB_TOTAL_WINDOWS - realtweets == 83
    assert set(windows.column("kind").to_pylist()) == {"labelled"}
    assert pc.all(pc.less_equal(windows.column("start"), windows.column("end"))).as_py()

    helper = load_windows(source)
    assert set(helper) <= present and sum(map(len, helper.values())) == expected
    taxi = helper["realKnownCause/nyc_taxi.csv"]
    assert len(taxi) == 5 and taxi[0] == (pd.Timestamp("2014-10-30 15:30"), pd.Timestamp("2014-11-03 22:30"))


def test_nab_profiles(nab):
    profiles = load_profiles(nab["source"])
    assert set(profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert profiles["standard"] == {"tp": 1.0, "fp": 0.11, "fn": 1.0, "tn": 1.0}
    assert profiles["reward_low_FN_rate"]["fn"] == 2.0
    assert nab["tables"]["nab_profiles"].num_rows == 3


# --- QMSum -----------------------------------------------------------------------------------------------------------

def test_qmsum_meetings(qmsum):
    meetings = qmsum["tables"]["meetings"].to_pandas()
    per_split = meetings["split"].value_counts().to_dict()
    assert per_split["train"] == 162 and per_split["val"] == 35
    assert per_split.get("test", 35) == 35  # this copy keeps the test split aside
    product = meetings["meeting_id"].str.match(r"^(ES|IS|TS)")
    academic = meetings["meeting_id"].str.startswith("B")
    assert (meetings.loc[product, "domain"] == "product").all()
    assert (meetings.loc[academic, "domain"] == "academic").all()
    assert (meetings.loc[~product & ~academic, "domain"] == "committee").all()
    assert set(meetings["domain"]) == {"product", "academic", "committee"}


def test_qmsum_queries_turns_topics(qmsum):
    t = qmsum["tables"]
    queries = t["meeting_queries"].select(["meeting_id", "query_type"]).to_pandas()
    split = t["meetings"].to_pandas().set_index("meeting_id")["split"]
    counts = queries.assign(split=queries["meeting_id"].map(split)).value_counts(["split", "query_type"]).to_dict()
    assert counts[("train", "general")] == 162 and counts[("train", "specific")] == 1095
    assert counts[("val", "general")] == 35 and counts[("val", "specific")] == 237
    if ("test", "general") in counts:
        assert counts[("test", "general")] == 37 and counts[("test", "specific")] == 244

    # spans come from strings like [["19", "89"]]
    first = json.loads((qmsum["source"] / "data" / "ALL" / "train" / "Bdb001.json").read_text())
    topic0 = t["meeting_topics"].filter(pc.equal(t["meeting_topics"].column("topic_id"), "Bdb001:0")).to_pylist()[0]
    assert topic0["topic"] == first["topic_list"][0]["topic"]
    spans = first["topic_list"][0]["relevant_text_span"]
    assert topic0["spans"] == [{"start": int(a), "end": int(b)} for a, b in spans]
    q0 = t["meeting_queries"].filter(pc.equal(t["meeting_queries"].column("query_id"), "Bdb001:specific:0")).to_pylist()
    assert q0[0]["answer"] == first["specific_query_list"][0]["answer"] and q0[0]["spans"]
    general = t["meeting_queries"].filter(pc.equal(t["meeting_queries"].column("query_type"), "general"))
    assert general.column("spans").null_count == general.num_rows

    files = sorted((qmsum["source"] / "data" / "ALL").glob("*/*.json"))
    raw = [json.loads(p.read_text()) for p in files]
    assert t["meeting_turns"].num_rows == sum(len(m["meeting_transcripts"]) for m in raw)
    assert t["meeting_topics"].num_rows == sum(len(m["topic_list"]) for m in raw)


# --- Open Bandit -----------------------------------------------------------------------------------------------------

EXPECTED_CTR = {
    ("random", "all"): 0.0038, ("random", "men"): 0.0046, ("random", "women"): 0.0046,
    ("bts", "all"): 0.0042, ("bts", "men"): 0.0069, ("bts", "women"): 0.0046,
}
ITEMS = {"all": 80, "men": 34, "women": 46}


def test_obd_logs_and_ctr(obd):
    log = obd["tables"]["notification_impressions"].select(
        ["policy", "campaign", "clicked", "propensity", "position", "affinity"]).to_pandas()
    sizes = log.groupby(["policy", "campaign"]).size().to_dict()
    assert sizes == {key: 10_000 for key in EXPECTED_CTR}
    ctr = log.groupby(["policy", "campaign"])["clicked"].mean().round(4).to_dict()
    assert ctr == EXPECTED_CTR
    assert set(log["position"]) == {1, 2, 3}
    random = log[log["policy"] == "random"]
    # uniform logging policy (the files round 1/34 and 1/46 to 16 digits)
    assert ((random["propensity"] - 1 / random["campaign"].map(ITEMS)).abs() < 1e-15).all()
    assert (log["affinity"].map(len) == log["campaign"].map(ITEMS)).all()


def test_obd_items(obd):
    items = obd["tables"]["bandit_items"].to_pandas()
    assert items.groupby(["policy", "campaign"]).size().to_dict() == {
        (p, c): n for p in ("random", "bts") for c, n in ITEMS.items()}
    assert items["item_key"].iloc[0].count(":") == 2


# --- through the warehouse -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, table, rows", [
    ("nab", "anomaly_windows", 83), ("qmsum", "meetings", 197), ("open_bandit", "notification_impressions", 60_000),
])
def test_import_through_warehouse(data_dir, tmp_path, name, table, rows):
    wh = Warehouse(tmp_path / "warehouse")
    result = import_dataset(name, data_dir, wh)
    assert result.counts[table] == rows
    assert result.notes
    assert wh.read(name, table).num_rows == rows
    assert "workspaces" in wh.tables(name)
