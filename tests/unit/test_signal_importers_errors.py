"""Error paths of the NAB, QMSum and Open Bandit importers on tiny files (no dataset needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sunday.data.importers.nab import NabImporter, load_windows
from sunday.data.importers.open_bandit import OpenBanditImporter
from sunday.data.importers.qmsum import QmsumImporter, domain_of
from sunday.errors import DatasetMissingError, MalformedInputError, ValidationError
from sunday.schema import validate

IMPORTERS = [NabImporter(), QmsumImporter(), OpenBanditImporter()]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _nab(root: Path, series: str = "timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:05:00,2\n",
         windows: dict | None = None) -> Path:
    src = root / "nab"
    _write(src / "data" / "realA" / "s.csv", series)
    labels = {"realA/s.csv": [["2014-01-01 00:00:00.000000", "2014-01-01 00:05:00.000000"]]} if windows is None \
        else windows
    _write(src / "labels" / "combined_windows.json", json.dumps(labels))
    return src


def _meeting(spans=(("0", "1"),)) -> dict:
    return {
        "topic_list": [{"topic": "budget", "relevant_text_span": [list(s) for s in spans]}],
        "general_query_list": [{"query": "Summarize the whole meeting.", "answer": "They met."}],
        "specific_query_list": [{"query": "What about the budget?", "answer": "Fine.",
                                 "relevant_text_span": [list(s) for s in spans]}],
        "meeting_transcripts": [{"speaker": "A", "content": "Hello"}, {"speaker": "B", "content": ""}],
    }


LOG_HEADER = (",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,user_feature_2,"
              "user_feature_3,user-item_affinity_0,user-item_affinity_1\n")


def _obd(root: Path, click: int = 0) -> Path:
    src = root / "open_bandit_sample"
    _write(src / "obd" / "random" / "men" / "men.csv", LOG_HEADER
           + "0,2019-11-24 00:00:34.762830+00:00,1,3,0,0.5,a,b,c,d,0.0,1.0\n"
           + f"1,2019-11-24 00:00:53.965051+00:00,0,1,{click},0.5,a,b,c,e,0.25,0.0\n")
    _write(src / "obd" / "random" / "men" / "item_context.csv",
           ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3\n0,0,-0.5,x,y,z\n1,1,0.5,x,y,w\n")
    return src


@pytest.mark.parametrize("imp", IMPORTERS, ids=lambda i: i.name)
def test_missing_folder_names_the_path(tmp_path, imp):
    with pytest.raises(DatasetMissingError, match=re.escape(str(tmp_path / imp.folder))):
        imp.source_dir(tmp_path)
    (tmp_path / imp.folder).mkdir()
    with pytest.raises(DatasetMissingError, match=re.escape(str(tmp_path / imp.folder))):
        imp.load(tmp_path / imp.folder)


def test_nab_tiny_import_and_ignored_labels(tmp_path):
    src = _nab(tmp_path, windows={
        "realA/s.csv": [["2014-01-01 00:00:00.000000", "2014-01-01 00:05:00.000000"]],
        "realTweets/Twitter_volume_X.csv": [["2015-03-01 00:00:00.000000", "2015-03-02 00:00:00.000000"]] * 2,
    })
    tables = NabImporter().load(src)
    assert len(tables["metric_series"]) == 2 and tables["metric_series"]["value"].tolist() == [1.5, 2.0]
    assert validate("anomaly_windows", tables["anomaly_windows"]).num_rows == 1
    assert any("ignored 1 label entries (2 windows)" in n for n in tables["_notes"])
    assert list(load_windows(src)) == ["realA/s.csv"]


def test_nab_malformed_row_names_file_and_line(tmp_path):
    src = _nab(tmp_path, series="timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,2,3\n")
    with pytest.raises(MalformedInputError, match=r"s\.csv: line 3: expected 2 fields, got 3"):
        NabImporter().load(src)


def test_nab_bad_timestamp_and_value(tmp_path):
    src = _nab(tmp_path, series="timestamp,value\n2014-01-01 00:00:00,1\nyesterday,2\n")
    with pytest.raises(MalformedInputError, match=r"s\.csv: line 3: timestamp"):
        NabImporter().load(src)
    src = _nab(tmp_path / "b", series="timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,lots\n")
    with pytest.raises(MalformedInputError, match=r"s\.csv: data row 2: column 'value'"):
        NabImporter().load(src)


def test_qmsum_tiny_import(tmp_path):
    src = tmp_path / "qmsum"
    _write(src / "data" / "ALL" / "train" / "ES2002a.json", json.dumps(_meeting()))
    _write(src / "data" / "ALL" / "val" / "covid_1.json", json.dumps(_meeting()))
    tables = QmsumImporter().load(src)
    meetings = validate("meetings", tables["meetings"]).to_pylist()
    assert [(m["meeting_id"], m["split"], m["domain"]) for m in meetings] == [
        ("ES2002a", "train", "product"), ("covid_1", "val", "committee")]
    queries = validate("meeting_queries", tables["meeting_queries"]).to_pylist()
    assert [q["spans"] for q in queries] == [None, [{"start": 0, "end": 1}]] * 2
    assert validate("meeting_turns", tables["meeting_turns"]).num_rows == 4
    assert validate("meeting_topics", tables["meeting_topics"]).column("spans").to_pylist()[0] == [
        {"start": 0, "end": 1}]
    assert domain_of("Bmr021") == "academic" and domain_of("education_4") == "committee"


def test_qmsum_invalid_json_names_file(tmp_path):
    src = tmp_path / "qmsum"
    bad = _write(src / "data" / "ALL" / "train" / "Bed004.json", '{"topic_list": [')
    with pytest.raises(MalformedInputError, match=re.escape(str(bad))):
        QmsumImporter().load(src)


def test_qmsum_bad_span_names_file_and_entry(tmp_path):
    src = tmp_path / "qmsum"
    bad = _write(src / "data" / "ALL" / "val" / "IS1000a.json", json.dumps(_meeting(spans=[("3", "x")])))
    with pytest.raises(MalformedInputError, match=re.escape(f"{bad}: topic_list[0]")):
        QmsumImporter().load(src)


def test_obd_tiny_import(tmp_path):
    tables = OpenBanditImporter().load(_obd(tmp_path))
    log = validate("notification_impressions", tables["notification_impressions"]).to_pylist()
    assert [r["impression_id"] for r in log] == ["random:men:0", "random:men:1"]
    assert log[0]["context"] == ["a", "b", "c", "d"] and log[1]["affinity"] == [0.25, 0.0]
    assert log[0]["timestamp"].isoformat() == "2019-11-24T00:00:34.762830"
    items = validate("bandit_items", tables["bandit_items"]).to_pylist()
    assert [i["item_key"] for i in items] == ["random:men:0", "random:men:1"]


def test_obd_click_2_fails_validation(tmp_path):
    tables = OpenBanditImporter().load(_obd(tmp_path, click=2))
    with pytest.raises(ValidationError, match="clicked") as err:
        validate("notification_impressions", tables["notification_impressions"])
    assert err.value.field == "clicked" and err.value.record == 1
