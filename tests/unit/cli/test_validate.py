"""``gossamer validate``: files alone, no server; exit 0 'valid' or 1 with every field error."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gossamer.cli.main import app

from .files import BAD_WEIGHT, BAD_YAML, ROUTE, SERVICES, SHOP, WORKLOAD

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_files_exit_0(offline: CliRunner, tmp_path: Path) -> None:
    result = offline.invoke(app, ["validate", "-f", str(write(tmp_path, "shop.yaml", SHOP))])
    assert result.exit_code == 0, result.output
    assert result.stdout == "valid: 4 resources in 1 file\n"


def test_several_files_and_directories(offline: CliRunner, tmp_path: Path) -> None:
    write(tmp_path, "a-services.yaml", SERVICES)
    write(tmp_path, "b-workload.yml", WORKLOAD)
    write(tmp_path, "notes.txt", "not yaml at all: [")
    route = write(tmp_path.parent, "route.yaml", ROUTE)
    result = offline.invoke(app, ["validate", "-f", str(tmp_path), str(route)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "valid: 4 resources in 3 files\n"


def test_a_field_error_names_file_resource_and_field(offline: CliRunner, tmp_path: Path) -> None:
    services = write(tmp_path, "services.yaml", SERVICES)
    route = write(tmp_path, "route.yaml", BAD_WEIGHT)
    result = offline.invoke(app, ["validate", "-f", str(services), "-f", str(route)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "route.yaml: Route default/cart: spec.rules[0].destinations[0].weight: must be 0..100",
        "1 problem",
    ]
    assert result.stdout == ""


def test_missing_references_among_the_files_are_errors(offline: CliRunner, tmp_path: Path) -> None:
    result = offline.invoke(
        app, ["validate", str(write(tmp_path, "cart.yaml", WORKLOAD + "---\n" + ROUTE))]
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "cart.yaml: Workload default/cart-1: spec.service: Service default/cart does not exist: "
        "apply it first (or in the same input)"
    )
    assert any(line.startswith("cart.yaml: Route default/cart: spec.service: ") for line in lines)
    assert lines[-1] == f"{len(lines) - 1} problems"  # validate changes nothing anyway


def test_bad_yaml_and_missing_files(offline: CliRunner, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", BAD_YAML)
    result = offline.invoke(app, ["validate", "-f", str(bad), "-f", str(tmp_path / "gone.yaml")])
    assert result.exit_code == 1
    assert result.stderr.startswith("bad.yaml: line 3: not valid YAML: ")
    assert "gone.yaml: cannot read file: No such file or directory" in result.stderr
    assert "Traceback" not in result.output


def test_no_files_is_a_usage_error(offline: CliRunner, tmp_path: Path) -> None:
    assert offline.invoke(app, ["validate"]).exit_code == 2
    assert offline.invoke(app, ["validate", str(tmp_path)]).exit_code == 2  # empty directory


def test_the_repository_examples_are_valid(offline: CliRunner) -> None:
    examples = REPO / "examples"
    result = offline.invoke(app, ["validate", "-f", str(examples)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid: ")


def test_yaml_errors_name_line_and_column_without_parser_internals(
    offline: CliRunner, tmp_path: Path
) -> None:
    unclosed = write(tmp_path, "unclosed.yaml", "a: [1\n")
    result = offline.invoke(app, ["validate", "-f", str(unclosed)])
    assert result.exit_code == 1
    first, *rest = result.stderr.splitlines()
    assert first == (
        "unclosed.yaml: line 2: not valid YAML: expected ',' or ']', but got '<stream end>' "
        "(column 1; while parsing a flow sequence that starts at line 1, column 4)"
    )
    assert rest == ["1 problem"]
    bad = offline.invoke(app, ["validate", "-f", str(write(tmp_path, "bad.yaml", BAD_YAML))])
    assert "<unicode string>" not in bad.output and "^" not in bad.output


def test_misspelt_kinds_and_fields_get_a_suggestion(offline: CliRunner, tmp_path: Path) -> None:
    typos = write(
        tmp_path,
        "typos.yaml",
        SERVICES.replace("kind: Service", "kind: Servce", 1)
        + "---\n"
        + ROUTE.replace("destinations:", "destinatons:"),
    )
    result = offline.invoke(app, ["validate", "-f", str(typos)])
    assert result.exit_code == 1
    assert "unknown kind 'Servce': did you mean 'Service'? valid kinds are" in result.stderr
    assert "destinatons: unknown field: did you mean 'destinations'?" in result.stderr
    assert "nothing was changed" not in result.stderr


def test_a_misspelt_kind_on_the_command_line_gets_a_suggestion(runner: CliRunner) -> None:
    result = runner.invoke(app, ["get", "servces"])
    assert result.exit_code == 1
    assert "did you mean 'Service'?" in result.output
