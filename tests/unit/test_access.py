"""Serving access layer: API keys (hashed), roles, workspace isolation, token-bucket rate limits (memory and a real
redis-server), the append-only durable audit log (across SIGKILLed writer processes) and the ``keys`` CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sunday.errors import SundayError
from sunday.serving.audit import AuditLog, default_audit_log, summarize_request
from sunday.serving.errors import AuditUnavailable, Forbidden, InvalidField, NotFound, RateLimited, Unauthorized
from sunday.serving.keys import (KeyStore, Principal, Role, bearer_token, check_workspace, default_keystore,
                                 require)
from sunday.serving.ratelimit import (InMemoryTokenBucket, RateLimit, RateLimitConfig, RedisTokenBucket,
                                      make_rate_limiter)

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture()
def clock():
    return FakeClock()


@pytest.fixture()
def store(settings, clock):
    s = default_keystore(settings, clock=clock)
    yield s
    s.close()


# --------------------------------------------------------------------------- keys


def test_keystore_lives_in_state_folder_and_stores_only_a_hash(settings, store):
    key_id, token = store.create("ws-a", "member", name="ci bot")
    assert store.path == settings.home / "serving" / "keys.db"
    assert store.path.stat().st_mode & 0o777 == 0o600  # owner-only
    assert token.startswith(f"sk_{key_id}_") and len(token.split("_", 2)[2]) >= 40
    secret = token.split("_", 2)[2]
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob("keys.db*"))
    assert secret.encode() not in raw and token.encode() not in raw
    assert key_id.encode() in raw  # the public part is stored (sanity check that we read the right files)
    info = store.list()
    assert [(k.key_id, k.workspace_id, k.role, k.name) for k in info] == [(key_id, "ws-a", Role.MEMBER, "ci bot")]
    assert secret not in repr(info)


def test_verify_valid_wrong_malformed(store):
    key_id, token = store.create("ws-a", Role.ADMIN)
    p = store.verify(token)
    assert p == Principal(key_id=key_id, workspace_id="ws-a", role=Role.ADMIN, name=None)
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    other_id = f"sk_{'0' * 16}_{token.split('_', 2)[2]}"
    for bad in (wrong, other_id, "", None, "sk_", "Bearer " + token, token + "x", f"sk_{key_id}", "sk_XYZ_abc" * 3):
        assert store.verify(bad) is None, bad
    assert store.authenticate(f"Bearer {token}") == p
    for header in (None, "", "Basic abc", "Bearer", f"Bearer {wrong}"):
        with pytest.raises(Unauthorized) as exc:
            store.authenticate(header)
        assert exc.value.status_code == 401 and exc.value.headers() == {"WWW-Authenticate": "Bearer"}
    assert bearer_token(f"bearer  {token} ") == token


def test_revoke_immediate_here_within_ttl_elsewhere(settings, store, clock):
    key_id, token = store.create("ws-a", "viewer")
    replica = default_keystore(settings, clock=clock, cache_ttl=5.0)  # another process's view of the same file
    try:
        assert replica.verify(token) is not None  # now cached in the replica
        assert store.verify(token) is not None
        assert store.revoke(key_id) is True
        assert store.verify(token) is None  # same process: at once
        assert replica.verify(token) is not None  # other process: still cached ...
        clock.advance(5.01)
        assert replica.verify(token) is None  # ... but no longer than the TTL
        assert store.revoke(key_id) is False  # idempotent
        with pytest.raises(NotFound):
            store.revoke("0123456789abcdef")
        assert [k.status() for k in store.list()] == ["revoked"]
    finally:
        replica.close()


def test_expiry_is_exact_even_when_cached(store, clock):
    _, token = store.create("ws-a", "member", expires_at=clock() + 10)
    assert store.verify(token) is not None  # cached from here on
    clock.advance(9.9)
    assert store.verify(token) is not None
    clock.advance(0.2)
    assert store.verify(token) is None
    _, t2 = store.create("ws-a", "member", expires_at=datetime.fromtimestamp(clock() + 60, tz=timezone.utc))
    assert store.verify(t2) is not None
    with pytest.raises(InvalidField) as exc:
        store.create("ws-a", "member", expires_at=clock() - 1)
    assert exc.value.field == "expires_at"


@pytest.mark.parametrize("args, field", [
    (("ws", "owner"), "role"),
    (("ws", ""), "role"),
    (("", "viewer"), "workspace_id"),
    (("   ", "viewer"), "workspace_id"),
    ((None, "viewer"), "workspace_id"),
])
def test_create_validation_names_the_field(store, args, field):
    with pytest.raises(InvalidField) as exc:
        store.create(*args)
    assert isinstance(exc.value, SundayError) and exc.value.field == field and f"'{field}'" in str(exc.value)
    assert exc.value.status_code == 400


def test_roles_are_ordered_and_required(store):
    assert Role.VIEWER < Role.MEMBER < Role.ADMIN and Role.ADMIN >= Role.ADMIN and not Role.ADMIN < Role.VIEWER
    assert sorted([Role.ADMIN, Role.VIEWER, Role.MEMBER]) == [Role.VIEWER, Role.MEMBER, Role.ADMIN]
    assert Role.parse("Admin") is Role.ADMIN and Role.MEMBER > "viewer"
    viewer = Principal("k1", "ws", Role.VIEWER)
    admin = Principal("k2", "ws", Role.ADMIN)
    assert require(viewer, "viewer") is viewer and require(admin, Role.MEMBER) is admin
    with pytest.raises(Forbidden) as exc:
        require(viewer, Role.MEMBER)
    assert exc.value.status_code == 403 and "member" in str(exc.value)


def test_workspace_isolation_even_for_admins(store):
    _, token_a = store.create("ws-a", "admin")
    _, token_b = store.create("ws-b", "viewer")
    pa, pb = store.verify(token_a), store.verify(token_b)
    assert check_workspace(pa, "ws-a") is pa and check_workspace(pb, "ws-b") is pb
    for p, other in ((pa, "ws-b"), (pb, "ws-a"), (pa, "ws-a-2"), (pa, "WS-A")):
        with pytest.raises(Forbidden):
            check_workspace(p, other)
    assert [k.workspace_id for k in store.list("ws-b")] == ["ws-b"]


# --------------------------------------------------------------------------- rate limits


def _exhaust(bucket, ws, n):
    return [bucket.acquire(ws) for _ in range(n)]


def test_memory_bucket_burst_refuse_refill(clock):
    cfg = RateLimitConfig(default=RateLimit(rate=2.0, burst=3), workspaces={"big": (100.0, 50)})
    b = InMemoryTokenBucket(cfg, clock=clock)
    assert _exhaust(b, "ws", 3) == [(True, 0.0)] * 3
    allowed, retry = b.acquire("ws")
    assert not allowed and retry == pytest.approx(0.5)
    assert b.acquire("other") == (True, 0.0)  # buckets are per workspace
    assert all(ok for ok, _ in _exhaust(b, "big", 50)) and not b.acquire("big")[0]
    clock.advance(0.25)
    allowed, retry = b.acquire("ws")
    assert not allowed and retry == pytest.approx(0.25)
    clock.advance(0.25)
    assert b.acquire("ws") == (True, 0.0)
    clock.advance(100)  # refill is capped at the burst
    assert [ok for ok, _ in _exhaust(b, "ws", 4)] == [True, True, True, False]
    clock.advance(1.0)
    assert b.acquire("ws", cost=2) == (True, 0.0)
    with pytest.raises(RateLimited) as exc:
        b.check("ws", cost=2)
    assert exc.value.status_code == 429 and exc.value.retry_after == pytest.approx(1.0)
    assert exc.value.headers() == {"Retry-After": "1"}
    for bad in (0, -1, float("nan"), 4):
        with pytest.raises(InvalidField):
            b.acquire("ws", cost=bad)
    with pytest.raises(InvalidField) as e2:
        RateLimit(rate=0, burst=1)
    assert e2.value.field == "rate"


def test_memory_bucket_is_thread_safe():
    b = InMemoryTokenBucket(RateLimitConfig(default=RateLimit(rate=1e-6, burst=100)))
    results: list[bool] = []
    lock = threading.Lock()

    def worker():
        got = [b.acquire("ws")[0] for _ in range(50)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 100 and len(results) == 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server binary not installed")
    import redis

    folder = tmp_path_factory.mktemp("redis")
    for _ in range(3):
        port = _free_port()
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                 "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            proc.kill()
            proc.wait()
            continue
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            client.close()
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        return
    pytest.skip("could not start redis-server")


def test_redis_bucket_same_semantics(redis_url, clock):
    cfg = RateLimitConfig(default=RateLimit(rate=2.0, burst=3))
    b = RedisTokenBucket(redis_url, cfg, prefix=f"test:{time.time_ns()}:", clock=clock)
    assert _exhaust(b, "ws", 3) == [(True, 0.0)] * 3
    allowed, retry = b.acquire("ws")
    assert not allowed and retry == pytest.approx(0.5)
    assert b.acquire("other") == (True, 0.0)
    clock.advance(0.25)
    allowed, retry = b.acquire("ws")
    assert not allowed and retry == pytest.approx(0.25)
    clock.advance(0.25)
    assert b.acquire("ws") == (True, 0.0)
    clock.advance(100)
    assert [ok for ok, _ in _exhaust(b, "ws", 4)] == [True, True, True, False]
    with pytest.raises(RateLimited):
        b.check("ws")
    ttl = b.client.pttl(b.key("ws"))
    assert 0 < ttl <= 2600  # state expires once the bucket would be full again


def test_redis_bucket_server_time_atomic_and_shared(redis_url):
    prefix = f"test:{time.time_ns()}:"
    cfg = RateLimitConfig(default=RateLimit(rate=20.0, burst=2))
    b1, b2 = RedisTokenBucket(redis_url, cfg, prefix=prefix), RedisTokenBucket(redis_url, cfg, prefix=prefix)
    assert b1.acquire("ws")[0] and b2.acquire("ws")[0]  # two replicas share one bucket
    allowed, retry = b1.acquire("ws")
    assert not allowed and 0 < retry <= 0.05 + 1e-6
    time.sleep(0.06)
    assert b2.acquire("ws")[0]

    slow = RedisTokenBucket(redis_url, RateLimitConfig(default=RateLimit(rate=1e-6, burst=100)), prefix=prefix)
    results: list[bool] = []
    lock = threading.Lock()

    def worker():
        got = [slow.acquire("atomic")[0] for _ in range(40)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 100 and len(results) == 200


def test_redis_unreachable_fails_open_or_closed(settings):
    url = f"redis://127.0.0.1:{_free_port()}/0"
    assert RedisTokenBucket(url).acquire("ws") == (True, 0.0)
    assert RedisTokenBucket(url, fail_open=False).acquire("ws") == (False, 1.0)
    assert isinstance(make_rate_limiter(settings), InMemoryTokenBucket)
    assert isinstance(make_rate_limiter(settings.model_copy(update={"redis_url": url})), RedisTokenBucket)


# --------------------------------------------------------------------------- audit log


def test_audit_record_read_and_redaction(settings):
    log = default_audit_log(settings)
    assert log.path == settings.home / "serving" / "audit.db"
    p = Principal("k1", "ws-a", Role.MEMBER)
    token = "sk_0123456789abcdef_" + "S" * 43
    t0 = time.time()
    ids = [log.record(endpoint="/v1/predict/effort", status=200, principal=p, model_name="effort",
                      model_version="7", latency_ms=3.5, request_id=f"r{i}",
                      request={"task_id": i, "authorization": token, "text": "x" * 5000, "note": f"see {token}"})
           for i in range(3)]
    log.record(endpoint="/v1/predict/effort", status=403, workspace_id="ws-b", key_id="k9", role="viewer")
    assert ids == sorted(ids) and len(set(ids)) == 3
    recs = log.read(workspace_id="ws-a")
    assert [r.id for r in recs] == ids[::-1]  # newest first
    r = recs[0]
    assert (r.key_id, r.workspace_id, r.role, r.status, r.model_name, r.model_version, r.latency_ms,
            r.request_id) == ("k1", "ws-a", "member", 200, "effort", "7", 3.5, "r2")
    assert r.ts.tzinfo is not None and abs(r.ts.timestamp() - t0) < 60
    body = json.loads(r.request)
    assert body["task_id"] == 2 and body["authorization"] == "[redacted]" and "S" * 20 not in r.request
    assert len(body["text"]) < 300 and token not in r.request
    assert len(log.read()) == 4 and len(log.read(limit=1)) == 1
    assert log.read(since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
    assert [x.status for x in log.read(workspace_id="ws-b")] == [403]
    assert len(json.loads(summarize_request({"a": ["y" * 300] * 100}, max_chars=500))["preview"]) <= 500
    with pytest.raises(InvalidField):
        log.read(limit=0)
    log.close()


def test_audit_is_append_only(settings):
    log = default_audit_log(settings)
    log.record(endpoint="/v1/predict", status=200, workspace_id="ws")
    conn = sqlite3.connect(log.path)
    try:
        for sql in ("UPDATE audit_log SET status = 500", "DELETE FROM audit_log", "DELETE FROM audit_log WHERE id=1",
                    "UPDATE audit_log SET workspace_id = 'other' WHERE id = 1"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
        conn.rollback()
        assert conn.execute("SELECT COUNT(*), MIN(status) FROM audit_log").fetchone() == (1, 200)
    finally:
        conn.close()
    assert log.count() == 1
    log.close()


def test_audit_unwritable_raises_audit_unavailable(tmp_path):
    log = AuditLog(tmp_path / "a.db", deadline_s=0.2)
    blocker = sqlite3.connect(tmp_path / "a.db", isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the write lock for too long
    log._connection().execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(AuditUnavailable) as exc:
            log.record(endpoint="/x", status=200)
        assert exc.value.status_code == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.record(endpoint="/x", status=200) == 1
    log.close()


_WRITER = r"""
import sys
from sunday.serving.audit import AuditLog
log = AuditLog(sys.argv[1])
tag = sys.argv[2]
print("ready", flush=True)
i = 0
while True:
    rid = log.record(endpoint="/v1/predict", status=200, workspace_id="ws-" + tag, key_id=tag,
                     model_name="m", model_version="1", latency_ms=0.1, request_id=f"{tag}-{i}",
                     request={"i": i})
    sys.stdout.write(f"{rid} {tag}-{i}\n")
    sys.stdout.flush()
    i += 1
