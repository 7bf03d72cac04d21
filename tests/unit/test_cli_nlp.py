"""``sunday nlp``: transcripts read from JSON / QMSum / text files; bad input is one error line naming the field."""

from __future__ import annotations

import json

import pytest

from sunday.cli import main
from sunday.cli_nlp import read_transcript
from sunday.errors import SundayError, ValidationError


@pytest.fixture(autouse=True)
def _state(settings):
    return settings


def test_read_transcript_formats(tmp_path):
    turns = [{"speaker": "Ann", "content": "I'll send the slides."}, {"speaker": "Bo", "content": "Thanks."}]
    (tmp_path / "a.json").write_text(json.dumps(turns))
    (tmp_path / "b.json").write_text(json.dumps({"meeting_transcripts": turns, "topic_list": []}))
    (tmp_path / "c.txt").write_text("Ann: I'll send the slides.\n\nBo: Thanks.\n")
    for name in ("a.json", "b.json", "c.txt"):
        assert read_transcript(tmp_path / name) == turns


@pytest.mark.parametrize("content, field", [("{not json", "file"), ('[{"speaker": "A"}]', "turns"),
                                            ('{"x": 1}', "turns")])
def test_bad_transcript_names_the_field(tmp_path, content, field):
    (tmp_path / "t.json").write_text(content)
    with pytest.raises(ValidationError) as err:
        read_transcript(tmp_path / "t.json")
    assert err.value.field == field


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["nlp", "summarize", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.txt" in err and "Traceback" not in err
    (tmp_path / "m.txt").write_text("Ann: hello there everyone\n")
    assert main(["nlp", "summarize", str(tmp_path / "m.txt"), "--method", "bart"]) == 2
    assert "method" in capsys.readouterr().err
    with pytest.raises(SundayError):
        read_transcript(tmp_path / "nope.json")
