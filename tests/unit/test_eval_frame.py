import json
from pathlib import Path

import pytest
from rich.console import Console

from sunday.errors import UnknownNameError
from sunday.evaluation import Anchor, EvalResult, Evaluation, evaluation_names, run_evaluation
from sunday.evaluation import base
from sunday.evaluation.report import render


class _CountLines(Evaluation):
    """A real (tiny) evaluation: mean line count of the CSVs found in its folder, beside an anchor."""

    name = "count-lines-test"
    description = "test evaluation"
    folder = "toy"

    def run(self, data_dir: Path, **options):
        rows = []
        for f in sorted((data_dir / self.folder).glob("*.csv")):
            rows.append({"project": f.stem, "lines": float(len(f.read_text().splitlines()))})
        return EvalResult(self.name, "project", rows, anchors=[Anchor("a", "lines", 3.0, "paper")])


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "a.csv").write_text("x\n1\n2\n")
    (tmp_path / "toy" / "b.csv").write_text("x\n1\n")
    monkeypatch.setitem(base._EVALS, _CountLines.name, _CountLines())
    return tmp_path


def test_run_writes_json_and_discovers_projects(toy, tmp_path):
    result, path = run_evaluation("count-lines-test", toy, tmp_path / "out")
    data = json.loads(path.read_text())
    assert [r["project"] for r in data["rows"]] == ["a", "b"]  # every project present, not a fixed list
    assert data["rows"][0]["lines"] == 3.0 and data["rows"][1]["lines"] == 2.0
    assert data["anchors"][0]["source"] == "paper"
    assert data["meta"]["data_dir"] == str(toy)


def test_render_puts_anchor_beside_figure(toy, tmp_path):
    result, _ = run_evaluation("count-lines-test", toy, tmp_path / "out")
    console = Console(record=True, width=120)
    render(result, console)
    text = console.export_text()
    assert "lines (paper)" in text
    row_a = next(line for line in text.splitlines() if " a " in line)
    assert "3.000" in row_a


def test_unknown_evaluation_lists_known(toy):
    with pytest.raises(UnknownNameError, match="unknown evaluation 'nope'; known: .*count-lines-test"):
        base.get_evaluation("nope")


def test_registry_lists_builtin_evaluations():
    assert "storypoints-baselines" in evaluation_names()
