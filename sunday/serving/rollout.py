"""Rolling out a challenger model version beside the champion: shadow traffic or a canary share, per-version
statistics, and automatic rollback.

* **shadow**: the champion answers every request; the challenger scores a copy of the same batch *after* the
  champion's answers are handed back (a background task on the replica's event loop), its answers and latency are
  compared with the champion's (e.g. agreement of the top-1 recommendation), kept in a ring (``state()``) and
  appended to a JSONL log (``$SUNDAY_HOME/serving/rollout/<model>.shadow.jsonl``) -- never returned.
* **canary**: ``share`` of the requests (chosen by a hash of the request's key -- the task or project id, else the
  request id -- so a key always lands on the same side) are answered by the challenger; the answer's
  ``model_version`` says which version answered. A challenger that raises, or answers an item with a 5xx, is
  counted as an error and that item is answered by the champion instead: the request still succeeds.
* **rollback**: after ``min_requests`` challenger requests (in the sliding window), when its error rate passes
  ``max_error_rate``, its p99 latency passes ``max_p99_ms``, or passes ``max_p99_ratio`` x the champion's p99, the
  controller switches to ``off``, the challenger is dropped and a :class:`RollbackEvent` records the reason and the
  numbers (``state()["events"]`` and ``.../<model>.events.jsonl``). The champion and the MLflow aliases are never
  touched: a new rollout is a new ``user_config``.
* **every replica**: a replica that rolls back appends the event, tagged with the rollout's id (a hash of its
  config and the two versions), to ``<model>.events.jsonl`` in the state folder. Every controller reads the new
  lines of that file at most every ``sync_s`` seconds and rolls back too when it finds its own rollout id; a replica
  that starts later with the same config (autoscaling, a restart) starts rolled back. So one replica's verdict
  holds for the deployment (replicas on several nodes need the state folder on shared storage). A new attempt with
  the same versions is a changed config (e.g. another ``salt``).

Plain classes, testable without Serve: :class:`RolloutConfig`, :class:`VersionStats`, :class:`RolloutController`
(routing, statistics, decision) and :class:`ModelRollout` (a :class:`~sunday.serving.models.RegistryModel`
champion, its challenger and the controller; ``await score(items, keys, run)`` scores a batch). The Serve
deployments of ``serve_apps/app.py`` hold one :class:`ModelRollout` each; their ``user_config`` gains
``rollout`` (see ``serve_apps/serve_config.yaml``). Statistics are per replica (each judges the traffic it sees);
a rollback is shared through the events file.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import math
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from sunday.errors import SundayError

log = logging.getLogger(__name__)

MODES = ("off", "shadow", "canary")
CHAMPION, CHALLENGER = "champion", "challenger"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RolloutConfig:
    """``mode``: off | shadow | canary. ``share``: the canary's fraction of requests (0..1). ``challenger``:
    ``{"alias": ...}`` or ``{"version": ...}`` of the same registered model. Rollback thresholds (None: not
    checked): ``max_error_rate`` (challenger errors / requests in the window), ``max_p99_ms`` (challenger p99),
    ``max_p99_ratio`` (challenger p99 / champion p99), judged once the challenger has ``min_requests`` in its window
    of the last ``window`` requests. ``shadow_log``: append shadow comparisons to JSONL. ``salt``: changes which keys
    fall in the canary."""

    mode: str = "off"
    share: float = 0.05
    challenger: dict = field(default_factory=lambda: {"alias": "challenger"})
    max_error_rate: float | None = 0.05
    max_p99_ms: float | None = None
    max_p99_ratio: float | None = 1.5
    min_requests: int = 50
    window: int = 500
    shadow_log: bool = True
    salt: str = ""
    sync_s: float = 1.0  # how often a replica reads the other replicas' rollbacks (0: on every request)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = "rollout") -> "RolloutConfig":
        d = dict(d or {})
        if d.get("mode") is False:  # YAML 1.1 reads a bare `off` as false
            d["mode"] = "off"
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise SundayError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**d)
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "rollout") -> None:
        if self.mode not in MODES:
            raise SundayError(f"{where}.mode: {self.mode!r} is not one of {list(MODES)}")
        if not isinstance(self.share, (int, float)) or not 0.0 <= float(self.share) <= 1.0:
            raise SundayError(f"{where}.share: {self.share!r} must be a number in [0, 1]")
        ch = self.challenger
        if not isinstance(ch, Mapping) or set(ch) - {"alias", "version"} or not (ch.get("alias") or ch.get("version")):
            raise SundayError(f"{where}.challenger: {ch!r} must be {{alias: ...}} or {{version: ...}}")
        for name in ("max_error_rate", "max_p99_ms", "max_p99_ratio"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or v < 0):
                raise SundayError(f"{where}.{name}: {v!r} must be a number >= 0 or null")
        if self.max_error_rate is not None and self.max_error_rate > 1:
            raise SundayError(f"{where}.max_error_rate: {self.max_error_rate} must be <= 1")
        if not isinstance(self.min_requests, int) or self.min_requests < 1:
            raise SundayError(f"{where}.min_requests: {self.min_requests!r} must be an integer >= 1")
        if not isinstance(self.window, int) or self.window < self.min_requests:
            raise SundayError(f"{where}.window: {self.window!r} must be an integer >= min_requests "
                              f"({self.min_requests})")
        if not isinstance(self.sync_s, (int, float)) or self.sync_s < 0:
            raise SundayError(f"{where}.sync_s: {self.sync_s!r} must be a number of seconds >= 0")


class VersionStats:
    """Outcomes and latencies of one model version: the last ``window`` requests (rates and percentiles) and
    lifetime totals."""

    def __init__(self, window: int = 500):
        self.window: deque[tuple[bool, float]] = deque(maxlen=window)  # (ok, latency_ms)
        self.total = 0
        self.total_errors = 0

    def record(self, ok: bool, latency_ms: float) -> None:
        self.window.append((bool(ok), float(latency_ms)))
        self.total += 1
        self.total_errors += 0 if ok else 1

    @property
    def count(self) -> int:
        return len(self.window)

    @property
    def errors(self) -> int:
        return sum(1 for ok, _ in self.window if not ok)

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of the window's latencies (None when empty)."""
        lat = sorted(ms for _, ms in self.window)
        if not lat:
            return None
        return lat[min(len(lat) - 1, max(0, math.ceil(q * len(lat)) - 1))]

    @property
    def p50(self) -> float | None:
        return self.quantile(0.50)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)

    def snapshot(self) -> dict[str, Any]:
        return {"count": self.count, "errors": self.errors, "error_rate": self.error_rate, "p50_ms": self.p50,
                "p99_ms": self.p99, "total": self.total, "total_errors": self.total_errors}


