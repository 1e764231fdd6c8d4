"""Defects the config fuzz (``bench/fuzz_config.py``) found in the YAML loader."""

from __future__ import annotations

import pytest

from gossamer.errors import ValidationError
from gossamer.model import Service, parse_yaml

MERGED = """\
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: shop}
spec:
  ports:
  - &http {name: http, port: 80, protocol: http}
  - <<: *http
    name: admin
    port: 81
"""


def test_a_merge_key_takes_the_base_mappings_keys() -> None:
    # was refused: "could not determine a constructor for the tag 'tag:yaml.org,2002:merge'"
    [svc] = parse_yaml(MERGED)
    assert isinstance(svc, Service)
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [
        ("http", 80, "http"),
        ("admin", 81, "http"),
    ]


def test_a_merge_does_not_hide_a_key_given_twice() -> None:
    with pytest.raises(ValidationError, match="key 'port' appears twice"):
        parse_yaml(MERGED + "    port: 82\n")


def test_a_document_that_is_no_mapping_is_named_by_its_line() -> None:
    # was "f.yaml: a resource must be a mapping ...": which of the documents?
    with pytest.raises(ValidationError) as e:
        parse_yaml(MERGED + "---\n- just a list\n", "f.yaml")
    [err] = e.value.errors
    assert err.resource == "document at line 11"
    assert str(err).startswith("f.yaml: document at line 11: a resource must be a mapping")


WORKLOAD = """\
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: w0, namespace: default}
spec: {service: cart, address: 127.0.0.9, ports: [{port: 8080, appPort: 9000}]}
"""


@pytest.mark.parametrize("key", ["apiVersion", "metadata", "spec", "service", "name"])
def test_a_lone_surrogate_in_a_key_is_refused_naming_that_key(key: str) -> None:
    # was "Workload default/w0: input should be a valid string, unable to parse raw data
    # as a unicode string": pydantic's error for such a key has no field path
    text = WORKLOAD.replace(f"{key}:", '"\\ud800x":', 1)
    with pytest.raises(ValidationError) as e:
        parse_yaml(text, "f.yaml")
    [err] = e.value.errors
    assert err.path.endswith("'\\ud800x'"), err
    assert err.message.startswith("the key contains U+D800"), err
    str(err).encode()  # printable: the resource's name is shown without the surrogate


def test_a_lone_surrogate_in_a_name_is_printable() -> None:
    # the error's resource held the raw surrogate, so printing it raised UnicodeEncodeError
    with pytest.raises(ValidationError) as e:
        parse_yaml(WORKLOAD.replace("name: w0", 'name: "\\ud800"'), "f.yaml")
    [err] = e.value.errors
    assert (err.resource, err.path) == ("Workload default/\ufffd", "metadata.name"), err
    str(err).encode()
