"""An OpenAI-compatible HTTP app over any :class:`~sunday.nlp.llm.LLM` backend.

``build_openai_app(llm)`` answers the subset of the OpenAI API that the project's client
(:class:`~sunday.nlp.llm.OpenAICompatibleLLM`), the OpenAI SDK and curl need:

* ``POST /v1/chat/completions``: ``model``, ``messages`` (roles system/user/assistant, ``developer`` read as
  system; string content or a list of ``{"type": "text"}`` parts), ``max_tokens`` (or ``max_completion_tokens``;
  default 256, at most 1024), ``temperature`` (0 to 2; default 1 as in the OpenAI API, 0 is greedy), ``stop``
  (string or up to 4 strings), ``seed``, ``n`` (must be 1), ``stream`` (SSE chunks; the completion is generated
  first and then sent in pieces, so streaming changes the transport, not the latency to the first token).
  ``top_p`` and other sampling fields are accepted and ignored.
* ``GET /v1/models``: the served model; ``GET /health``.

Every error has the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``: 400 for invalid input (the
``param`` names the field, e.g. ``messages[1].role``), 404 for an unknown model or route, 413 for a prompt over the
context window, 503 when the backend is unavailable. Generation runs in the threadpool, so the event loop keeps
answering while a completion is computed.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sunday.nlp.errors import InputTooLarge, NlpError
from sunday.nlp.llm import LLM, Completion, InvalidChatInput, validate_messages, validate_options

log = logging.getLogger(__name__)

MAX_TOKENS_CAP = 1024
DEFAULT_MAX_TOKENS = 256
MAX_PROMPT_CHARS = 256_000  # refused before tokenizing (far above what fits the 8192-token window)
STREAM_PIECE_CHARS = 16
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "function-after", "function-before"}


class ChatRequest(BaseModel):
    """The accepted subset of an OpenAI chat completion request (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[Any]
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float | None = None  # accepted, ignored
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class OpenAIError(Exception):
    """An error answered in the OpenAI shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str | None = None, headers: dict[str, str] | None = None):
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type_ or ("invalid_request_error" if status < 500 else "server_error")
        self.headers = headers or {}
        super().__init__(message)

    def response(self):
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status, headers=self.headers)


def _loc(loc: tuple) -> str:
    """A pydantic error location as a field path: ('body', 'messages', 1, 'role') -> 'messages[1].role'."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, str) and out and ("[" in part or part in _TYPE_TAGS):
            break  # the member of a union that failed (stop.str, stop.list[str]): not a field
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _from_nlp_error(exc: NlpError) -> OpenAIError:
    status = int(getattr(exc, "status_code", 400))
    if isinstance(exc, InputTooLarge):
        return OpenAIError(413, str(exc), param=exc.field, code="context_length_exceeded")
    if isinstance(exc, InvalidChatInput):
        return OpenAIError(400, str(exc), param=exc.field, code="invalid_value")
    headers = exc.headers() if hasattr(exc, "headers") else {}
    return OpenAIError(status, str(exc), param=getattr(exc, "param", None), code=getattr(exc, "code", None),
                       headers=headers)


def _normalise_messages(messages: list[Any]) -> list[dict]:
    """OpenAI message forms -> ``{"role", "content": str}``: text parts joined, ``developer`` read as system."""
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            m = dict(m)
            if m.get("role") == "developer":
                m["role"] = "system"
            content = m.get("content")
            if isinstance(content, list):
                texts = []
                for j, part in enumerate(content):
                    if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"),
                                                                                                 str)):
                        raise InvalidChatInput(f"messages[{i}].content[{j}]", "only text parts are supported")
                    texts.append(part["text"])
                m["content"] = "".join(texts)
        out.append(m)
    return validate_messages(out)


def build_openai_app(llm: LLM, model_name: str | None = None):
    """The FastAPI app serving ``llm`` as ``model_name`` (default ``llm.model``); also answers to ``llm.model`` and
    the backend's ``aliases``. Nothing is loaded here: an embedded model loads on the first request (or before, by
    the caller)."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    served = model_name or llm.model
    names = {served, llm.model, *getattr(llm, "aliases", ())}
    created = int(time.time())
    app = FastAPI(title="Sunday ML LLM (OpenAI-compatible)", version="1")

    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError):
        return exc.response()

    @app.exception_handler(NlpError)
    async def _nlp_error(_: Request, exc: NlpError):
        return _from_nlp_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        param: str | None = _loc(tuple(first.get("loc", ())))
        kind = first.get("type", "invalid")
        if kind == "json_invalid":
            msg, param = f"the body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}", None
        elif kind == "missing" and param == "body":
            msg, param = "the request body is required: a JSON chat completion request", None
        elif kind == "missing":
            msg = f"field '{param}' is required"
        else:
            msg = f"field '{param}': {first.get('msg', 'invalid value')}"
        if len(errors) > 1:
            msg += f" (and {len(errors) - 1} more)"
        return OpenAIError(400, msg, param=param, code=kind).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return OpenAIError(exc.status_code, str(exc.detail), code=code,
                           headers=getattr(exc, "headers", None)).response()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": served}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": served, "object": "model", "created": created,
                                            "owned_by": "sunday"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        if req.model is not None and req.model not in names:
            raise OpenAIError(404, f"The model '{req.model}' does not exist; this server serves '{served}'",
                              param="model", code="model_not_found")
        if req.n != 1:
            raise OpenAIError(400, "field 'n': only n=1 is supported", param="n", code="invalid_value")
        messages = _normalise_messages(req.messages)
        chars = sum(len(m["content"]) for m in messages)
        if chars > MAX_PROMPT_CHARS:
            raise InputTooLarge("messages", chars, MAX_PROMPT_CHARS, "characters")
        max_tokens = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
        stop = validate_options(max_tokens, req.temperature, req.stop, req.seed)
        try:
            c: Completion = await run_in_threadpool(llm.chat, messages, max_tokens=max_tokens,
                                                    temperature=req.temperature, stop=stop or None, seed=req.seed)
        except NlpError:
            raise
        except Exception as exc:  # a backend bug: one line in the log and an OpenAI-shaped 500, no stack trace out
            log.exception("chat completion failed")
            raise OpenAIError(500, f"generation failed: {type(exc).__name__}", code="internal_error") from None
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        usage = {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                 "total_tokens": c.prompt_tokens + c.completion_tokens}
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(_sse(cid, served, c, usage, include_usage), media_type="text/event-stream")
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": served,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                             "finish_reason": c.finish_reason}],
                "usage": usage}

    return app


def _sse(cid: str, model: str, c: Completion, usage: dict, include_usage: bool):
    """The completion as OpenAI ``chat.completion.chunk`` server-sent events, ending with ``data: [DONE]``."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None, **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for i in range(0, len(c.text), STREAM_PIECE_CHARS):
        yield chunk({"content": c.text[i:i + STREAM_PIECE_CHARS]}, None)
    yield chunk({}, c.finish_reason)
    if include_usage:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": usage}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
