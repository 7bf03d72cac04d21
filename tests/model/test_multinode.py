"""A real local multi-node Ray cluster: ``ray start --head`` plus a second node process on this machine (1 CPU
each, a temporary ``--temp-dir``), the pipeline submitted with ``ray job submit`` through the head's dashboard, and
its Ray Train workers (2 workers x 1 CPU) checked to have run on both nodes. The cluster is always torn down.

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


@pytest.fixture
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


def test_pipeline_job_spreads_ray_train_over_two_nodes(cluster, tmp_path):
    url, env, _tmp = cluster
    home = tmp_path / "state"
    # the working dir: a small clean copy of the code (the checkout also holds caches and state, ~200 MB)
    code = tmp_path / "code"
    for name in CODE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, code / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            code.mkdir(exist_ok=True)
            shutil.copy2(src, code / name)
    result = tmp_path / "result.json"
    runtime_env = {"env_vars": {"SUNDAY_HOME": str(home), "SUNDAY_DATA_DIR": os.environ.get(
        "SUNDAY_DATA_DIR", str(ROOT.parent / "shared" / "data")), "OMP_NUM_THREADS": "1"}}
    args = ["job", "submit", "--address", url, "--working-dir", str(code), "--runtime-env-json",
                   json.dumps(runtime_env), "--",
                   "python", "train_jobs/pipeline.py", "--profile", "quick",
                   "--models", "priority_scorer,personalization_cf", "--num-workers", "2",
                   "--set", "personalization_cf.epochs=2", "--reason", "multinode test", "--json", str(result)]
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
    data = json.loads(result.read_text())
    assert data["ok"] and data["cluster_nodes"] == 2, logs
    assert len(set(data["train_nodes"])) == 2, (data["train_nodes"], logs)  # Ray Train workers on both nodes
    assert {v["status"] for v in data["verdicts"].values()} == {"promoted"}, data["verdicts"]
    assert data["reconfigure"]["summary"].startswith("no Serve app"), data["reconfigure"]
    steps = data["steps"]
    assert {"extract", "validate", "personalization_cf/train", "personalization_cf/promote", "reconfigure"} <= set(
        steps)
