"""Token budgets, the per-request cap, the prompt cache, size limits and chunking (sunday.nlp.guard)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from sunday.nlp.errors import InputTooLarge, TokenBudgetExceeded
from sunday.nlp.guard import (GuardConfig, GuardedLLM, PromptCache, TokenBudget, check_text, chunk_text,
                              period_window, prompt_key)
from sunday.nlp.llm import Completion


def ts(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


class EchoLLM:
    """A deterministic backend: answers with the last message's first words; counts calls."""

    model = "echo"
    context_window = 2048

    def __init__(self, fail: bool = False):
        self.calls, self.fail = 0, fail

    def count_tokens(self, text: str) -> int:
        return words(text)

    def chat(self, messages, *, max_tokens=256, temperature=0.0, stop=None, seed=None) -> Completion:
        self.calls += 1
        if self.fail:
            raise RuntimeError("backend down")
        text = " ".join(messages[-1]["content"].split()[:3])
        return Completion(text, prompt_tokens=20, completion_tokens=3, model=self.model, finish_reason="stop")


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- periods and budgets ------------------------------------------------------------------------------------------
def test_period_window_day_and_month():
    key, nxt = period_window("day", ts(2025, 3, 14, 23, 0))
    assert key == "2025-03-14" and nxt == ts(2025, 3, 15)
    key, nxt = period_window("month", ts(2025, 12, 31, 12))
    assert key == "2025-12" and nxt == ts(2026, 1, 1)
    with pytest.raises(ValueError, match="period"):
        period_window("week", 0)


def test_budget_refuses_with_retry_after_and_resets_next_period(tmp_path):
    clock = Clock(ts(2025, 3, 14, 23, 0))
    budget = TokenBudget(tmp_path / "b.db", 100, clock=clock)
    budget.record("ws", 80)
    budget.check("ws", 20)  # exactly at the limit is fine
    with pytest.raises(TokenBudgetExceeded) as exc:
        budget.check("ws", 21)
    assert exc.value.status_code == 429 and exc.value.headers() == {"Retry-After": "3600"}
    assert (exc.value.used, exc.value.requested, exc.value.limit) == (80, 21, 100)
    assert budget.used("other") == 0  # workspaces are separate
    clock.t = ts(2025, 3, 15, 0, 0, 1)  # the next day
    assert budget.used("ws") == 0
    budget.check("ws", 100)


def test_budget_month_period_and_per_workspace_limit(tmp_path):
    clock = Clock(ts(2025, 2, 27))
    budget = TokenBudget(tmp_path / "b.db", 1000, period="month", per_workspace={"small": 10}, clock=clock)
    budget.record("small", 10)
    budget.record("big", 500)
    with pytest.raises(TokenBudgetExceeded) as exc:
        budget.reserve("small", 1)
    assert exc.value.retry_after_s == 2 * 86_400  # to March 1st
    clock.t = ts(2025, 2, 28, 23, 59)
    assert budget.used("big") == 500  # same month
    with pytest.raises(TokenBudgetExceeded) as exc:
        budget.check("big", 2000)  # larger than the whole budget: no Retry-After to promise
    assert exc.value.headers() == {}


def test_budget_refund_never_goes_negative(tmp_path):
    budget = TokenBudget(tmp_path / "b.db", 100)
    assert budget.reserve("ws", 30) == 30
    assert budget.record("ws", -10) == 20
    assert budget.record("ws", -500) == 0
    assert budget.remaining("ws") == 100


