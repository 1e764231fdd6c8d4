"""Following a document the control plane's API long-polls (``?after=<version>&wait=<s>``:
answered at once when the document's version differs from ``after``, else when it changes
or ``wait`` passes), for request-path services in their own processes: the rate-limit
service's rules, the NGAC decision point's graph.

The control plane is verified as the CLI and the agent do (``--ca-file``, or the CA
fingerprint in the token) before the token is sent. ``server`` may name several replicas
(comma-separated): a poll that fails moves on to the next one, and a back-off is waited only
once every replica failed in turn. While none can be reached the caller keeps what it had.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from gossamer.agent.client import split_servers
from gossamer.agent.trust import untrusted, verification
from gossamer.cancel import raise_if_cancelling
from gossamer.errors import ConfigError, GossamerError
from gossamer.polling import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")
#: seconds one long poll may wait for a change
POLL_WAIT_S = 25.0


async def follow_document(
    server: str,
    token: str,
    path: str,
    parse: Callable[[Any, str], T],
    version_of: Callable[[T], str],
    on_new: Callable[[T], None],
    *,
    ca_file: Path | None = None,
    wait_s: float = POLL_WAIT_S,
    backoff: Backoff | None = None,
) -> None:
    """Call ``on_new`` with each new version of the document at ``path`` (``parse(json,
    where)`` raising ``GossamerError`` or ``ValueError`` when malformed), until cancelled."""
    servers = split_servers(server)
    retries = (backoff or Backoff(initial=0.2, maximum=10.0)).retries()
    version = ""
    at = 0  # the replica polled now
    failed_in_turn = 0  # replicas that failed one after the other since the last answer
    client: httpx.AsyncClient | None = None
    try:
        while True:
            url = servers[at]
            try:
                if client is None:
                    found = await asyncio.to_thread(verification, url, token=token, ca_file=ca_file)
                    verify: Any = True if found is None else found
                    client = httpx.AsyncClient(
                        base_url=url,
                        verify=verify,
                        trust_env=False,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=wait_s + 10,
                    )
                response = await client.get(path, params={"after": version, "wait": wait_s})
                if response.status_code != 200:
                    raise ConfigError(
                        f"{url}{path} answered {response.status_code}: {response.text[:300]}"
                    )
                document = parse(response.json(), f"{url}{path}")
            except (httpx.HTTPError, GossamerError, ValueError) as e:
                raise_if_cancelling()
                error = untrusted(e, url) or e
                failed_in_turn += 1
                if len(servers) > 1:
                    if client is not None:
                        await client.aclose()
                        client = None
                    at = (at + 1) % len(servers)
                    if failed_in_turn % len(servers):
                        log.warning("%s%s: %s; trying %s", url, path, error, servers[at])
                        continue
                delay = retries.next()
                log.warning("%s%s: %s; again in %.1fs", url, path, error, delay)
                await asyncio.sleep(delay)
                continue
            retries.reset()
            failed_in_turn = 0
            if version_of(document) != version:
                version = version_of(document)
                on_new(document)
    finally:
        if client is not None:
            await client.aclose()
