"""Generated resource names: readable, free of dots, and one name per (service, port, subset)."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from gossamer.translate import names

REVIEWS = ("default", "reviews")


def test_plain_and_subset_cluster_names() -> None:
    assert names.outbound_cluster(REVIEWS, "http") == "outbound|default/reviews|http"
    assert names.outbound_cluster(REVIEWS, "http", ()) == "outbound|default/reviews|http"
    v2 = names.subset_of({"version": "v2"})
    assert names.outbound_cluster(REVIEWS, "http", v2) == "outbound|default/reviews|http|version=v2"
    both = names.subset_of({"version": "v2", "tier": "gold"})  # sorted by key
    assert both == (("tier", "gold"), ("version", "v2"))
    assert names.outbound_cluster(REVIEWS, "http", both).endswith("|tier=gold,version=v2")


def test_separators_dots_and_non_ascii_are_escaped() -> None:
    labels = {"app.kubernetes.io/version": "1.2|x=y,z%/é"}
    name = names.outbound_cluster(REVIEWS, "http", names.subset_of(labels))
    assert name == (
        "outbound|default/reviews|http|"
        "app%2Ekubernetes%2Eio%2Fversion=1%2E2%7Cx%3Dy%2Cz%25%2F%C3%A9"
    )
    assert "." not in name


def _decode(name: str) -> tuple[str, str, dict[str, str]]:
    """Read a subset cluster name back (proves the encoding loses nothing)."""
    _, service, port, suffix = name.split("|")
    labels = {}
    for pair in suffix.split(","):
        key, value = pair.split("=")
        labels[unquote(key)] = unquote(value)
    return service, port, labels


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_labels = st.dictionaries(
    st.text(min_size=1, max_size=8) | st.sampled_from([".", "a/b"]), _text, min_size=1, max_size=3
)


@given(_labels)
def test_subset_names_have_no_dots_and_decode_to_their_labels(labels: dict[str, str]) -> None:
    name = names.outbound_cluster(REVIEWS, "http", names.subset_of(labels))
    assert "." not in name
    assert _decode(name) == ("default/reviews", "http", labels)


@given(_labels, _labels)
def test_distinct_subsets_get_distinct_names(a: dict[str, str], b: dict[str, str]) -> None:
    name_a = names.outbound_cluster(REVIEWS, "http", names.subset_of(a))
    name_b = names.outbound_cluster(REVIEWS, "http", names.subset_of(b))
    assert (name_a == name_b) == (a == b)
    assert name_a != names.outbound_cluster(REVIEWS, "http")
