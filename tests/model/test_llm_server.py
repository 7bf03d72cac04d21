"""The embedded LLM behind the project's own OpenAI-compatible server, called through the HTTP client on loopback:
uvicorn serving ``build_openai_app(EmbeddedLLM())`` in a thread (completions, usage, stop sequences, ``max_tokens``,
streaming, a prompt over the context window, an unknown model), and the ``serve_apps/llm.py`` Ray Serve
deployment answering the same client."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from sunday.nlp.llm import EmbeddedLLM, LLMRequestRejected, OpenAICompatibleLLM

ROOT = Path(__file__).resolve().parents[2]  # serve_apps/ lives here, beside sunday/
MODEL = "smollm2-135m-instruct"
ASK = [{"role": "system", "content": "You answer in one short sentence."},
       {"role": "user", "content": "What is a sprint in agile project management?"}]

pytestmark = pytest.mark.timeout(180)  # the first test also loads the model (~16 s on 2 free cores)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def embedded() -> EmbeddedLLM:
    # one torch thread while generating: as fast on 2 idle cores for a 135M model, and 5-10x faster than 2 threads
    # when the cores are shared (other tests, other processes)
    return EmbeddedLLM(threads=1).load()


@pytest.fixture(scope="module")
def server(embedded):
    """``http://127.0.0.1:<port>/v1``: uvicorn in a daemon thread over the app of the (loaded) embedded model."""
    import uvicorn

    from sunday.nlp.openai_api import build_openai_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(build_openai_app(embedded), host="127.0.0.1", port=port,
                                       log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, name="llm-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the LLM test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def client(server):
    llm = OpenAICompatibleLLM(server, MODEL, timeout_s=120, retries=0)
    yield llm
    llm.close()


def test_chat_over_http_matches_the_embedded_model(client, embedded):
    c = client.chat(ASK, max_tokens=24)
    assert c.text.strip() and c.model == MODEL and c.finish_reason in ("stop", "length")
    assert c.prompt_tokens == embedded.prompt_ids(ASK).shape[1]
    assert 1 <= c.completion_tokens <= 24
    # greedy: the server's answer is the embedded model's own
    assert embedded.chat(ASK, max_tokens=24).text == c.text


def test_max_tokens_is_respected(client):
    c = client.chat(ASK, max_tokens=3)
    assert c.finish_reason == "length" and c.completion_tokens == 3 and c.text


def test_stop_sequences(client):
    full = client.chat(ASK, max_tokens=16).text
    words = full.split()
    assert len(words) >= 3, full
    stop = " " + words[2]  # the third word: generation ends before it
    c = client.chat(ASK, max_tokens=16, stop=[stop, "\u2603"])
    assert c.finish_reason == "stop"
    assert c.text == full[:full.index(stop)] and stop not in c.text
    assert c.completion_tokens < 16


def test_seeded_sampling_is_reproducible(client):
    a = client.chat(ASK, max_tokens=8, temperature=0.8, seed=11)
    b = client.chat(ASK, max_tokens=8, temperature=0.8, seed=11)
    assert a.text == b.text and a.text


def test_streaming_sends_the_same_completion(server):
    import httpx

    body = {"model": MODEL, "messages": ASK, "max_tokens": 8, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=120) as h:
        plain = h.post(f"{server}/chat/completions", json={**body, "stream": False}).json()
        with h.stream("POST", f"{server}/chat/completions", json=body) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == plain["usage"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


def test_concurrent_requests_are_served_and_the_loop_stays_free(client, server):
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        start = time.perf_counter()
        futures = [pool.submit(client.chat, ASK, max_tokens=16) for _ in range(3)]
        time.sleep(0.2)  # generating now: the event loop still answers at once (generation runs in the threadpool)
        t0 = time.perf_counter()
        assert httpx.get(f"{server.removesuffix('/v1')}/health", timeout=30).status_code == 200
        health_s = time.perf_counter() - t0
        texts = {f.result().text for f in futures}
        busy_s = time.perf_counter() - t0
    assert len(texts) == 1  # one generate at a time: same greedy answer for each
    # a blocked loop would answer only once the three generations are done
    assert health_s < 0.5 * busy_s, (health_s, busy_s, time.perf_counter() - start)


def test_prompt_over_the_context_window_is_413(client):
    with pytest.raises(LLMRequestRejected) as info:
        client.chat([{"role": "user", "content": "plan " * 9000}], max_tokens=8)
    assert info.value.status_code == 413 and info.value.code == "context_length_exceeded"
    assert "field 'messages' is too large" in str(info.value) and "tokens" in str(info.value)


def test_unknown_model_is_a_clear_404(server):
    llm = OpenAICompatibleLLM(server, "gpt-4o", retries=0)
    with pytest.raises(LLMRequestRejected, match="model 'gpt-4o' does not exist") as info:
        llm.chat(ASK, max_tokens=2)
    assert info.value.status_code == 404 and info.value.code == "model_not_found"


# -- Ray Serve -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def serve_llm(ray_session):
    """``serve_apps/llm.py`` deployed as app ``llm`` under ``/llm``; its ``/v1`` base URL.

    Serve runs one HTTP proxy per Ray cluster. When Serve already runs (another module started it and is still
    using it), the app joins it on its port and only the app is deleted afterwards; otherwise Serve starts here on a
    free loopback port and is shut down at the end of the module, so a later module (``test_serve_app``) can start
    it with its own port."""
    from ray import serve
    from ray.serve.context import _get_global_client

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import serve_apps.llm as sl

    running = _get_global_client(raise_if_no_controller_running=False)
    if running is None:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    else:
        port = running.http_config.port
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    try:
        try:
            serve.run(sl.build_llm_app({"num_cpus": 0.5, "runtime_env": {"env_vars": {"PYTHONPATH": path}}}),
                      name="llm", route_prefix="/llm", blocking=False)
        except RuntimeError as exc:  # DEPLOY_FAILED: say why (the replica's traceback)
            app = serve.status().applications.get("llm")
            why = {k: v.message[-3000:] for k, v in (app.deployments if app else {}).items() if v.message}
            raise RuntimeError(f"{exc}: {why}") from None
        yield f"http://127.0.0.1:{port}/llm/v1"
    finally:
        try:
            serve.delete("llm")
        finally:
            if running is None:
                serve.shutdown()


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_serve_deployment_answers_the_client(serve_llm):
    import httpx

    llm = OpenAICompatibleLLM(serve_llm, MODEL, timeout_s=120, retries=0)
    try:
        c = llm.chat(ASK, max_tokens=6)
        assert c.text.strip() and c.completion_tokens <= 6 and c.prompt_tokens > 10 and c.model == MODEL
        with pytest.raises(LLMRequestRejected) as info:
            OpenAICompatibleLLM(serve_llm, "nope", retries=0).chat(ASK, max_tokens=2)
        assert info.value.status_code == 404
    finally:
        llm.close()
    models = httpx.get(f"{serve_llm}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [MODEL]
