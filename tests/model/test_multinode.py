"""A real local multi-node Ray cluster: ``ray start --head`` plus a second node process on this machine (1 CPU
each, a temporary ``--temp-dir``), the pipeline submitted with ``ray job submit`` through the head's dashboard, and
its Ray Train workers (2 workers x 1 CPU) checked to have run on both nodes. Then the Serve app is deployed on the
cluster with ``serve deploy`` and a second pipeline run's promotion reaches its live replica through Serve's
``reconfigure`` (no restart). The cluster is always torn down.

It talks to the cluster only through the ``ray`` CLI (subprocesses): the session's in-process Ray (``ray_session``)
is neither used nor disturbed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CODE = ("sunday", "train_jobs", "serve_apps", "pyproject.toml")  # what the job needs of the repository


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(args: list[str], env: dict, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"ray {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n"
                             f"{out.stderr[-3000:]}")
    return out


def _ours(tmp: Path) -> list[int]:
    """Pids of this cluster's processes: their command line or environment names its temp dir (``ray stop``
    would stop every Ray on the machine, other users' included)."""
    mark = str(tmp).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mark in (proc / "cmdline").read_bytes() or b"RAY_TMPDIR=" + mark in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _stop(tmp: Path, grace: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _ours(tmp)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + grace
        while pids and time.time() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster():
    """``(dashboard url, env)`` of a 2-node cluster (head + one worker node, 1 CPU each), stopped after."""
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.skip("no ray CLI beside this Python")
    # a short temp dir: Ray's unix socket paths must stay under ~107 characters
    tmp = Path(tempfile.mkdtemp(prefix="rmn-", dir="/tmp"))
    port, dash = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # `ray start --head` turns token authentication on: every command of ours uses this cluster's own token
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    env.update({"RAY_TMPDIR": str(tmp), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
                "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    try:
        _ray(["start", "--head", "--num-cpus", "1", "--port", str(port), "--dashboard-port", str(dash),
              "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--temp-dir", str(tmp),
              "--ray-client-server-port", str(_free_port()), "--dashboard-agent-listen-port", str(_free_port()),
              "--disable-usage-stats"], env)
        # two nodes on one machine: the second node needs its own dashboard agent port (default 52365 for all)
        # and its own temp dir (a shared one means a shared runtime_resources folder: the second node unpacking
        # the job's working dir replaces the folder the driver runs in)
        _ray(["start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--dashboard-agent-listen-port",
              str(_free_port()), "--temp-dir", str(tmp / "node2"), "--disable-usage-stats"], env)
        url = f"http://127.0.0.1:{dash}"
        deadline = time.time() + 120
        while True:  # both nodes registered
            out = _ray(["status", "--address", f"127.0.0.1:{port}"], env, check=False)
            if out.stdout.count("node_") >= 2 and "2.0 CPU" in out.stdout.replace("0.0/2.0", "2.0 CPU"):
                break
            if time.time() > deadline:
                raise AssertionError(f"the two nodes did not come up:\n{out.stdout}\n{out.stderr}")
            time.sleep(2)
        yield url, env, tmp
    finally:
        _stop(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def job_env(tmp_path_factory):
    """``(code, home)``: a small clean copy of the code (the checkout also holds caches and state, ~200 MB) as the
    jobs' working dir, and the state folder every job and the Serve app share."""
    root = tmp_path_factory.mktemp("multinode")
    code = root / "code"
    for name in CODE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, code / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            code.mkdir(exist_ok=True)
            shutil.copy2(src, code / name)
    return code, root / "state"


def _submit_pipeline(url: str, env: dict, code: Path, home: Path, result: Path, *pipeline_args: str) -> str:
    """``ray job submit`` the pipeline; its logs (asserting it succeeded)."""
    runtime_env = {"env_vars": {"SUNDAY_HOME": str(home), "SUNDAY_DATA_DIR": os.environ.get(
        "SUNDAY_DATA_DIR", str(ROOT.parent / "shared" / "data")), "OMP_NUM_THREADS": "1"}}
    args = ["job", "submit", "--address", url, "--working-dir", str(code), "--runtime-env-json",
            json.dumps(runtime_env), "--", "python", "train_jobs/pipeline.py", "--profile", "quick",
            *pipeline_args, "--json", str(result)]
    deadline = time.time() + 120
    while True:  # the head's job agent takes a moment after `ray start`
        submit = _ray(args, env, timeout=840, check=False)
        if "No available agent" not in submit.stdout + submit.stderr or time.time() > deadline:
            break
        time.sleep(3)
    noise = ("packaging.py:", "working_dir.py:", "dashboard_sdk.py:")
    logs = "\n".join(line for line in (submit.stdout + submit.stderr).splitlines()
                     if not any(n in line for n in noise))[-8000:]
    assert submit.returncode == 0 and "succeeded" in (submit.stdout + submit.stderr).lower(), logs
    return logs


def test_pipeline_job_spreads_ray_train_over_two_nodes(cluster, job_env, tmp_path):
    url, env, _tmp = cluster
    code, home = job_env
    result = tmp_path / "result.json"
    logs = _submit_pipeline(url, env, code, home, result, "--models", "priority_scorer,personalization_cf",
                            "--num-workers", "2", "--set", "personalization_cf.epochs=2", "--reason",
                            "multinode test")
    data = json.loads(result.read_text())
    assert data["ok"] and data["cluster_nodes"] == 2, logs
    assert len(set(data["train_nodes"])) == 2, (data["train_nodes"], logs)
    run_dir = Path(data["run_dir"])
    cf = json.loads((run_dir / "personalization_cf" / "train.json").read_text())["result"]
    assert len(set(cf["train_nodes"])) == 2, cf["train_nodes"]  # Ray Train's 2 workers on both nodes
    prio = json.loads((run_dir / "priority_scorer" / "train.json").read_text())["result"]
    assert prio["info"]["ray_task_node"] in data["train_nodes"], prio  # a tree model: its own Ray task
    assert {v["status"] for v in data["verdicts"].values()} == {"promoted"}, data["verdicts"]
    assert data["reconfigure"]["summary"].startswith("no Serve app"), data["reconfigure"]
    steps = data["steps"]
    assert {"extract", "validate", "personalization_cf/train", "personalization_cf/promote", "reconfigure"} <= set(
        steps)


def _get(url: str, headers: dict | None = None, body: dict | None = None, timeout: float = 30) -> dict:
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=timeout) as r:  # loopback
        return json.loads(r.read())


def _served_models(base: str) -> dict[str, dict]:
    return {m["name"]: m for m in _get(f"{base}/api/v1/ml/health")["models"]}


def test_promotion_reconfigures_the_live_serve_app(cluster, job_env, tmp_path):
    """``serve deploy`` the app (no assignment / timeline / NLP / anomaly: this cluster has no such models) on the
    state of the first test (priority_scorer v1 champion), run the pipeline again (v2, same settings: the gate
    passes), and see the running Personalization replica switch to v2 in place: the CF model it loaded at start is
    not reloaded, and score-priority answers with v2."""
    import yaml

    url, env, _tmp = cluster
    code, home = job_env
    sys.path.insert(0, str(ROOT))
    from sunday.settings import Settings

    settings = Settings(home=home)
    http = _free_port()
    app = {"name": "sunday", "route_prefix": "/", "import_path": "serve_apps.app:build_app",
           "args": {"home": str(home), "sim": "pipeline-quick", "assignment": False, "timeline": False,
                    "nlp": False, "anomaly": False, "embeddings": False, "max_replicas": 1},
           "runtime_env": {"env_vars": {"PYTHONPATH": str(code), "SUNDAY_HOME": str(home),
                                        "OMP_NUM_THREADS": "1"}},
           # 0 CPUs: the pipeline's Ray Train workers take the cluster's 2 CPUs while the app runs
           "deployments": [{"name": n, "ray_actor_options": {"num_cpus": 0}}
                           for n in ("Ingress", "Events", "Personalization")]}
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"proxy_location": "HeadOnly",  # two nodes on one machine: one HTTP port
                                      "http_options": {"host": "127.0.0.1", "port": http},
                                      "applications": [app]}))
    serve = [str(BIN / "serve")]
    t0 = time.time()
    out = subprocess.run([*serve, "deploy", str(config), "--address", url], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    base = f"http://127.0.0.1:{http}"
    deadline, status = time.time() + 300, ""
    while time.time() < deadline:
        status = subprocess.run([*serve, "status", "--address", url], env=env, capture_output=True, text=True,
                                timeout=60).stdout
        if "DEPLOY_FAILED" in status:
            break
        try:
            before = _served_models(base)
            if {"priority_scorer", "personalization_cf"} <= set(before):
                break
        except OSError:
            pass
        time.sleep(3)
    else:
        raise AssertionError(f"the Serve app did not come up:\n{status}")
    assert "DEPLOY_FAILED" not in status, status
    assert before["priority_scorer"]["version"] == "1", before
    up_s = time.time() - t0

    result = tmp_path / "result.json"
    t0 = time.time()
    logs = _submit_pipeline(url, env, code, home, result, "--models", "priority_scorer", "--reason",
                            "reconfigure test", "--max-latency-ratio", "10", "--latency-slack-ms", "100")
    data = json.loads(result.read_text())
    verdict = data["verdicts"]["priority_scorer"]
    assert verdict["status"] == "promoted" and str(verdict["version"]) == "2", (verdict, logs)
    changed = data["reconfigure"]["changed"]
    assert changed == ["sunday/Personalization user_config={'champions': {'priority_scorer': '2'}}"], (
        data["reconfigure"], logs)

    job_s, t0 = time.time() - t0, time.time()
    deadline = time.time() + 180
    while time.time() < deadline:
        after = _served_models(base)
        if after["priority_scorer"]["version"] == "2":
            break
        time.sleep(2)
    assert after["priority_scorer"]["version"] == "2", after
    switch_s = time.time() - t0
    assert after["personalization_cf"] == before["personalization_cf"]  # same replica: CF was not reloaded

    from sunday.features.platform import simulation_path
    from sunday.serving.directory import _table
    from sunday.serving.keys import default_keystore

    tasks = _table(simulation_path(settings, "pipeline-quick"), "tasks", ["task_id", "workspace_id"])
    ws = str(tasks["workspace_id"].iloc[0])
    token = default_keystore(settings).create(ws, "viewer", name="test_multinode")[1]
    ids = tasks.loc[tasks["workspace_id"] == ws, "task_id"].astype(str).head(3).tolist()
    scored = _get(f"{base}/api/v1/ml/score-priority", {"Authorization": f"Bearer {token}"}, {"task_ids": ids})
    assert scored["model_version"] == "2" and [s["task_id"] for s in scored["scores"]] == ids
    print(f"\nserve deploy -> app answering: {up_s:.1f} s; pipeline job (submit to SUCCEEDED): {job_s:.1f} s "
          f"(pipeline {data['seconds']:.1f} s, reconfigure step {data['steps']['reconfigure']['seconds']:.2f} s); "
          f"job end -> replica on v2: {switch_s:.1f} s; {verdict['line']}")