@dataclass
class RollbackEvent:
    at: str
    model: str
    mode: str
    challenger_version: str | None
    champion_version: str | None
    reason: str
    challenger: dict
    champion: dict
    rollout_id: str = ""
    replica: str = ""  # host:pid of the replica that judged it


@dataclass
class Decision:
    rollback: bool
    reason: str = ""
    event: RollbackEvent | None = None


class RolloutController:
    """Routing, per-version statistics and the rollback rule of one rollout (thread-safe)."""

    def __init__(self, config: RolloutConfig, model: str = "", champion_version: str | None = None,
                 challenger_version: str | None = None, log_dir: Path | None = None, ring: int = 100,
                 on_rollback: Callable[[RollbackEvent], None] | None = None):
        config.validate()
        self.config, self.model = config, model
        self.mode = config.mode
        self.champion_version, self.challenger_version = champion_version, challenger_version
        self.stats = {CHAMPION: VersionStats(config.window), CHALLENGER: VersionStats(config.window)}
        self.events: list[RollbackEvent] = []
        self.shadow_ring: deque = deque(maxlen=ring)
        self.shadow_compared = 0
        self.shadow_agreed = 0
        self.routed = {CHAMPION: 0, CHALLENGER: 0}
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.on_rollback = on_rollback
        self.started_at = _now()
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.rollout_id = rollout_id(config, champion_version, challenger_version)
        self._offset = 0  # bytes of the events file already read
        self._next_sync = 0.0
        if self.active:
            self.sync(force=True)  # rolled back before this replica started?

    # -- routing ----------------------------------------------------------------------------------------------
    def share_of(self, key: str) -> float:
        """A key's position in [0, 1): the canary takes the keys below ``share``."""
        h = hashlib.sha256(f"{self.config.salt}:{key}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2.0 ** 64

    def route(self, key: str | None) -> str:
        """``"challenger"`` for the canary's share of keys (stable per key; a request without a key draws at
        random), else ``"champion"`` (also in shadow mode: the champion answers)."""
        self.sync()
        side = CHAMPION
        if self.mode == "canary":
            pos = self.share_of(str(key)) if key is not None else self._rng.random()
            side = CHALLENGER if pos < self.config.share else CHAMPION
        with self._lock:
            self.routed[side] += 1
        return side

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    @property
    def active(self) -> bool:
        return self.mode != "off"

    # -- statistics and the rule -------------------------------------------------------------------------------
    def record(self, version: str, ok: bool, latency_ms: float) -> Decision | None:
        """One request's outcome on ``version`` (champion | challenger); a challenger outcome is judged at once
        (the :class:`Decision` when it rolled back, else None)."""
        if version not in self.stats:
            raise SundayError(f"record: version must be {CHAMPION!r} or {CHALLENGER!r}, not {version!r}")
        with self._lock:
            self.stats[version].record(ok, latency_ms)
        if version == CHALLENGER and self.active:
            d = self.check()
            return d if d.rollback else None
        return None

    def evaluate(self) -> tuple[bool, str]:
        """(passes a threshold, why) without acting."""
        c = self.config
        with self._lock:
            ch, cp = self.stats[CHALLENGER], self.stats[CHAMPION]
            if ch.count < c.min_requests:
                return False, f"{ch.count} challenger requests < min_requests {c.min_requests}"
            if c.max_error_rate is not None and ch.error_rate > c.max_error_rate:
                return True, (f"challenger error rate {ch.error_rate:.3f} ({ch.errors}/{ch.count}) > max_error_rate "
                              f"{c.max_error_rate}")
            p99 = ch.p99
            if c.max_p99_ms is not None and p99 is not None and p99 > c.max_p99_ms:
                return True, f"challenger p99 {p99:.1f} ms > max_p99_ms {c.max_p99_ms}"
            if c.max_p99_ratio is not None and p99 is not None and cp.count >= c.min_requests and cp.p99:
                ratio = p99 / cp.p99
                if ratio > c.max_p99_ratio:
                    return True, (f"challenger p99 {p99:.1f} ms = {ratio:.2f} x champion p99 {cp.p99:.1f} ms > "
                                  f"max_p99_ratio {c.max_p99_ratio}")
            return False, "within thresholds"

    def check(self) -> Decision:
        """Judge the challenger; past a threshold: mode off, a :class:`RollbackEvent` recorded (once)."""
        if not self.active:
            return Decision(False, "rollout is off")
        bad, why = self.evaluate()
        if not bad:
            return Decision(False, why)
        with self._lock:
            if self.mode == "off":  # another thread rolled back meanwhile
                return Decision(False, "rollout is off")
            event = RollbackEvent(_now(), self.model, self.mode, self.challenger_version, self.champion_version,
                                  why, self.stats[CHALLENGER].snapshot(), self.stats[CHAMPION].snapshot(),
                                  self.rollout_id, _replica())
            self.mode = "off"
            self.events.append(event)
        log.warning("rollout of %s v%s rolled back: %s", self.model, self.challenger_version, why)
        self._append("events", asdict(event))
        if self.on_rollback is not None:
            self.on_rollback(event)
        return Decision(True, why, event)

    def sync(self, force: bool = False) -> RollbackEvent | None:
        """Read the events file's new lines (at most every ``sync_s`` s unless ``force``); a rollback of this
        rollout by another replica rolls this one back too (the event it adopted, else None)."""
        if self.log_dir is None or not self.active:
            return None
        now = time.monotonic()
        if not force and now < self._next_sync:
            return None
        self._next_sync = now + float(self.config.sync_s)
        path = self.log_dir / f"{self.model or 'model'}.events.jsonl"
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return None
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        found = None
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("rollout_id") == self.rollout_id:
                found = rec
        if found is None:
            return None
        with self._lock:
            if self.mode == "off":
                return None
            event = RollbackEvent(_now(), self.model, self.mode, self.challenger_version, self.champion_version,
                                  f"rolled back by replica {found.get('replica') or '?'} at {found.get('at')}: "
                                  f"{found.get('reason')}", self.stats[CHALLENGER].snapshot(),
                                  self.stats[CHAMPION].snapshot(), self.rollout_id, _replica())
            self.mode = "off"
            self.events.append(event)
        log.warning("rollout of %s v%s rolled back (another replica): %s", self.model, self.challenger_version,
                    found.get("reason"))
        if self.on_rollback is not None:
            self.on_rollback(event)
        return event

    # -- shadow ----------------------------------------------------------------------------------------------
    def record_shadow(self, key: str | None, champion: Mapping[str, Any], challenger: Mapping[str, Any] | None,
                      latency_ms: float, agree: bool | None, error: str | None = None) -> None:
        """One shadow comparison (kept in the ring, counted, appended to the JSONL log)."""
        rec = {"at": _now(), "key": key, "champion_version": self.champion_version,
               "challenger_version": self.challenger_version, "agree": agree, "latency_ms": latency_ms,
               "error": error, "champion": _brief(champion), "challenger": _brief(challenger)}
        with self._lock:
            self.shadow_ring.append(rec)
            if agree is not None:
                self.shadow_compared += 1
                self.shadow_agreed += int(bool(agree))
        if self.config.shadow_log:
            self._append("shadow", rec)

    def _append(self, kind: str, rec: dict) -> None:
        if self.log_dir is None:
            return
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{self.model or 'model'}.{kind}.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, default=str) + "\n")
        except OSError as exc:  # the log is best effort: never fail a request for it
            log.warning("rollout log %s: %s", kind, exc)

    def state(self) -> dict[str, Any]:
        """For an admin / metrics view: mode, versions, per-version stats, routing counts, shadow agreement,
        rollback events, recent shadow comparisons."""
        with self._lock:
            return {
                "model": self.model, "mode": self.mode, "configured_mode": self.config.mode,
                "share": self.config.share if self.config.mode == "canary" else None,
                "champion_version": self.champion_version, "challenger_version": self.challenger_version,
                "started_at": self.started_at, "rollout_id": self.rollout_id,
                "thresholds": {k: getattr(self.config, k) for k in ("max_error_rate", "max_p99_ms", "max_p99_ratio",
                                                                    "min_requests", "window")},
                "stats": {CHAMPION: self.stats[CHAMPION].snapshot(), CHALLENGER: self.stats[CHALLENGER].snapshot()},
                "routed": dict(self.routed),
                "shadow": {"compared": self.shadow_compared, "agreed": self.shadow_agreed,
                           "agreement": self.shadow_agreed / self.shadow_compared if self.shadow_compared else None,
                           "recent": list(self.shadow_ring)[-10:]},
                "events": [asdict(e) for e in self.events],
            }