"""


def test_audit_acknowledged_records_survive_sigkill_of_concurrent_writers(tmp_path):
    db = tmp_path / "serving" / "audit.db"
    AuditLog(db).close()  # create the schema once (the writers would race to create it otherwise too)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), tag], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, env=env) for tag in ("a", "b")]
    lines: dict[str, list[str]] = {"a": [], "b": []}

    def reader(p, tag):  # one thread per child, so neither child ever blocks on a full pipe
        for line in p.stdout:  # acks still in the pipe after the kill were printed after record() returned too
            lines[tag].append(line)

    readers = [threading.Thread(target=reader, args=(p, tag), daemon=True) for p, tag in zip(procs, ("a", "b"))]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for t in readers:
            t.start()
        # both write concurrently; kill them mid-stream once each has acknowledged a good number of records
        deadline = time.monotonic() + 20
        while min(len(v) for v in lines.values()) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=10)
        for t in readers:
            t.join(timeout=10)
    counts = {tag: len(v) for tag, v in lines.items()}
    assert min(counts.values()) >= 200, (counts, [p.stderr.read()[-2000:] for p in procs])
    acked: dict[int, str] = {}
    for line in (line for v in lines.values() for line in v):
        rid, req = line.split()
        acked[int(rid)] = req
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = dict(conn.execute("SELECT id, request_id FROM audit_log").fetchall())
    finally:
        conn.close()
    missing = {rid: req for rid, req in acked.items() if rows.get(rid) != req}
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {list(missing.items())[:5]}"
    assert len(rows) >= len(acked) and len(set(rows.values())) == len(rows)  # no duplicates, no reuse
    with AuditLog(db, deadline_s=5) as log:  # a writer killed while holding the writer lock does not block others
        assert log.record(endpoint="/v1/predict", status=200) > max(rows)


# --------------------------------------------------------------------------- CLI


@pytest.fixture()
def cli(settings):
    import typer
    from typer.testing import CliRunner

    from sunday.cli_keys import keys_app

    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["keys", *args])


def test_cli_create_list_revoke_audit(cli, settings):
    res = cli("create", "--workspace", "ws-a", "--role", "member", "--name", "bot")
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert token.startswith("sk_") and "\n" not in token
    assert "not stored" in res.stderr
    store = default_keystore(settings)
    p = store.verify(token)
    assert p is not None and (p.workspace_id, p.role, p.name) == ("ws-a", Role.MEMBER, "bot")

    res = cli("list")
    assert res.exit_code == 0 and p.key_id in res.stdout and "active" in res.stdout
    assert token.split("_", 2)[2] not in res.output
    assert p.key_id not in cli("list", "--workspace", "ws-b").stdout

    res = cli("create", "-w", "ws-b", "-r", "viewer", "--expires-in-days", "1")
    assert res.exit_code == 0 and "expires" in res.stderr

    assert cli("revoke", p.key_id).exit_code == 0
    store.clear_cache()
    assert store.verify(token) is None
    assert "already revoked" in cli("revoke", p.key_id).stdout
    store.close()

    log = default_audit_log(settings)
    log.record(endpoint="/v1/predict/effort", status=200, principal=p, model_name="effort", model_version="4",
               latency_ms=2.25, request_id="req-77")
    log.close()
    res = cli("audit", "--workspace", "ws-a", "--limit", "5")
    assert res.exit_code == 0, res.output
    assert "req-77" in res.stdout and "effort" in res.stdout and "2.2" in res.stdout
    assert "req-77" not in cli("audit", "--workspace", "ws-b").stdout


@pytest.mark.parametrize("args, needle", [
    (("create", "--workspace", "ws", "--role", "owner"), "'role'"),
    (("create", "--workspace", "", "--role", "viewer"), "'workspace_id'"),
    (("create", "--workspace", "ws", "--role", "viewer", "--expires-in-days", "0"), "--expires-in-days"),
    (("revoke", "feedfacefeedface"), "unknown API key id"),
    (("audit", "--limit", "0"), "'limit'"),
])
def test_cli_errors_are_sunday_errors(cli, args, needle):
    res = cli(*args)
    assert isinstance(res.exception, SundayError), res.output
    assert needle in str(res.exception) and res.exception.exit_code == 2
