"""Fetching an issuer's ``jwks.uri`` (``controlplane.jwks_fetch``), without a network
(``httpx.MockTransport``): a JWKS is taken as fetched; anything else is a ``JwksFetchError``
naming the issuer, the uri and what is wrong: a status other than 200 (a redirect is not
followed), a body too large, not a JWKS, a key that does not load, an answer too slow."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gossamer.controlplane.jwks_fetch import JwksFetcher, unusable_jwks
from gossamer.errors import JwksFetchError
from gossamer.model.authentication import JwtIssuer
from gossamer.testing.jwt_tokens import TokenIssuer

URI = "https://idp.example/jwks.json"
ISSUER = JwtIssuer.model_validate({"issuer": "https://idp.example", "jwks": {"uri": URI}})
KEYS = TokenIssuer("https://idp.example").jwks()


def _fetcher(answer: httpx.Response, **options: float) -> JwksFetcher:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert str(request.url) == URI
        return answer

    return JwksFetcher(transport=httpx.MockTransport(handle), **options)  # type: ignore[arg-type]


async def _error(fetcher: JwksFetcher) -> str:
    with pytest.raises(JwksFetchError) as e:
        await fetcher.fetch(ISSUER)
    text = str(e.value)
    assert "'https://idp.example'" in text and URI in text, text
    return text


@pytest.mark.asyncio
async def test_a_jwks_is_taken_as_fetched() -> None:
    assert await _fetcher(httpx.Response(200, text=KEYS)).fetch(ISSUER) == KEYS


@pytest.mark.asyncio
async def test_another_status_or_a_redirect_is_refused() -> None:
    assert "answered 503" in await _error(_fetcher(httpx.Response(503)))
    moved = httpx.Response(302, headers={"location": "https://idp.example/v2/jwks"})
    assert "give that as jwks.uri" in await _error(_fetcher(moved))


@pytest.mark.asyncio
async def test_a_body_too_large_is_refused_while_it_is_read() -> None:
    big = httpx.Response(200, content=b"x" * 5000)
    assert "more than 1000 bytes" in await _error(_fetcher(big, max_bytes=1000))

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"y" * 100

    streamed = httpx.Response(200, content=chunks())
    assert "more than 1000 bytes" in await _error(_fetcher(streamed, max_bytes=1000))


@pytest.mark.asyncio
async def test_what_is_not_a_usable_jwks_is_refused() -> None:
    assert "not JSON" in await _error(_fetcher(httpx.Response(200, text="<html>")))
    assert "non-empty" in await _error(_fetcher(httpx.Response(200, text='{"keys": []}')))
    key = json.loads(KEYS)["keys"][0]
    private = json.dumps({"keys": [key | {"d": "AAAA"}]})
    assert "private key" in await _error(_fetcher(httpx.Response(200, text=private)))
    bad = json.dumps({"keys": [key | {"n": "AAAA"}]})
    assert "keys[0] (RSA, kid 'k1') is not a valid key" in await _error(
        _fetcher(httpx.Response(200, text=bad))
    )
    assert "not UTF-8" in await _error(_fetcher(httpx.Response(200, content=b"\xff\xfe")))


def test_keys_are_loaded_as_what_they_claim_to_be() -> None:
    assert unusable_jwks(KEYS) is None
    off_curve = {"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}
    assert "keys[0]" in (unusable_jwks(json.dumps({"keys": [off_curve]})) or "")
    ed = {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}
    assert "keys[0]" in (unusable_jwks(json.dumps({"keys": [ed]})) or "")
    ed448 = {"kty": "OKP", "crv": "Ed448", "x": "AAAA"}
    assert "Ed448" in (unusable_jwks(json.dumps({"keys": [ed448]})) or "")


@pytest.mark.asyncio
async def test_a_slow_answer_times_out() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, text=KEYS)

    fetcher = JwksFetcher(transport=httpx.MockTransport(handle), timeout=0.2)
    assert "within 0.2 s" in await _error(fetcher)


@pytest.mark.asyncio
async def test_a_connection_failure_names_the_issuer() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert "ConnectError" in await _error(JwksFetcher(transport=httpx.MockTransport(handle)))
