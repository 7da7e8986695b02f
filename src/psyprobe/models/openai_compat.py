"""Any OpenAI-compatible chat server: OpenAI, vLLM, llama.cpp's server, Ollama, ...

One model may be served by several endpoints (replicas: ``openai:MODEL@URL1,URL2`` or
``--base-url`` repeated). Each request goes to the endpoint with the fewest requests in flight,
up to ``concurrency`` per endpoint. A request is retried on 429, 5xx, timeouts, dropped
connections and malformed bodies, at most ``max_retries`` times: an endpoint that fails is taken
out for a backoff (at least the server's ``Retry-After``) and the request goes at once to
another, or waits out the backoff where none is left. A request that still fails is returned as
a ``Failure`` (recorded, not cached, asked again on resume).

The model's identity is the served name plus a probe signature — the ranking of the options of
a few probe questions (their greedy answer without logprobs) — not its URLs: every endpoint
must list the name and answer the probes alike (option probabilities within
``PROBE_TOLERANCE``), so replicas share one store and a resume may use other URLs. A user-given
``--fingerprint`` replaces the signature. Logprob mode reads the ``top_logprobs`` of the first
answer token; servers that give none fall back to generate mode. The API key is sent in a
header and nowhere else: not in the spec, the store or any report.
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from psyprobe.errors import UserError
from psyprobe.models.base import (
    EndpointLoad,
    Failure,
    Mode,
    Model,
    ModelInfo,
    OptionProbs,
    Sampling,
    Until,
    in_order,
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


# Two endpoints serve the same model when the probes' option probabilities agree this closely:
# replicas of one runtime agree to 1e-6, the same weights through another runtime or build to
# a few hundredths (bench/RESULTS.md: AVX-512 vs portable llama.cpp, 0.055 at most).
PROBE_TOLERANCE = 0.1
PROBES = (
    Prompt(None, "On a scale from 1 to 5, how much do you enjoy quiet evenings?", tuple("12345")),
    Prompt(None, "Which is a colour? 1: table 2: green 3: seven 4: run", tuple("1234")),
)


@dataclass(frozen=True)
class ClientSettings:
    concurrency: int = 4  # per endpoint
    timeout: float = 60.0  # seconds per request
    max_retries: int = 5
    backoff: float = 0.5  # first retry waits about this long, then doubles
    max_backoff: float = 30.0


@dataclass
class Endpoint:
    """One server of the model, as the client keeps it: its load and its failures."""

    url: str
    in_flight: int = 0
    out_until: float = 0.0  # monotonic time before which it is sent nothing
    failures: int = 0  # in a row; its backoff doubles with each
    answered: int = 0  # requests it answered
    # its failures for the run's end: how many, the first and last time, the last reason (a
    # count, not a list: a 5xx storm over half a million requests would be a page of lines)
    failed_times: int = 0
    first_failed: str = ""
    last_failed: str = ""

    def failed(self, why: str) -> None:
        now = time.strftime("%H:%M:%S")
        self.failed_times += 1
        self.first_failed = self.first_failed or now
        self.last_failed = f"{now} {why}"

    def back_off(self, wait: float, settings: ClientSettings) -> None:
        """Out for a backoff that doubles with each failure in a row (at least ``wait``)."""
        backoff = min(settings.max_backoff, settings.backoff * 2**self.failures)
        self.failures += 1
        self.out_until = time.monotonic() + max(wait, backoff * random.uniform(0.5, 1.5))


class OpenAIModel(Model):
    def __init__(
        self,
        model: str,
        base_urls: Sequence[str],
        api_key: str | None,
        client: ClientSettings = ClientSettings(),
        fingerprint: str | None = None,
    ):
        self.model = model
        self.endpoints = [Endpoint(url.rstrip("/")) for url in base_urls]
        self.base_url = self.endpoints[0].url  # the one a single-server message names
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._key = api_key
        self.client = client
        self._given = fingerprint
        # No weights to hash: until the probes are answered (``connect``) the identity is the
        # served name alone (a dry run stores nothing under it).
        self.info = ModelInfo(
            spec=f"openai:{model}",
            backend="openai",
            fingerprint=_fingerprint(model, fingerprint or ""),
            modes=("logprob", "generate"),
        )
        self.top_logprobs = TOP_LOGPROBS[-1]
        # made by the first request (a dry run never asks, and so holds no loop)
        self._made: asyncio.AbstractEventLoop | None = None
        self._held = AsyncExitStack()  # the clients of ``_open``, closed with the model
        self._open: Clients | None = None

    # -- connection checks -------------------------------------------------------------------

    def connect(self) -> None:
        """Fail fast and clearly: an unreachable server, a bad key, a model not served, replicas
        that serve different models; then the identity from the probes and the mode."""
        for endpoint in self.endpoints:
            self._check_listing(endpoint.url)
        probe = Prompt(None, "Answer with 1.", ("1",))
        for top in TOP_LOGPROBS:
            self.top_logprobs = top
            answer = self._run(self._gather([probe], self._logprob_request))[0]
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
        signature = self._signature()
        self.info = self.info.model_copy(
            update={"fingerprint": _fingerprint(self.model, self._given or signature)}
        )

    def _check_listing(self, url: str) -> None:
        try:
            status, raw = _capped_get(f"{url}/models", self._headers, self.client.timeout)
        except httpx.HTTPError as exc:
            raise UserError(
                f"--model {self.info.spec}: cannot reach {url} ({type(exc).__name__})"
            ) from None
        if raw is None:
            raise UserError(
                f"--model {self.info.spec}: {url}/models sent more than "
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
                    f"--model {self.info.spec}: {url} does not serve "
                    f"{self.model!r} (it serves: {ids})"
                )

    def _signature(self) -> str:
        """The probes asked of every endpoint: each must answer as the first does, and the
        answers' shape (the options' ranking, or the greedy text) is the model's signature."""
        answers = [self._run(self._probe(e)) for e in self.endpoints]
        first = answers[0]
        for endpoint, other in zip(self.endpoints[1:], answers[1:], strict=True):
            differs = _probe_difference(first, other)
            if differs is not None:
                raise UserError(
                    f"--model {self.info.spec}: {endpoint.url} answers the probe questions "
                    f"unlike {self.base_url} ({differs}): not the same model"
                )
        if all(isinstance(a, OptionProbs) for a in first):
            ranks = [sorted(range(len(a.probs)), key=lambda i: -a.probs[i]) for a in first]
            return f"ranks:{ranks}"
        return "text:" + hashlib.sha256(json.dumps(first).encode()).hexdigest()

    async def _probe(self, endpoint: Endpoint) -> list[Any]:
        """The probes' option probabilities from ``endpoint`` alone (greedy text without
        logprobs)."""
        one: list[OptionProbs | str | Failure | None] = []
        async with self._clients([endpoint]) as clients:
            for p in PROBES:
                if "logprob" in self.info.modes:
                    one.append(await self._logprob_request(clients, p))
                else:
                    greedy = Sampling(temperature=0.0, max_tokens=8)
                    one.append(await self._generate_request(clients, p, greedy, 0))
        failed = [a for a in one if isinstance(a, Failure) or a is None]
        if failed:
            raise UserError(
                f"--model {self.info.spec}: {endpoint.url} did not answer the probe questions "
                f"({failed[0].error if isinstance(failed[0], Failure) else 'no logprobs'})"
            )
        return one

    def preferred_batch(self, mode: Mode) -> int:
        # Four requests for every slot: a call waits for its slowest request, which leaves the
        # other slots idle; the more a call holds, the less of it is that wait.
        return 4 * self.client.concurrency * len(self.endpoints)

    def endpoint_loads(self) -> list[EndpointLoad]:
        if len(self.endpoints) == 1:
            return []
        now = time.monotonic()
        return [EndpointLoad(e.url, e.answered, e.out_until <= now) for e in self.endpoints]

    def health(self) -> list[str]:
        """Each endpoint that failed during the run, when and why (the run says it at its
        end); nothing when every endpoint held."""
        return [
            f"{e.url}: failed {e.failed_times}× from {e.first_failed} (last: {e.last_failed})"
            for e in self.endpoints
            if e.failed_times
        ]

    # -- the protocol ------------------------------------------------------------------------

    def option_probs(self, prompts: Sequence[Prompt]) -> list[OptionProbs | Failure]:
        answers = self._run(self._gather(prompts, self._logprob_request))
        return [Failure("the server returned no logprobs") if a is None else a for a in answers]

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> list[str | Failure | None]:
        return in_order(self.generate_as_ready(prompts, sampling, seeds, until), len(prompts))

    def generate_as_ready(
        self,
        prompts: Sequence[Prompt],
        sampling: Sampling,
        seeds: Sequence[int],
        until: Sequence[Until | None] | None = None,
    ) -> Iterator[tuple[int, str | Failure | None]]:
        """Each answer handed over as it arrives, all of them in flight together: the ask-loop
        stores it at once, so an interrupt loses only the requests still in flight."""

        async def one(clients: Clients, i: int, prompt: Prompt) -> tuple[int, str | Failure | None]:
            return i, await self._generate_request(clients, prompt, sampling, seeds[i])

        clients = self._run(self._opened())
        pending = {self._loop().create_task(one(clients, i, p)) for i, p in enumerate(prompts)}
        try:
            while pending:
                done, pending = self._run(
                    asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                )
                for task in done:
                    yield task.result()
        finally:  # a caller that stops taking answers (an interrupt) leaves none running
            for task in pending:
                task.cancel()
            self._run(_settled(pending))

    # -- requests ----------------------------------------------------------------------------

    async def _opened(self) -> Clients:
        """The model's clients, opened by its first request and kept until it is closed."""
        if self._open is None:
            self._open = await self._held.enter_async_context(self._clients(self.endpoints))
        return self._open

    async def _gather(
        self, prompts: Sequence[Prompt], one: Callable[[Clients, Prompt], Awaitable[T]]
    ) -> list[T]:
        clients = await self._opened()
        return list(await asyncio.gather(*(one(clients, p) for p in prompts)))

    def _run(self, asked: Awaitable[T]) -> T:
        """``asked`` run on the model's own event loop, where its clients and their connections
        last from one call to the next: a client cost tens of milliseconds to make (its TLS
        context alone), most of what a fast server's answer cost when each batch made its own
        (bench/RESULTS.md). An interrupted call's requests are cancelled, not left running."""
        loop = self._loop()
        try:
            return loop.run_until_complete(asked)
        except BaseException:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            loop.run_until_complete(_settled(left))
            raise

    def _loop(self) -> asyncio.AbstractEventLoop:
        if self._made is None or self._made.is_closed():
            self._made, self._open = asyncio.new_event_loop(), None
        return self._made

    def close(self) -> None:
        if self._made is not None and not self._made.is_closed():
            self._made.run_until_complete(self._held.aclose())
            self._made.close()

    @asynccontextmanager
    async def _clients(self, endpoints: Sequence[Endpoint]) -> AsyncIterator[Clients]:
        """A client per endpoint, each with ``concurrency`` connections; the gates are held by
        each attempt, not by a request: a request waiting out its backoff leaves its slot to
        another (``_post``)."""
        async with AsyncExitStack() as stack:
            made = []
            for endpoint in endpoints:
                client = httpx.AsyncClient(
                    base_url=endpoint.url,
                    headers=self._headers,
                    timeout=self.client.timeout,
                    limits=httpx.Limits(max_connections=self.client.concurrency),
                )
                made.append(await stack.enter_async_context(client))
            gates = [asyncio.Semaphore(self.client.concurrency) for _ in endpoints]
            yield Clients(list(endpoints), made, gates)

    def _scrubbed(self, text: str) -> str:
        """A server's error text without the API key (some echo the request headers back):
        failures are stored, reported and printed."""
        if self._key:
            text = text.replace(self._key, "[API key]")
        return _BEARER.sub("Bearer [API key]", text)

    async def _post(self, clients: Clients, payload: dict[str, Any]) -> dict[str, Any] | Failure:
        error = "no attempt"
        for attempt in range(self.client.max_retries + 1):
            endpoint, client, gate = await clients.least_busy()
            endpoint.in_flight += 1
            wait = 0.0
            try:
                # the timeout bounds each read; a server that trickles its body a byte at a
                # time would never hit it, so the whole request has a deadline too
                async with gate:
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
                            endpoint.failures = 0
                            endpoint.answered += 1
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
            finally:
                endpoint.in_flight -= 1
            endpoint.failed(error)
            if attempt < self.client.max_retries:
                # out for a backoff: the next attempt goes to another endpoint, or waits
                endpoint.back_off(wait, self.client)
        return Failure(f"{error} after {self.client.max_retries + 1} attempts")

    async def _logprob_request(
        self, client: Clients, prompt: Prompt
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
        self, client: Clients, prompt: Prompt, sampling: Sampling, seed: int
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


@dataclass
class Clients:
    """The open clients of a call, one per endpoint, and the choice among them."""

    endpoints: list[Endpoint]
    clients: list[httpx.AsyncClient]
    gates: list[asyncio.Semaphore]

    async def least_busy(self) -> tuple[Endpoint, httpx.AsyncClient, asyncio.Semaphore]:
        """The endpoint in service with the fewest requests in flight (the first on a tie);
        where every one is out, the first back, after its backoff."""
        now = time.monotonic()
        ready = [i for i, e in enumerate(self.endpoints) if e.out_until <= now]
        if not ready:
            i = min(range(len(self.endpoints)), key=lambda k: self.endpoints[k].out_until)
            await asyncio.sleep(self.endpoints[i].out_until - now)
            ready = [i]
        i = min(ready, key=lambda k: self.endpoints[k].in_flight)
        return self.endpoints[i], self.clients[i], self.gates[i]


async def _settled(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _fingerprint(model: str, signature: str) -> str:
    return "sha256:" + hashlib.sha256(f"openai|{model}|{signature}".encode()).hexdigest()


def _probe_difference(a: list[Any], b: list[Any]) -> str | None:
    """How two endpoints' probe answers differ, or None where they agree."""
    if all(isinstance(x, OptionProbs) for x in (*a, *b)):
        gap = max(
            abs(p - q)
            for x, y in zip(a, b, strict=True)
            for p, q in zip(x.probs, y.probs, strict=True)
        )
        return None if gap <= PROBE_TOLERANCE else f"option probabilities {gap:.3f} apart"
    return None if a == b else "other greedy answers"


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
    spec: str,
    base_urls: Sequence[str],
    api_key_env: str,
    client: ClientSettings,
    fingerprint: str | None = None,
) -> OpenAIModel:
    """``openai:MODEL`` (with --base-url, repeatable) or ``openai:MODEL@URL[,URL...]``."""
    rest = spec.split(":", 1)[1]
    model, _, given = rest.partition("@")
    urls = [u.strip() for u in given.split(",") if u.strip()] or list(base_urls)
    urls = urls or [u for u in (os.environ.get("OPENAI_BASE_URL"),) if u]
    if not model or not urls:
        raise UserError(f"--model {spec}: give the server as openai:MODEL@URL or --base-url URL")
    key = os.environ.get(api_key_env)
    return OpenAIModel(model, urls, key, client, fingerprint)


@backend(
    "openai", usage="openai:MODEL[@URL]", name="openai",
    modes="logprob (if the server gives logprobs), generate",
    what="any OpenAI-compatible server; key from $OPENAI_API_KEY",
)  # fmt: skip
def open_openai(spec: str, rest: str, options: BackendOptions, connect: bool) -> OpenAIModel:
    settings = ClientSettings(
        concurrency=options.concurrency, timeout=options.timeout, max_retries=options.max_retries
    )
    model = parse_openai_spec(
        spec, options.base_url, options.api_key_env, settings, options.fingerprint
    )
    if connect:
        model.connect()
    return model
