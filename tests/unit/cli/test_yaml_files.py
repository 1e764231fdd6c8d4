"""Files given with ``-f``: every error at once naming its file, nothing half-read; every
command reads each file once and parses its YAML once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml.reader
from typer.testing import CliRunner

from gossamer.cli.main import app
from gossamer.cli.yaml_files import LoadedFiles, load_files, load_policies
from gossamer.errors import ValidationError

from .conftest import ApiServer
from .files import BAD_WEIGHT, ROUTE, SERVICES, WORKLOAD

SERVICE = """\
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: %s}
spec:
  ports: [{name: http, port: 80}]
"""
MESH = "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n"
#: 10**4 strings from a few lines
ALIAS_BOMB = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 5)
)
POLICY = """\
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {name: shop}
spec:
  policyClasses: [rbac]
  userAttributes: {staff: [rbac]}
  objectAttributes: {cart-api: [rbac]}
  users: {web: [staff]}
  objects: {"cart:/items": [cart-api]}
  associations: [{userAttribute: staff, target: cart-api, rights: [GET]}]
"""


@dataclass
class Reads:
    """How often each file was opened for reading, and each text handed to a YAML parser."""

    opened: Counter[str] = field(default_factory=Counter)
    parsed: Counter[str] = field(default_factory=Counter)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    counts = Reads()
    open_file = Path.open
    start_reader = yaml.reader.Reader.__init__

    def counting_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode:
            counts.opened[self.name] += 1
        return open_file(self, mode, *args, **kwargs)

    def counting_reader(self: yaml.reader.Reader, stream: Any) -> None:
        counts.parsed[stream if isinstance(stream, str) else repr(stream)] += 1
        start_reader(self, stream)

    monkeypatch.setattr(Path, "open", counting_open)
    monkeypatch.setattr(yaml.reader.Reader, "__init__", counting_reader)
    yield counts


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def file_errors(paths: list[Path]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        load_files(paths)
    return [str(e) for e in info.value.errors]


# -- load_files --------------------------------------------------------------------------


# -- load_files --------------------------------------------------------------------------


def test_files_load_in_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", SERVICE % "a" + "---\n" + SERVICE % "b")
    b = write(tmp_path, "b.yaml", MESH)
    loaded = load_files([a, b])
    assert [r.metadata.name for r in loaded.resources] == ["a", "b", "default"]
    assert loaded.sources == ["a.yaml", "a.yaml", "b.yaml"]


def test_no_files_is_no_resources() -> None:
    assert load_files([]) == LoadedFiles([], [])


def test_errors_name_the_file(tmp_path: Path) -> None:
    a = write(tmp_path, "good.yaml", SERVICE % "a")
    b = write(tmp_path, "bad.yaml", SERVICE % "B")
    (error,) = file_errors([a, b])
    assert error.startswith("bad.yaml: Service default/B: metadata.name: ")


def test_errors_from_every_file_are_collected(tmp_path: Path) -> None:
    a = write(tmp_path, "one.yaml", SERVICE % "A")
    b = write(tmp_path, "two.yaml", "a: [\n")
    errors = file_errors([a, b])
    assert [e.split(":")[0] for e in errors] == ["one.yaml", "two.yaml"]


def test_a_missing_file_is_an_error_and_rejects_the_others(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", SERVICE % "a")
    missing = tmp_path / "missing.yaml"
    assert file_errors([good, missing]) == [
        f"{missing}: cannot read file: No such file or directory"
    ]


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    (error,) = file_errors([tmp_path])
    assert error.startswith(f"{tmp_path}: cannot read file: ")


def test_a_resource_in_two_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", SERVICE % "x")
    b = write(tmp_path, "b.yaml", SERVICE % "x" + "---\n" + SERVICE % "y")
    assert file_errors([a, b]) == ["Service default/x: defined in more than one file"]


def test_cross_file_duplicates_are_listed_once_each_in_key_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", SERVICE % "z" + "---\n" + SERVICE % "y")
    b = write(tmp_path, "b.yaml", SERVICE % "y" + "---\n" + SERVICE % "z")
    c = write(tmp_path, "c.yaml", SERVICE % "z")
    assert file_errors([a, b, c]) == [
        "Service default/y: defined in more than one file",
        "Service default/z: defined in more than one file",
    ]


def test_the_same_file_twice_duplicates_everything_in_it(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", SERVICE % "x")
    assert file_errors([a, a]) == ["Service default/x: defined in more than one file"]


def test_non_ascii_text_is_read_as_utf8(tmp_path: Path) -> None:
    text = MESH.replace("{name: default}", "{name: default, annotations: {owner: Zoë}}")
    (mesh,) = load_files([write(tmp_path, "m.yaml", text)]).resources
    assert mesh.metadata.annotations == {"owner": "Zoë"}


def test_a_file_that_is_not_utf8_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        MESH.replace("{name: default}", "{name: m, annotations: {a: Zoë}}").encode("latin-1")
    )
    (error,) = file_errors([path])
    assert error.startswith("latin1.yaml")


def test_load_files_takes_the_node_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.yaml", ALIAS_BOMB)
    with pytest.raises(ValidationError) as info:
        load_files([path], max_nodes=5000)
    assert "bomb.yaml: " in str(info.value)
    assert "more than 5000 YAML nodes" in str(info.value)


# -- load_policies -----------------------------------------------------------------------


def test_policies_skip_other_kinds_and_their_errors_name_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", POLICY + "---\n" + SERVICE % "Not-Checked")
    (policy,) = load_policies([path])
    assert policy.metadata.name == "shop"
    bad = write(tmp_path, "bad.yaml", POLICY.replace("rights: [GET]", "rights: []"))
    with pytest.raises(ValidationError) as info:
        load_policies([bad, tmp_path / "gone.yaml"])
    assert [str(e) for e in info.value.errors] == [
        "bad.yaml: AccessPolicy default/shop: spec.associations[0].rights: "
        "list should have at least 1 item after validation, not 0",
        f"{tmp_path / 'gone.yaml'}: cannot read file: No such file or directory",
    ]


def test_policies_in_bad_yaml_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", POLICY + "  users: {}\n")
    with pytest.raises(ValidationError, match=r"p.yaml: line \d+: not valid YAML: .*twice"):
        load_policies([path])


# -- each file once ----------------------------------------------------------------------


def once_each(reads: Reads, files: dict[str, str]) -> None:
    assert {name: reads.opened[name] for name in files} == dict.fromkeys(files, 1)
    assert {name: reads.parsed[text] for name, text in files.items()} == dict.fromkeys(files, 1)


def test_validate_reads_and_parses_each_file_once(
    offline: CliRunner, tmp_path: Path, reads: Reads
) -> None:
    files = {"services.yaml": SERVICES, "cart.yaml": WORKLOAD + "---\n" + ROUTE}
    paths = [str(write(tmp_path, name, text)) for name, text in files.items()]
    result = offline.invoke(app, ["validate", "-f", paths[0], "-f", paths[1]])
    assert result.exit_code == 0, result.output
    once_each(reads, files)


def test_apply_reads_and_parses_each_file_once_and_errors_still_name_the_file(
    runner: CliRunner, server: ApiServer, tmp_path: Path, reads: Reads
) -> None:
    files = {"services.yaml": SERVICES, "cart.yaml": WORKLOAD}
    paths = [str(write(tmp_path, name, text)) for name, text in files.items()]
    result = runner.invoke(app, ["apply", "-f", paths[0], "-f", paths[1]])
    assert result.exit_code == 0, result.output
    once_each(reads, files)

    reads.opened.clear()
    reads.parsed.clear()
    files = {"ok.yaml": SERVICES, "route.yaml": BAD_WEIGHT}
    paths = [str(write(tmp_path, name, text)) for name, text in files.items()]
    refused = runner.invoke(app, ["apply", "-f", paths[0], "-f", paths[1]])
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0] == (
        "route.yaml: Route default/cart: spec.rules[0].destinations[0].weight: must be 0..100"
    )
    once_each(reads, files)


def test_delete_from_files_reads_each_file_once(
    runner: CliRunner, server: ApiServer, tmp_path: Path, reads: Reads
) -> None:
    path = write(tmp_path, "services.yaml", SERVICES)
    assert runner.invoke(app, ["apply", "-f", str(path)]).exit_code == 0
    reads.opened.clear()
    reads.parsed.clear()
    result = runner.invoke(app, ["delete", "-f", str(path)])
    assert result.exit_code == 0, result.output
    once_each(reads, {"services.yaml": SERVICES})


def test_authz_reads_and_parses_each_policy_file_once(
    offline: CliRunner, tmp_path: Path, reads: Reads
) -> None:
    path = write(tmp_path, "policy.yaml", POLICY + "---\n" + SERVICES)
    result = offline.invoke(app, ["authz", "check", "-f", str(path), "web", "cart:/items", "GET"])
    assert result.exit_code == 0, result.output
    once_each(reads, {"policy.yaml": POLICY + "---\n" + SERVICES})