def test_budget_reservations_across_connections_never_overspend(tmp_path):
    """Two connections (as two processes would have) reserve concurrently: exactly limit / size succeed."""
    path = tmp_path / "b.db"
    budgets = [TokenBudget(path, 100), TokenBudget(path, 100)]
    ok, refused = [], []

    def worker(b: TokenBudget):
        for _ in range(20):
            try:
                b.reserve("ws", 7)
                ok.append(1)
            except TokenBudgetExceeded:
                refused.append(1)
        b.close()  # sqlite connections belong to their thread

    threads = [threading.Thread(target=worker, args=(b,)) for b in budgets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 100 // 7 and len(refused) == 40 - 100 // 7
    assert TokenBudget(path, 100).used("ws") == 7 * (100 // 7)


def test_one_budget_object_is_shared_by_threads(tmp_path):
    budget = TokenBudget(tmp_path / "b.db", 1000)
    budget.used("ws")  # the connection is opened in this thread
    threads = [threading.Thread(target=lambda: [budget.record("ws", 1) for _ in range(50)]) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.used("ws") == 150


def test_budget_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError, match="limit_per_period"):
        TokenBudget(tmp_path / "b.db", 0)
    with pytest.raises(ValueError, match="period"):
        TokenBudget(tmp_path / "b.db", 10, period="year")


# -- cache --------------------------------------------------------------------------------------------------------
def test_prompt_key_is_canonical():
    m1 = [{"role": "user", "content": "hi"}]
    m2 = [{"content": "hi", "role": "user"}]
    assert prompt_key("m", m1, 10, None, 0) == prompt_key("m", m2, 10, None, 0)
    assert prompt_key("m", m1, 10, "x", 0) == prompt_key("m", m1, 10, ["x"], 0)
    assert len({prompt_key("m", m1, 10, None, 0), prompt_key("m", m1, 11, None, 0), prompt_key("n", m1, 10, None, 0),
                prompt_key("m", m1, 10, None, 1)}) == 4


def test_cache_lru_eviction_and_ttl(tmp_path):
    clock = Clock(1000.0)
    cache = PromptCache(tmp_path / "c.db", max_entries=2, ttl_s=60, clock=clock)
    cache.put("a", {"text": "A"})
    clock.t += 1
    cache.put("b", {"text": "B"})
    clock.t += 1
    assert cache.get("a") == {"text": "A"}  # a is now the most recent
    clock.t += 1
    cache.put("c", {"text": "C"})  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("a") and cache.get("c") and len(cache) == 2
    clock.t += 120
    assert cache.get("a") is None  # expired


# -- the guarded backend ------------------------------------------------------------------------------------------
def msgs(text: str = "plan the sprint review please") -> list[dict]:
    return [{"role": "user", "content": text}]


def test_guarded_cache_hit_spends_no_budget(tmp_path):
    llm = EchoLLM()
    g = GuardedLLM(llm, GuardConfig(budget_tokens=10_000), tmp_path)
    first = g.chat(msgs(), workspace_id="ws", max_tokens=50)
    used = g.budget.used("ws")
    assert not first.cached and used == 23  # the reservation settled to the real usage
    second = g.chat(msgs(), workspace_id="ws", max_tokens=50)
    assert second.cached and second.text == first.text and llm.calls == 1
    assert g.budget.used("ws") == used
    g.chat(msgs(), workspace_id="ws", max_tokens=50, temperature=0.7)  # sampling is never cached
    assert llm.calls == 2
    g.chat(msgs(), workspace_id="other", max_tokens=50)  # the cache is shared; the budget is per workspace
    assert llm.calls == 2 and g.budget.used("other") == 0


def test_guarded_budget_exceeded_and_refund_on_failure(tmp_path):
    g = GuardedLLM(EchoLLM(), GuardConfig(budget_tokens=100, cache=False), tmp_path)
    with pytest.raises(TokenBudgetExceeded):
        g.chat(msgs(), workspace_id="ws", max_tokens=95)  # 5 words + 8 overhead + 95 > 100
    g.chat(msgs(), workspace_id="ws", max_tokens=50)
    assert g.budget.used("ws") == 23
    failing = GuardedLLM(EchoLLM(fail=True), GuardConfig(budget_tokens=100, cache=False), tmp_path)
    with pytest.raises(RuntimeError):
        failing.chat(msgs(), workspace_id="ws", max_tokens=50)
    assert failing.budget.used("ws") == 23  # the failed call's reservation was refunded


def test_guarded_size_limits_name_the_field(tmp_path):
    g = GuardedLLM(EchoLLM(), GuardConfig(max_request_tokens=100, max_input_chars=200, cache=False), tmp_path)
    with pytest.raises(InputTooLarge) as exc:
        g.chat(msgs("x" * 201), workspace_id="ws")
    assert exc.value.field == "messages" and exc.value.status_code == 413 and exc.value.limit == 200
    with pytest.raises(InputTooLarge) as exc:
        g.chat(msgs("word " * 30), workspace_id="ws", max_tokens=80)  # 30 + 8 + 80 > 100
    assert exc.value.field == "prompt" and exc.value.size == 118
    with pytest.raises(ValueError, match="workspace_id"):
        g.chat(msgs(), workspace_id=" ")


def test_workspace_view_has_the_plain_protocol(tmp_path):
    from sunday.nlp.llm import LLM

    view = GuardedLLM(EchoLLM(), GuardConfig(), tmp_path).for_workspace("ws")
    assert isinstance(view, LLM)
    assert view.chat(msgs(), max_tokens=10).text == "plan the sprint"
    assert view.guarded.budget.used("ws") == 23


def test_config_from_env():
    env = {"SUNDAY_LLM_BUDGET_TOKENS": "5_000", "SUNDAY_LLM_BUDGET_PERIOD": "Month",
           "SUNDAY_LLM_MAX_REQUEST_TOKENS": "1024", "SUNDAY_LLM_CACHE": "off"}
    c = GuardConfig.from_env(env)
    assert (c.budget_tokens, c.period, c.max_request_tokens, c.cache, c.max_input_chars) == (
        5000, "month", 1024, False, 60_000)
    assert GuardConfig.from_env({}) == GuardConfig()
    with pytest.raises(ValueError, match="SUNDAY_LLM_BUDGET_TOKENS"):
        GuardConfig.from_env({"SUNDAY_LLM_BUDGET_TOKENS": "lots"})
    with pytest.raises(ValueError, match="SUNDAY_LLM_CACHE"):
        GuardConfig.from_env({"SUNDAY_LLM_CACHE": "maybe"})


def test_for_settings_puts_state_under_home(settings, monkeypatch):
    monkeypatch.setenv("SUNDAY_LLM_BUDGET_TOKENS", "77")
    g = GuardedLLM.for_settings(settings, EchoLLM())
    assert g.budget.path == settings.home / "nlp" / "budget.db" and g.budget.limit("x") == 77
    assert g.cache is not None and g.cache.path == settings.home / "nlp" / "prompt_cache.db"


# -- size checks and chunking -------------------------------------------------------------------------------------
def test_check_text():
    assert check_text("query", "abc", 3) == "abc"
    with pytest.raises(InputTooLarge, match="field 'query' is too large: 4 characters, the limit is 3"):
        check_text("query", "abcd", 3)
    with pytest.raises(InputTooLarge) as exc:
        check_text("transcript", "a b c", 2, unit="tokens", count=words)
    assert (exc.value.field, exc.value.size, exc.value.unit) == ("transcript", 3, "tokens")


def test_chunk_text_on_turn_boundaries_with_overlap():
    turns = [f"Speaker{i % 3}: this is turn number {i} of the meeting." for i in range(12)]
    text = "\n".join(turns)
    chunks = chunk_text(text, 30, words, overlap=1)
    assert len(chunks) > 1
    assert all(words(c) <= 30 for c in chunks)
    for c in chunks:  # every chunk is whole turns
        assert all(line in turns for line in c.split("\n"))
    for a, b in zip(chunks, chunks[1:]):  # consecutive chunks share one turn
        assert a.split("\n")[-1] == b.split("\n")[0]
    assert [t for t in turns if not any(t in c for c in chunks)] == []
    no_overlap = chunk_text(text, 30, words, overlap=0)
    assert "\n".join(no_overlap).split("\n") == turns


def test_chunk_text_splits_sentences_and_overlong_units():
    text = "First sentence here. Second one follows! " + " ".join(["word"] * 25) + ". Last."
    chunks = chunk_text(text, 10, words, overlap=0)
    assert all(words(c) <= 10 for c in chunks)
    assert chunks[0] == "First sentence here.\nSecond one follows!"
    assert " ".join(chunks).split() == text.split()
    assert chunk_text("", 10, words) == []
    with pytest.raises(ValueError):
        chunk_text("x", 0, words)
