"""CLI bad input: one line on stderr naming the problem, exit code 2, no stack trace."""

import pytest

from sunday.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def _state(settings):
    return settings


def test_unknown_dataset(capsys):
    code, _, err = _run(capsys, "data", "import", "nosuch")
    assert code == 2
    line = _one_line_error(err)
    assert "unknown dataset 'nosuch'" in line and "storypoints" in line


def test_missing_dataset_folder(capsys, tmp_path):
    code, _, err = _run(capsys, "data", "import", "storypoints", "--data-dir", str(tmp_path / "nowhere"))
    assert code == 2
    assert "nowhere" in _one_line_error(err)


def test_malformed_csv_row(capsys, tmp_path):
    folder = tmp_path / "data" / "storypoints_deepse"
    folder.mkdir(parents=True)
    (folder / "proj.csv").write_text(
        "issuekey,title,description,storypoint,split_mark\n"
        "P-1,a,b,3,train\n"
        "P-2,a,b,3,train,extra\n")
    code, _, err = _run(capsys, "data", "import", "storypoints", "--data-dir", str(tmp_path / "data"))
    assert code == 2
    line = _one_line_error(err)
    assert "proj.csv" in line and "line 3" in line


@pytest.mark.parametrize("value", ["-5", "0"])
def test_non_positive_event_count(capsys, value):
    code, _, err = _run(capsys, "data", "simulate", "--events", value, "--engine", "local")
    assert code == 2
    assert "--events" in _one_line_error(err)


def test_not_a_number_event_count(capsys):
    code, _, err = _run(capsys, "data", "simulate", "--events", "many")
    assert code == 2
    assert "--events" in _one_line_error(err)


def test_unknown_engine(capsys):
    code, _, err = _run(capsys, "data", "simulate", "--events", "10", "--engine", "spark")
    assert code == 2
    assert "--engine" in _one_line_error(err)


def test_unknown_evaluation(capsys):
    code, _, err = _run(capsys, "eval", "nosuch")
    assert code == 2
    assert "unknown evaluation 'nosuch'" in _one_line_error(err)


def test_eval_lists_evaluations(capsys):
    code, out, _ = _run(capsys, "eval")
    assert code == 0 and "storypoints-baselines" in out


def test_info_without_ray(capsys):
    code, out, _ = _run(capsys, "info", "--no-ray")
    assert code == 0
    assert "MLFLOW_TRACKING_URI" in out and "ray" in out


def test_pipeline_run_has_the_jobs_flags_and_exit_codes(capsys):
    """``sunday pipeline run`` and ``python train_jobs/pipeline.py`` share one parser (sunday.pipeline.cli)."""
    code, out, err = _run(capsys, "pipeline", "run", "--help")
    assert code == 0 and "usage: sunday pipeline run" in out and "--latency-slack-ms" in out and "--num-workers" in out
    code, _, err = _run(capsys, "pipeline", "run", "--profile", "huge")
    assert code == 2 and "profile must be one of quick, full" in err and "Traceback" not in err
    code, _, err = _run(capsys, "pipeline", "run", "--models", "nosuch")
    assert code == 2 and "unknown ['nosuch']" in err
    code, _, err = _run(capsys, "pipeline", "run", "--bogus")
    assert code == 2 and "unrecognized arguments: --bogus" in err