def rollout_id(config: RolloutConfig, champion_version: str | None, challenger_version: str | None) -> str:
    """One rollout's id: its config (``sync_s`` aside) and the two versions; every replica computes the same."""
    d = {k: v for k, v in asdict(config).items() if k != "sync_s"}
    blob = json.dumps([d, champion_version, challenger_version], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _replica() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _brief(answer: Mapping[str, Any] | None) -> dict | None:
    """The part of an answer worth logging (no per-candidate reasons)."""
    if answer is None:
        return None
    keep = ("model_version", "recommended_user", "confidence", "expected", "risk_class", "delay_days", "error",
            "status")
    out = {k: answer[k] for k in keep if k in answer}
    if "alternatives" in answer:
        out["top"] = [a.get("user_id") for a in answer["alternatives"][:3] if isinstance(a, Mapping)]
    return out


def failed(result: Any) -> bool:
    """A challenger answer that counts as its error: not a dict, or a 5xx. A 4xx is the request's fault (the
    champion answers it the same way) and counts as a good answer."""
    return not isinstance(result, Mapping) or int(result.get("status", 200) or 200) >= 500


Run = Callable[[Any, list], Awaitable[list]]


class ModelRollout:
    """The champion (a :class:`~sunday.serving.models.RegistryModel`), the challenger loaded beside it and the
    :class:`RolloutController` between them.

    ``make(alias, version)`` builds a model of the same class (the challenger); ``compare(champion_answer,
    challenger_answer) -> bool | None`` is the shadow agreement (e.g. same recommended user); ``metrics``: an
    :class:`~sunday.serving.metrics.ApiMetrics` (per version, tagged ``endpoint=<model>:<role>``)."""

    def __init__(self, champion, make: Callable[[str | None, str | None], Any],
                 compare: Callable[[Mapping, Mapping], bool | None] | None = None, metrics: Any = None,
                 log_dir: Path | None = None):
        self.champion, self.make, self.compare, self.metrics = champion, make, compare, metrics
        self.log_dir = log_dir
        self.challenger = None
        self.controller: RolloutController | None = None
        self._pending: set[asyncio.Task] = set()

    @property
    def name(self) -> str:
        return self.champion.name

    def reconfigure(self, user_config: Mapping[str, Any] | None) -> None:
        """``{alias|version, rollout: {...}}``: the champion as before (:meth:`RegistryModel.reconfigure`), then the
        rollout: mode off drops the challenger; shadow / canary loads it (beside: the serving state switches only
        once it is loaded) and starts a fresh controller."""
        user_config = dict(user_config or {})
        cfg = RolloutConfig.from_dict(user_config.pop("rollout", None), where=f"{self.name}: rollout")
        self.champion.reconfigure(user_config)
        champ = self.champion.current.version
        history = list(self.controller.events) if self.controller is not None else []
        if cfg.mode == "off":
            controller = None
            if self.controller is not None:  # keep the rollout's history visible
                controller = RolloutController(cfg, self.name, champ, None, self.log_dir)
                controller.events = history
            self.challenger, self.controller = None, controller
            return
        alias, version = cfg.challenger.get("alias"), cfg.challenger.get("version")
        challenger = self.challenger
        if challenger is None:
            challenger = self.make(alias, None if version is None else str(version))
        else:
            challenger.reconfigure({"version": str(version)} if version is not None else {"alias": alias})
        if challenger.current.version == champ:
            raise SundayError(f"{self.name}: rollout.challenger {cfg.challenger} is version {champ}, the champion "
                              f"itself")
        controller = RolloutController(cfg, self.name, champ, challenger.current.version, self.log_dir,
                                       on_rollback=self._rolled_back)
        controller.events = history + controller.events  # + a rollback another replica already made
        if not controller.active:
            challenger = None
        self.challenger, self.controller = challenger, controller

    def _rolled_back(self, _event: RollbackEvent) -> None:
        self.challenger = None  # unload: the controller keeps the event and the numbers

    def _observe(self, role: str, version: str | None, ok: bool, ms: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(f"{self.name}:{role}", 200 if ok else 500, ms, version)

    async def score(self, items: Sequence[dict], keys: Sequence[str | None], run: Run) -> list:
        """Answers of ``items`` (one per item), through ``run(model, items)`` for each side's sub-batch."""
        items = list(items)
        if self.controller is not None:
            self.controller.sync()  # another replica's rollback of this rollout (at most every sync_s)
        ctl, challenger = self.controller, self.challenger
        if ctl is None or not ctl.active or challenger is None:
            return await self._timed(CHAMPION, self.champion, items, run, record=ctl is not None)
        if ctl.shadow:
            copies = copy.deepcopy(items)  # before the champion sees them: the challenger gets the request as sent
            answers = await self._timed(CHAMPION, self.champion, items, run)
            task = asyncio.ensure_future(self._shadow(ctl, challenger, copies, list(keys), answers, run))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return answers
        sides = [ctl.route(k) for k in keys]
        mine = [i for i, s in enumerate(sides) if s == CHALLENGER]
        theirs = [i for i, s in enumerate(sides) if s == CHAMPION]
        results: list = [None] * len(items)
        fallback: list[int] = []
        if mine:
            t0 = time.perf_counter()
            try:
                out = await run(challenger, [items[i] for i in mine])
                if len(out) != len(mine):
                    raise RuntimeError(f"challenger returned {len(out)} answers for {len(mine)} requests")
            except Exception as exc:  # noqa: BLE001 - any challenger failure falls back to the champion
                log.warning("challenger %s v%s failed a batch of %d: %r", self.name, ctl.challenger_version,
                            len(mine), exc)
                out = [None] * len(mine)
            ms = (time.perf_counter() - t0) * 1e3
            for i, r in zip(mine, out):
                bad = failed(r)
                self._observe(CHALLENGER, ctl.challenger_version, not bad, ms)
                ctl.record(CHALLENGER, not bad, ms)
                if bad:
                    fallback.append(i)
                else:
                    results[i] = r
        rest = sorted(theirs + fallback)
        if rest:
            for i, r in zip(rest, await self._timed(CHAMPION, self.champion, [items[i] for i in rest], run)):
                results[i] = r
        return results

    async def _timed(self, role: str, model, items: list, run: Run, record: bool = True) -> list:
        t0 = time.perf_counter()
        out = await run(model, items)
        ms = (time.perf_counter() - t0) * 1e3
        ctl = self.controller
        if record and ctl is not None:
            for r in out:
                ok = not failed(r)
                ctl.record(role, ok, ms)
                self._observe(role, ctl.champion_version, ok, ms)
        return out

    async def _shadow(self, ctl: RolloutController, challenger, items: list, keys: list, champion_results: list,
                      run: Run) -> None:
        await asyncio.sleep(0)  # let the champion's answers go out first
        t0 = time.perf_counter()
        error = None
        try:
            out = await run(challenger, items)
        except Exception as exc:  # noqa: BLE001
            out, error = [None] * len(items), repr(exc)
        ms = (time.perf_counter() - t0) * 1e3
        for k, mine, theirs in zip(keys, out, champion_results):
            bad = failed(mine)
            agree = None
            if not bad and self.compare is not None and not failed(theirs) and "error" not in theirs:
                agree = self.compare(theirs, mine)
            ctl.record_shadow(k, theirs, mine, ms, agree, error if bad else None)
            self._observe(CHALLENGER + "-shadow", ctl.challenger_version, not bad, ms)
            ctl.record(CHALLENGER, not bad, ms)

    async def drain(self) -> None:
        """Wait for the shadow work in flight (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def state(self) -> dict[str, Any]:
        if self.controller is None:
            return {"model": self.name, "mode": "off", "champion_version": self.champion.current.version,
                    "challenger_version": None, "events": []}
        return self.controller.state()

    def info(self) -> dict[str, Any]:
        """The champion's info, plus the rollout's mode and challenger version when one is on."""
        out = self.champion.info()
        ctl = self.controller
        if ctl is not None:
            out["rollout"] = {"mode": ctl.mode, "challenger_version": ctl.challenger_version,
                              "rolled_back": bool(ctl.events)}
        return out


def same_top1(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> bool | None:
    """Shadow agreement of the assignment model: the same recommended user."""
    a, b = champion.get("recommended_user"), challenger.get("recommended_user")
    return None if a is None or b is None else a == b


def same_risk_class(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> bool | None:
    """Shadow agreement of the timeline model: the same risk class."""
    a, b = champion.get("risk_class"), challenger.get("risk_class")
    return None if a is None or b is None else a == b


def assignment_key(item: Mapping[str, Any], request_id: str | None = None) -> str | None:
    """The canary key of an assign-task request: ``rollout_key``, else the task id (unless the schema's default
    ``new-task``), else the request id."""
    if item.get("rollout_key"):
        return str(item["rollout_key"])
    tid = (item.get("task") or {}).get("task_id")
    if tid and tid != "new-task":
        return str(tid)
    return request_id or None


def rollout_dir(settings) -> Path:
    return Path(settings.home) / "serving" / "rollout"
