"""Any OpenAI-compatible chat server: OpenAI, vLLM, llama.cpp's server, Ollama, ...

Requests run concurrently up to ``concurrency`` connections. Each request is retried on 429, 5xx,
timeouts, dropped connections and malformed bodies with exponential backoff and jitter, waiting
at least as long as the server's ``Retry-After`` asks, at most ``max_retries`` times; then it is
returned as a ``Failure`` (recorded, not cached, asked again on resume). Logprob mode reads the
``top_logprobs`` of the first answer token; servers that give none fall back to generate mode.
The API key is sent in a header and nowhere else: not in the spec, the store or any report.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from psyprobe.errors import UserError
from psyprobe.models.base import (
    Failure,
    Model,
    ModelInfo,
    OptionProbs,
    Sampling,
    Until,
    reads_as,
)
from psyprobe.models.registry import BackendOptions, backend
from psyprobe.prompting import Prompt
from psyprobe.untrusted import one_line, storable

T = TypeVar("T")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Ask for this many alternatives where the server allows it (llama.cpp's does); OpenAI and vLLM's
# default cap at 20, and a label outside the alternatives counts as probability 0.
TOP_LOGPROBS = (100, 20)
LOGPROB_SLACK = 1e-4  # servers round; a logprob of +0.00003 is 0
# An Authorization header echoed back in an error body (the key may not be the env's own)
_BEARER = re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]+")


@dataclass(frozen=True)
class ClientSettings:
    concurrency: int = 4
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5
    backoff: float = 0.5  # first retry waits about this long, then doubles
    max_backoff: float = 30.0


class OpenAIModel(Model):
    def __init__(
        self,
        spec: str,
        model: str,
        base_url: str,
        api_key: str | None,
        client: ClientSettings = ClientSettings(),
    ):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._key = api_key
        self.client = client
        # No weights to hash: identity is the server and the model name it serves.
        ident = hashlib.sha256(f"openai|{self.base_url}|{model}".encode()).hexdigest()
        self.info = ModelInfo(
            spec=spec,
            backend="openai",
            fingerprint=f"sha256:{ident}",
            modes=("logprob", "generate"),
        )
        self.top_logprobs = TOP_LOGPROBS[-1]

    # -- connection checks -------------------------------------------------------------------

    def connect(self) -> None:
        """Fail fast and clearly: unreachable server, bad key, unknown model, no logprobs."""
        try:
            status, raw = _capped_get(f"{self.base_url}/models", self._headers, self.client.timeout)
        except httpx.HTTPError as exc:
            raise UserError(
                f"--model {self.info.spec}: cannot reach {self.base_url} ({type(exc).__name__})"
            ) from None
        if raw is None:
            raise UserError(
                f"--model {self.info.spec}: {self.base_url}/models sent more than "
                f"{MAX_BODY >> 20} MiB or took longer than --timeout {self.client.timeout:g} s"
            )
        if status in (401, 403):
            raise UserError(
                f"--model {self.info.spec}: the server refused the API key "
                f"(HTTP {status}); set OPENAI_API_KEY or --api-key-env"
            )
        if status == 200:
            try:
                served = [m["id"] for m in json.loads(raw)["data"]]
            except (ValueError, KeyError, TypeError):
                served = []
            if served and self.model not in served:
                ids = one_line(self._scrubbed(", ".join(map(str, served[:10]))))
                raise UserError(
                    f"--model {self.info.spec}: {self.base_url} does not serve "
                    f"{self.model!r} (it serves: {ids})"
                )
        probe = Prompt(None, "Answer with 1.", ("1",))
        for top in TOP_LOGPROBS:
            self.top_logprobs = top
            answer = asyncio.run(self._gather([probe], self._logprob_request))[0]
            if not (isinstance(answer, Failure) and answer.error.startswith("HTTP 400")):
                break
        if isinstance(answer, Failure):
            raise UserError(
                f"--model {self.info.spec}: the server did not answer a test "
                f"request ({answer.error})"
            )
        if answer is None:
            self.notice = (
                f"{self.base_url} returns no logprobs for {self.model}; "
                "logprob mode is not available, using generate mode"
            )
            self.info = self.info.model_copy(update={"modes": ("generate",)})

    # -- the protocol ------------------------------------------------------------------------

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        answers = asyncio.run(self._gather(prompts, self._logprob_request))
        return [Failure("the server returned no logprobs") if a is None else a for a in answers]

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Failure | None]:
        def request(
            client: httpx.AsyncClient, i: int, prompt: Prompt
        ) -> Awaitable[str | Failure | None]:
            return self._generate_request(client, prompt, sampling, seeds[i])

        return list(asyncio.run(self._gather_indexed(prompts, request)))

    # -- requests ----------------------------------------------------------------------------

    async def _gather(
        self, prompts: Sequence[Prompt], one: Callable[[httpx.AsyncClient, Prompt], Awaitable[T]]
    ) -> list[T]:
        return await self._gather_indexed(prompts, lambda c, _i, p: one(c, p))

    async def _gather_indexed(
        self,
        prompts: Sequence[Prompt],
        one: Callable[[httpx.AsyncClient, int, Prompt], Awaitable[T]],
    ) -> list[T]:
        limits = httpx.Limits(max_connections=self.client.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self.client.timeout,
            limits=limits,
        ) as client:
            # held by each attempt, not by a request: a request waiting out its backoff leaves
            # its slot to another (``_post``)
            self._gate = asyncio.Semaphore(self.client.concurrency)
            return list(await asyncio.gather(*(one(client, i, p) for i, p in enumerate(prompts))))

    def _scrubbed(self, text: str) -> str:
        """A server's error text without the API key (some echo the request headers back):
        failures are stored, reported and printed."""
        if self._key:
            text = text.replace(self._key, "[API key]")
        return _BEARER.sub("Bearer [API key]", text)

    async def _post(
        self, client: httpx.AsyncClient, payload: dict[str, Any]
    ) -> dict[str, Any] | Failure:
        error = "no attempt"
        for attempt in range(self.client.max_retries + 1):
            wait = 0.0
            try:
                # the timeout bounds each read; a server that trickles its body a byte at a
                # time would never hit it, so the whole request has a deadline too
                async with self._gate:
                    status, retry_after, raw = await asyncio.wait_for(
                        _capped_post(client, payload), timeout=self.client.timeout
                    )
            except (httpx.TimeoutException, TimeoutError):
                error = "timeout"
            except httpx.TransportError as exc:
                error = f"connection error ({type(exc).__name__})"
            else:
                if raw is None:
                    return Failure(f"a response body over {MAX_BODY >> 20} MiB")
                if status == 200:
                    try:
                        body = json.loads(raw)
                        if isinstance(body["choices"][0]["message"], dict):
                            return dict(body)
                        error = "malformed response body"
                    except (ValueError, KeyError, IndexError, TypeError):
                        error = "malformed response body"
                elif status in RETRY_STATUS:
                    error = f"HTTP {status}"
                    # honoured up to the request's whole time budget (every attempt's timeout),
                    # not beyond: "Retry-After: 100000" would otherwise stall the run for a day
                    budget = self.client.timeout * (self.client.max_retries + 1)
                    wait = min(_retry_after(retry_after), budget)
                else:
                    # the key out first, then the cut: a cut key is no longer found
                    text = raw[:100_000].decode("utf-8", "replace")
                    return Failure(f"HTTP {status}: {one_line(self._scrubbed(text))}")
            if attempt < self.client.max_retries:
                backoff = min(self.client.max_backoff, self.client.backoff * 2**attempt)
                await asyncio.sleep(max(wait, backoff * random.uniform(0.5, 1.5)))
        return Failure(f"{error} after {self.client.max_retries + 1} attempts")

    async def _logprob_request(
        self, client: httpx.AsyncClient, prompt: Prompt
    ) -> OptionProbs | Failure | None:
        body = await self._post(
            client,
            {
                "model": self.model,
                "messages": prompt.messages(),
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            },
        )
        if isinstance(body, Failure):
            return body
        try:
            top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            return None
        try:
            alternatives = [(str(t["token"]), float(t["logprob"])) for t in top]
        except (KeyError, TypeError, ValueError):
            return Failure("malformed logprobs (each alternative needs a token and a logprob)")
        # a log probability is at most 0; anything else would make the label mass exceed 1
        if not all(math.isfinite(lp) and lp <= LOGPROB_SLACK for _, lp in alternatives):
            return Failure("malformed logprobs (a logprob above 0 or not finite)")
        # Labels outside the top alternatives get probability 0; the valid-label mass shows it.
        probs = [
            sum(math.exp(min(lp, 0.0)) for token, lp in alternatives if reads_as(token, label))
            for label in prompt.labels
        ]
        if sum(probs) > 1 + 1e-6:
            return Failure("malformed logprobs (the labels' probabilities sum above 1)")
        return OptionProbs(probs=probs)

    async def _generate_request(
        self, client: httpx.AsyncClient, prompt: Prompt, sampling: Sampling, seed: int
    ) -> str | Failure | None:
        body = await self._post(
            client,
            {
                "model": self.model,
                "messages": prompt.messages(),
                "temperature": sampling.temperature,
                "max_tokens": sampling.max_tokens,
                "seed": seed,
            },
        )
        if isinstance(body, Failure):
            return body
        content = body["choices"][0]["message"].get("content")
        # kept whole, but never with the key (a server may echo the request) and never unstorable
        return storable(self._scrubbed(content)) if isinstance(content, str) else ""


# A chat answer with its logprobs is kilobytes; a body beyond this is a server gone wrong, and
# buffering it whole took gigabytes (issue 38).
MAX_BODY = 16 << 20


async def _capped_post(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> tuple[int, str | None, bytes | None]:
    """One POST: its status, its Retry-After, and its body (None once over MAX_BODY)."""
    async with client.stream("POST", "/chat/completions", json=payload) as reply:
        chunks, size = [], 0
        async for chunk in reply.aiter_bytes():
            size += len(chunk)
            if size > MAX_BODY:
                return reply.status_code, None, None
            chunks.append(chunk)
        return reply.status_code, reply.headers.get("retry-after"), b"".join(chunks)


def _capped_get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes | None]:
    """One GET with a deadline on the whole of it (each read has ``timeout``, and so does the
    sum: a server that trickles ``/models`` cannot hold a run in "loading") and the body cap."""
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as reply:
        chunks, size = [], 0
        for chunk in reply.iter_bytes():
            size += len(chunk)
            if size > MAX_BODY or time.monotonic() > deadline:
                return reply.status_code, None
            chunks.append(chunk)
        return reply.status_code, b"".join(chunks)


def _retry_after(value: str | None) -> float:
    try:
        wait = float(value) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff
    return 0.0 if math.isnan(wait) else max(0.0, wait)  # "inf" stays: the caller caps it


def parse_openai_spec(
    spec: str, base_url: str | None, api_key_env: str, client: ClientSettings
) -> OpenAIModel:
    """``openai:MODEL`` (with --base-url) or ``openai:MODEL@URL``."""
    rest = spec.split(":", 1)[1]
    model, _, url = rest.partition("@")
    url = url or base_url or os.environ.get("OPENAI_BASE_URL") or ""
    if not model or not url:
        raise UserError(f"--model {spec}: give the server as openai:MODEL@URL or --base-url URL")
    key = os.environ.get(api_key_env)
    return OpenAIModel(f"openai:{model}@{url}", model, url, key, client)


@backend(
    "openai", usage="openai:MODEL[@URL]", name="openai",
    modes="logprob (if the server gives logprobs), generate",
    what="any OpenAI-compatible server; key from $OPENAI_API_KEY",
)  # fmt: skip
def open_openai(spec: str, rest: str, options: BackendOptions, connect: bool) -> OpenAIModel:
    settings = ClientSettings(
        concurrency=options.concurrency, timeout=options.timeout, max_retries=options.max_retries
    )
    model = parse_openai_spec(spec, options.base_url, options.api_key_env, settings)
    if connect:
        model.connect()
    return model
