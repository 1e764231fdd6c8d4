"""The SPIFFE id: built in one place, parsed back exactly, anything else refused by field."""

from __future__ import annotations

import pytest

from gossamer.errors import ValidationError
from gossamer.types import parse_spiffe_id, spiffe_id


def test_builds_the_workload_id() -> None:
    assert spiffe_id("shop.local", "default", "cart") == "spiffe://shop.local/ns/default/sa/cart"


def test_parse_round_trips() -> None:
    text = spiffe_id("cluster.local", "shop", "api-v2")
    assert parse_spiffe_id(text) == ("cluster.local", "shop", "api-v2")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("Shop.Local", "default", "cart"), "trust domain"),
        (("", "default", "cart"), "trust domain"),
        (("shop.local", "Default", "cart"), "namespace"),
        (("shop.local", "default", "cart/x"), "service"),
        (("shop.local", "default", ""), "service"),
    ],
)
def test_build_refuses_bad_parts(args: tuple[str, str, str], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spiffe_id(*args)
    assert caught.value.errors[0].path == field
    assert "use " in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "spiffe://shop.local/ns/default/sa/cart/extra",
        "spiffe://shop.local/ns/default/cart",
        "spiffe://shop.local/sa/cart/ns/default",
        "https://shop.local/ns/default/sa/cart",
        "SPIFFE://shop.local/ns/default/sa/cart",
        "spiffe://shop.local/ns/../sa/cart",
        "spiffe://shop.local/ns/default/sa/cart?x=1",
        "spiffe://user@shop.local/ns/default/sa/cart",
        "",
    ],
)
def test_parse_refuses_what_spiffe_id_would_not_build(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_spiffe_id(text)
