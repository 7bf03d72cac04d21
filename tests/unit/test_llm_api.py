"""The LLM interface without generating: message validation names the field, ``make_llm`` picks the backend from
the settings without connecting or loading anything, the HTTP client's errors are clear, and the OpenAI-compatible
app (over the real embedded backend, which never loads here: every request fails before generation) answers bad
requests in the OpenAI error shape."""

from __future__ import annotations

import socket

import pytest

from sunday.errors import ValidationError
from sunday.nlp.errors import LLMUnavailable
from sunday.nlp.llm import (Completion, EmbeddedLLM, LLM, LLMBadResponse, OpenAICompatibleLLM, cut_at_stop,
                            make_llm, validate_messages, validate_options)

USER = {"role": "user", "content": "hello"}


@pytest.mark.parametrize("messages, field", [
    ("hello", "messages"),
    ([], "messages"),
    (["hello"], "messages[0]"),
    ([USER, {"content": "x"}], "messages[1].role"),
    ([{"role": "bot", "content": "x"}], "messages[0].role"),
    ([USER, {"role": "assistant"}], "messages[1].content"),
    ([{"role": "user", "content": ["a"]}], "messages[0].content"),
])
def test_invalid_messages_name_the_field(messages, field):
    with pytest.raises(ValidationError) as info:
        validate_messages(messages)
    assert info.value.table == "chat" and info.value.field == field
    assert f"field '{field}'" in str(info.value)
    assert info.value.status_code == 400


def test_valid_messages_are_cleaned():
    msgs = [{"role": "system", "content": "be brief", "name": "x"}, USER]
    assert validate_messages(msgs) == [{"role": "system", "content": "be brief"}, USER]


@pytest.mark.parametrize("kwargs, field", [
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": "5"}, "max_tokens"), ({"temperature": 3}, "temperature"),
    ({"stop": [1]}, "stop"), ({"stop": ["a"] * 5}, "stop"), ({"seed": 1.5}, "seed"),
])
def test_invalid_options_name_the_field(kwargs, field):
    args = {"max_tokens": 8, "temperature": 0.0, "stop": None, "seed": None, **kwargs}
    with pytest.raises(ValidationError) as info:
        validate_options(**args)
    assert info.value.field == field


def test_stop_strings():
    assert validate_options(8, 0, "END", None) == ["END"]
    assert cut_at_stop("one. two\nthree", [".", "\n"]) == ("one", True)
    assert cut_at_stop("one two", ["x"]) == ("one two", False)


def test_make_llm_picks_the_backend(monkeypatch):
    from sunday.nlp import llm as llm_mod
    from sunday.settings import Settings

    for var in ("SUNDAY_LLM_BASE_URL", "SUNDAY_LLM_MODEL", "SUNDAY_LLM_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    loaded = llm_mod.model_loaded()
    embedded = make_llm(Settings())
    assert isinstance(embedded, EmbeddedLLM) and isinstance(embedded, LLM)
    assert embedded.model == "smollm2-135m-instruct"
    assert llm_mod.model_loaded() == loaded  # constructing loads nothing

    remote = make_llm(Settings(llm_base_url="http://127.0.0.1:9/v1/", llm_model="qwen", llm_api_key="sk-test"))
    assert isinstance(remote, OpenAICompatibleLLM) and isinstance(remote, LLM)
    assert remote.base_url == "http://127.0.0.1:9/v1" and remote.model == "qwen"
    assert remote._client.headers["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in repr(remote)
    assert remote.count_tokens("x" * 40) == 11  # an estimate: no tokenizer for a remote model

    monkeypatch.setenv("SUNDAY_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert isinstance(make_llm(), OpenAICompatibleLLM)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_unreachable_server_is_llm_unavailable():
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{_closed_port()}/v1", "m", retries=1, backoff_s=0.01, timeout_s=5)
    with pytest.raises(LLMUnavailable, match="unavailable after 2 attempts: cannot connect"):
        llm.chat([USER])


def test_client_validates_before_sending():
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{_closed_port()}/v1", "m", retries=0)
    with pytest.raises(ValidationError, match="messages\\[0\\].role"):
        llm.chat([{"role": "robot", "content": "x"}])
    with pytest.raises(ValidationError, match="llm_base_url"):
        OpenAICompatibleLLM("127.0.0.1:8000", "m")


def test_client_parses_completions_and_rejects_other_answers():
    llm = OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m")
    data = {"model": "m", "choices": [{"message": {"role": "assistant", "content": "hi there"},
                                       "finish_reason": "length"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}
    assert llm._parse(data, []) == Completion("hi there", 7, 2, "m", "length")
    for bad in ({"object": "list", "data": []}, {"choices": []}, {"choices": [{"message": {"content": 5}}]}, [1]):
        with pytest.raises(LLMBadResponse, match="without a chat completion"):
            llm._parse(bad, [])


# -- the OpenAI-compatible app: bad requests fail before generation, so the model never loads ------------------------

@pytest.fixture(scope="module")
def loaded_before() -> bool:
    from sunday.nlp import llm as llm_mod

    return llm_mod.model_loaded()


@pytest.fixture(scope="module")
def api(loaded_before):
    from fastapi.testclient import TestClient

    from sunday.nlp.openai_api import build_openai_app

    with TestClient(build_openai_app(EmbeddedLLM()), raise_server_exceptions=False) as client:
        yield client


def _error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


MSG = [USER]


@pytest.mark.parametrize("body, param", [
    ({}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages[0].content[0]"),
    ({"messages": MSG, "max_tokens": 0}, "max_tokens"),
    ({"messages": MSG, "max_tokens": 5000}, "max_tokens"),
    ({"messages": MSG, "temperature": 2.5}, "temperature"),
    ({"messages": MSG, "temperature": "hot"}, "temperature"),
    ({"messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": MSG, "stop": 5}, "stop"),
    ({"messages": MSG, "n": 2}, "n"),
])
def test_app_bad_requests_are_400_in_openai_shape(api, body, param):
    err = _error(api.post("/v1/chat/completions", json=body), 400)
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert param in err["message"]


def test_app_malformed_bodies(api):
    err = _error(api.post("/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"}), 400)
    assert err["code"] == "json_invalid"
    err = _error(api.post("/v1/chat/completions"), 400)
    assert "body is required" in err["message"]


def test_app_unknown_model_and_routes(api):
    err = _error(api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": MSG}), 404)
    assert err["code"] == "model_not_found" and "gpt-4o" in err["message"]
    assert _error(api.get("/v1/nothing"), 404)["code"] == "not_found"
    assert _error(api.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_app_oversized_prompt_is_413(api):
    body = {"messages": [{"role": "user", "content": "x" * 300_000}]}
    err = _error(api.post("/v1/chat/completions", json=body), 413)
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"


def test_app_models_and_health(api):
    assert api.get("/health").json() == {"status": "ok", "model": "smollm2-135m-instruct"}
    data = api.get("/v1/models").json()
    assert data["object"] == "list" and [m["id"] for m in data["data"]] == ["smollm2-135m-instruct"]
    openapi = api.get("/openapi.json").json()
    assert "/v1/chat/completions" in openapi["paths"]


def test_app_bad_requests_never_loaded_the_model(api, loaded_before):
    from sunday.nlp import llm as llm_mod

    assert llm_mod.model_loaded() == loaded_before
