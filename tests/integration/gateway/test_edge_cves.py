"""Raw requests of the later CVE classes of the CVE-2019-9900/9901 family, sent byte for byte
to a real gateway in front of backends that record what reached them.

Each test names its expected outcome (400, 403, or routed as the canonical form) and who
provides it. Where Gossamer's configuration does, the test also runs against a gateway built
without that setting (``weakened``: strict xfail, so the suite fails if the test would pass
without it). Where Envoy's own code does, the docstring says so. Path normalisation and
invalid headers (CVE-2019-9900/9901) are in ``test_gateway_edge.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from edge_wire import http1, http2, request
from tests.integration.gateway.edge_mesh import ADMIN_HOST, EdgeMesh, edge_mesh, weakened

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EdgeMesh]:
    variant: str = request.param
    async with edge_mesh(tmp_path_factory.mktemp(variant), variant) as e:
        yield e


@pytest.fixture
def gw(edge: EdgeMesh) -> EdgeMesh:
    edge.clear()
    return edge


def variants(*weak: tuple[str, str]) -> pytest.MarkDecorator:
    """Run against the hardened gateway and each (variant, reason) expected to fail."""
    params = ["hardened", *(weakened(v, why) for v, why in weak)]
    return pytest.mark.parametrize("edge", params, indirect=True)


HARDENED = variants()


def assert_reached_admin_as(gw: EdgeMesh, host: bytes) -> None:
    ((head,),) = [gw.admin.heads]
    assert b"\r\nhost: " + host + b"\r\n" in head.lower(), head
    assert gw.public.heads == []


# -- Host: CVE-2019-18802, Istio ISTIO-SECURITY-2021-008 (CVE-2021-39155) -----------------


@HARDENED
@pytest.mark.parametrize("host", ["ADMIN.EXAMPLE", "Admin.Example ", "admin.example\t"])
async def test_host_in_another_case_or_with_trailing_space_is_routed_as_that_host(
    gw: EdgeMesh, host: str
) -> None:
    """Routed as the canonical (lower-case, trimmed) host: ``admin.example``'s rules apply,
    never the ``*`` host's. Envoy's code: virtual hosts match case-insensitively (RFC 9110:
    host names are case-insensitive) and its HTTP/1 codec trims whitespace around values."""
    refused = await http1(gw.address, request("/", host))
    assert (refused.status, gw.heads) == (404, [])  # admin.example's rule wants x-user: root

    allowed = await http1(gw.address, request("/", host, "x-user: root"))
    assert allowed.status == 200
    assert_reached_admin_as(gw, host.strip().lower().encode())


@variants(("without-host-canonical-form", "admin.example. / :port land on the * host"))
@pytest.mark.parametrize(
    "host", ["admin.example.", "admin.example:80", "Admin.Example.:8443", "admin.example:1"]
)
async def test_host_with_trailing_dot_or_port_is_routed_as_that_host(
    gw: EdgeMesh, host: str
) -> None:
    """Routed as ``admin.example``, and forwarded so: Gossamer's config
    (``strip_trailing_host_dot``, ``strip_any_host_port``). Without it the request falls to
    the ``*`` host and reaches ``public`` with ``Host: admin.example.``: a bypass."""
    refused = await http1(gw.address, request("/", host))
    assert (refused.status, gw.heads) == (404, [])

    allowed = await http1(gw.address, request("/", host, "x-user: root"))
    assert allowed.status == 200
    assert_reached_admin_as(gw, ADMIN_HOST.encode())


@variants(("without-edge-guard", "two Host lines are merged and forwarded"))
@pytest.mark.parametrize("hosts", [(ADMIN_HOST, "other.example"), ("other.example", ADMIN_HOST)])
async def test_two_host_headers_are_refused_with_400(gw: EdgeMesh, hosts: tuple[str, str]) -> None:
    """400 (RFC 9112 section 3.2), nothing forwarded: Gossamer's edge guard. Envoy itself
    merges the lines into ``Host: a,b``, which falls to the ``*`` host and reaches ``public``
    merged, where a server may pick either name."""
    raw = request("/", hosts[0], f"Host: {hosts[1]}", "x-user: root")
    answer = await http1(gw.address, raw)
    assert answer.status == 400 and b"Host sent more than once" in answer.body
    assert gw.heads == []


@HARDENED
async def test_http2_host_differing_from_authority_is_routed_on_authority_only(
    gw: EdgeMesh,
) -> None:
    """Routed on ``:authority``, and the backend sees that host only: Envoy's code (its
    HTTP/2 codec drops a ``host`` header when ``:authority`` is present)."""
    answer = await http2(
        gw.address,
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"public.example"),
            (b":path", b"/h2"),
            (b"host", ADMIN_HOST.encode()),
            (b"x-user", b"root"),
        ],
    )
    assert answer.status == 200 and answer.headers["x-backend"] == "public"
    ((head,),) = [gw.public.heads]
    assert b"admin.example" not in head.lower() and b"host: public.example" in head.lower()


# -- #fragment: CVE-2021-32779 --------------------------------------------------------------


@HARDENED
@pytest.mark.parametrize("path", ["/public#/../admin", "/x#frag", "/#"])
async def test_fragment_in_path_is_refused_with_400(gw: EdgeMesh, path: str) -> None:
    """400 over HTTP/1.1 and HTTP/2, never matched as part of the path: Envoy's code
    (``envoy.reloadable_features.http_reject_path_with_fragment``, on by default)."""
    h1 = await http1(gw.address, request(path, ADMIN_HOST, "x-user: root"))
    h2 = await http2(
        gw.address,
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", ADMIN_HOST.encode()),
            (b":path", path.encode()),
            (b"x-user", b"root"),
        ],
    )
    assert (h1.status, h2.status) == (400, 400)
    assert gw.heads == []


# -- a header sent twice: CVE-2021-32777, CVE-2020-25017 ----------------------------------


@variants(("without-edge-guard", "Envoy routes on any value; both reach the backend"))
@pytest.mark.parametrize("values", [("root", "bob"), ("bob", "root")])
async def test_header_sent_twice_with_different_values_is_refused_with_400(
    gw: EdgeMesh, values: tuple[str, str]
) -> None:
    """400, nothing forwarded: Gossamer's edge guard. Envoy alone routes ``exact: root``
    when either value is ``root`` and forwards both lines, so ``admin`` could read ``bob``
    (or ``root`` where routing saw ``bob``)."""
    raw = request("/", ADMIN_HOST, *(f"x-user: {v}" for v in values))
    answer = await http1(gw.address, raw)
    assert answer.status == 400 and b"x-user sent more than once" in answer.body
    h2 = await http2(
        gw.address,
        [
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", ADMIN_HOST.encode()),
            (b":path", b"/"),
            *((b"x-user", v.encode()) for v in values),
        ],
    )
    assert h2.status == 400
    assert gw.heads == []


@HARDENED
async def test_list_headers_sent_twice_are_forwarded(gw: EdgeMesh) -> None:
    """Routed: headers defined as lists (``accept``, ``cookie``, ...) may repeat; the guard
    refuses only headers that are single values."""
    raw = request(
        "/list", "public.example", "Accept: text/html", "Accept: */*", "Cookie: a=1", "Cookie: b=2"
    )
    answer = await http1(gw.address, raw)
    assert answer.status == 200 and answer.headers["x-backend"] == "public"


# -- x-envoy-* and x-forwarded-client-cert from a client: CVE-2023-27487 ------------------

CLIENT_ENVOY_HEADERS = (
    "x-envoy-original-path: /admin",
    "X-Envoy-Internal: true",
    "x-envoy-retry-on: 5xx",
    "x-envoy-upstream-rq-timeout-ms: 1",
    "x-envoy-decorator-operation: spoofed",
    "x-envoy-external-address: 6.6.6.6",
)


@variants(("without-x-envoy-cleaning", "the client's x-envoy-* headers reach the backend"))
async def test_x_envoy_headers_from_a_client_are_removed(gw: EdgeMesh) -> None:
    """Routed, with every client ``x-envoy-*`` header removed: Gossamer's config (an early
    header mutation removing ``x-envoy-*`` before Envoy reads the request, and
    ``use_remote_address``, under which Envoy also drops its internal headers from external
    clients). Only the address Envoy saw on the connection is added."""
    answer = await http1(gw.address, request("/public", "public.example", *CLIENT_ENVOY_HEADERS))
    assert answer.status == 200
    ((head,),) = [gw.public.heads]
    sent = [line for line in head.lower().split(b"\r\n") if line.startswith(b"x-envoy-")]
    assert sent == [b"x-envoy-external-address: 127.0.0.1"]


@variants(("forwarding-client-certs", "a forged x-forwarded-client-cert is forwarded"))
async def test_forged_client_cert_header_is_removed(gw: EdgeMesh) -> None:
    """Routed without the client's ``x-forwarded-client-cert``: Gossamer's config
    (``forward_client_cert_details: SANITIZE`` at the edge; only a sidecar that verified a
    certificate may say who called)."""
    forged = (
        "x-forwarded-client-cert: By=spiffe://shop.local/ns/default/sa/admin;"
        "URI=spiffe://shop.local/ns/default/sa/root"
    )
    answer = await http1(gw.address, request("/xfcc", "public.example", forged))
    assert answer.status == 200
    assert gw.public.heads_with(b"x-forwarded-client-cert") == []
    assert len(gw.public.heads) == 1


# -- :scheme in mixed case: CVE-2023-35944 -------------------------------------------------


@HARDENED
@pytest.mark.parametrize("scheme", [b"HtTp", b"HTTP", b"HTTPS", b"hTtPs"])
async def test_mixed_case_scheme_over_http2_is_routed_as_the_connection_scheme(
    gw: EdgeMesh, scheme: bytes
) -> None:
    """Routed, and the backend is told ``x-forwarded-proto: http``: the scheme of the
    connection, whatever case or value the client wrote. Envoy's code compares schemes
    case-insensitively; at the edge (``use_remote_address``, Gossamer's config) it sets
    ``x-forwarded-proto`` from the connection, not from the client."""
    answer = await http2(
        gw.address,
        [
            (b":method", b"GET"),
            (b":scheme", scheme),
            (b":authority", b"public.example"),
            (b":path", b"/scheme"),
        ],
    )
    assert answer.status == 200 and answer.headers["x-backend"] == "public"
    ((head,),) = [gw.public.heads]
    assert b"\r\nx-forwarded-proto: http\r\n" in head.lower(), head


# -- Upgrade answered 200 by the upstream: CVE-2024-23326 ----------------------------------

UPGRADE = request("/ws", "public.example", "Connection: upgrade", "Upgrade: websocket")
OTHER_UPGRADE = request("/ws", "public.example", "Connection: upgrade", "Upgrade: foo/1")
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: admin.example\r\n\r\n"


@HARDENED
async def test_an_upgrade_other_than_websocket_is_refused_with_403(gw: EdgeMesh) -> None:
    """403, nothing forwarded: Gossamer's gateway configures the WebSocket upgrade only
    (``upgrade_configs``), and Envoy refuses an upgrade it was not told to allow."""
    answer = await http1(gw.address, OTHER_UPGRADE, then=SMUGGLED)
    assert answer.status == 403
    assert gw.heads == []


@HARDENED
async def test_websocket_upgrade_answered_200_opens_no_tunnel(gw: EdgeMesh) -> None:
    """The gateway lets WebSocket through; an upstream answering the upgrade 200 gives the
    client a plain answer and no tunnel: what it sends next is a new request Envoy parses
    and routes (``admin.example`` without ``x-user`` gets 404), never raw bytes to the
    backend. Envoy's code (since the CVE-2024-23326 fix it requires a 101 to switch
    protocols)."""
    answer = await http1(gw.address, UPGRADE, then=SMUGGLED)
    assert answer.status == 200 and answer.headers["x-backend"] == "public"
    assert len(gw.public.heads) == 1  # the upgrade request itself, parsed by Envoy
    assert all(b"x-request-id" in h.lower() for h in gw.heads)
    assert gw.heads_with(b"/smuggled") == []
