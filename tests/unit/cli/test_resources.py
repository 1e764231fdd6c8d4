"""``apply``, ``get`` and ``delete`` through HTTP against a real API server."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from gossamer.cli.main import app
from gossamer.testing.ports import free_port

from .conftest import ApiServer
from .files import BAD_WEIGHT, ROUTE, SERVICES, WORKLOAD
from .test_proxies import status


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_apply_then_reapply(runner: CliRunner, server: ApiServer, shop_file: Path) -> None:
    first = runner.invoke(app, ["apply", "-f", str(shop_file)])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "Service default/cart created",
        "Service default/web created",
        "Workload default/cart-1 created",
        "Route default/cart created",
        "revision 1",
    ]
    again = runner.invoke(app, ["apply", str(shop_file)])
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1] == "revision 1"
    assert "Route default/cart unchanged" in again.stdout
    assert server.fake.revision == 1


def test_dry_run_prints_the_diff_and_stores_nothing(
    runner: CliRunner, server: ApiServer, shop_file: Path, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["apply", "-f", str(shop_file)]).exit_code == 0
    moved = write(
        tmp_path,
        "moved.yaml",
        WORKLOAD.replace("127.0.0.2", "127.0.0.3")
        + "---\n"
        + ROUTE.replace("name: cart}", "name: cart-canary}"),
    )
    result = runner.invoke(app, ["apply", "--dry-run", "-f", str(moved)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Route default/cart-canary would be created"
    assert lines[1] == "Workload default/cart-1 would be updated"
    assert "--- Workload default/cart-1 (stored)" in lines
    assert "+++ Workload default/cart-1 (applied)" in lines
    assert "-  address: 127.0.0.2" in lines
    assert "+  address: 127.0.0.3" in lines
    assert lines[-1] == "dry run: nothing was stored"
    assert server.fake.revision == 1
    got = runner.invoke(app, ["get", "workload", "cart-1", "-o", "json"])
    assert json.loads(got.stdout)["spec"]["address"] == "127.0.0.2"


def test_a_bad_file_is_refused_before_the_server_is_asked(
    runner: CliRunner, server: ApiServer, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["apply", "-f", str(write(tmp_path, "route.yaml", BAD_WEIGHT))])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "route.yaml: Route default/cart: spec.rules[0].destinations[0].weight: must be 0..100"
    )
    assert server.fake.revision == 0


def test_server_side_reference_errors_name_the_file(
    runner: CliRunner, server: ApiServer, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["apply", "-f", str(write(tmp_path, "cart.yaml", WORKLOAD))])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "cart.yaml: Workload default/cart-1: spec.service: Service default/cart does not exist: "
        "apply it first (or in the same input)",
        "1 problem; nothing was changed",
    ]
    assert server.fake.revision == 0


def test_wait_reports_acks_and_a_timeout_says_the_change_is_stored(
    runner: CliRunner, server: ApiServer, shop_file: Path, tmp_path: Path
) -> None:
    server.fake.add_proxy(status("cart-1"))
    ok = runner.invoke(app, ["apply", "-f", str(shop_file), "--wait"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[-1] == "revision 1; acked by 1 proxy: sidecar~default~cart-1"

    server.fake.add_proxy(status("cart-1"), acks=False)  # moving it changes its config
    moved = write(tmp_path, "w.yaml", WORKLOAD.replace("127.0.0.2", "127.0.0.9"))
    late = runner.invoke(app, ["apply", "-f", str(moved), "--wait", "--wait-timeout", "0.1"])
    assert late.exit_code == 1
    assert late.stderr == (
        "error: the change is stored (revision 2) but 1 proxies have not ACKed it within 0.1 s: "
        "sidecar~default~cart-1; see `gossamer proxy-status`\n"
    )
    assert server.fake.revision == 2


def test_get_tables_yaml_and_json(runner: CliRunner, shop_file: Path) -> None:
    assert runner.invoke(app, ["apply", "-f", str(shop_file)]).exit_code == 0
    table = runner.invoke(app, ["get", "svc"])
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "PORTS", "LOCAL", "ADDRESS"]
    assert rows[0].split()[:3] == ["default", "cart", "http:8080/http"]
    assert rows[1].split()[:3] == ["default", "web", "http:80/http2"]

    workloads = runner.invoke(app, ["get", "Workloads"])
    assert "15006->8080" in workloads.stdout
    assert "host-a" in workloads.stdout
    routes = runner.invoke(app, ["get", "ROUTE"])
    assert "service cart" in routes.stdout
    assert "cart:100" in routes.stdout

    as_yaml = runner.invoke(app, ["get", "services", "-o", "yaml"])
    docs = list(yaml.safe_load_all(as_yaml.stdout))
    assert [d["metadata"]["name"] for d in docs] == ["cart", "web"]
    one = runner.invoke(app, ["get", "service", "default/web", "-o", "json"])
    assert json.loads(one.stdout)["spec"]["ports"][0]["protocol"] == "http2"
    listed = runner.invoke(app, ["get", "service", "-o", "json"])
    assert [m["metadata"]["name"] for m in json.loads(listed.stdout)] == ["cart", "web"]


def test_get_yaml_output_applies_back(
    runner: CliRunner, server: ApiServer, shop_file: Path, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["apply", "-f", str(shop_file)]).exit_code == 0
    dumped = runner.invoke(app, ["get", "svc", "-o", "yaml"]).stdout
    result = runner.invoke(app, ["apply", "-f", str(write(tmp_path, "back.yaml", dumped))])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == [
        "Service default/cart unchanged",
        "Service default/web unchanged",
    ]


def test_get_errors(runner: CliRunner, shop_file: Path) -> None:
    assert runner.invoke(app, ["apply", "-f", str(shop_file)]).exit_code == 0
    empty = runner.invoke(app, ["get", "route", "-n", "other"])
    assert empty.exit_code == 0
    assert empty.stdout == "no Route resources in namespace other\n"
    pods = runner.invoke(app, ["get", "pods"])
    assert pods.exit_code == 1
    assert pods.stderr.startswith("error: kind: unknown kind 'pods': valid kinds are ")
    missing = runner.invoke(app, ["get", "svc", "nope"])
    assert missing.exit_code == 1
    assert missing.stderr == (
        "error: Service default/nope does not exist: list what does with `gossamer get Service`\n"
    )
    assert runner.invoke(app, ["get", "svc", "-o", "xml"]).exit_code == 2


def test_delete_by_name_and_from_files(
    runner: CliRunner, server: ApiServer, shop_file: Path, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["apply", "-f", str(shop_file)]).exit_code == 0
    refused = runner.invoke(app, ["delete", "svc", "cart"])
    assert refused.exit_code == 1
    assert "Workload default/cart-1: spec.service: " in refused.stderr
    assert "Route default/cart: spec.service: " in refused.stderr

    route = runner.invoke(app, ["delete", "routes", "cart", "-n", "default"])
    assert route.exit_code == 0, route.output
    assert route.stdout.splitlines() == ["Route default/cart deleted", "revision 2"]

    rest = write(tmp_path, "rest.yaml", SERVICES + "---\n" + WORKLOAD)
    files = runner.invoke(app, ["delete", "-f", str(rest)])
    assert files.exit_code == 0, files.output
    assert files.stdout.splitlines() == [
        "Service default/cart deleted",
        "Service default/web deleted",
        "Workload default/cart-1 deleted",
        "revision 3",
    ]
    again = runner.invoke(app, ["delete", "route", "default/cart"])
    assert again.exit_code == 1
    assert "does not exist" in again.stderr


def test_delete_usage_errors(runner: CliRunner, shop_file: Path) -> None:
    assert runner.invoke(app, ["delete"]).exit_code == 2
    assert runner.invoke(app, ["delete", "svc"]).exit_code == 2
    assert runner.invoke(app, ["delete", "svc", "cart", "-f", str(shop_file)]).exit_code == 2


def test_unreachable_server_is_exit_3_with_one_line(offline: CliRunner, shop_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["get", "svc"], ["apply", "-f", str(shop_file)], ["proxy-status"]):
        result = offline.invoke(app, [*args, "--server", url])
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith(f"error: cannot reach the control plane at {url}: ")
        assert result.stderr.endswith("; start it with `gossamer control-plane` or pass --server\n")
        assert result.stderr.count("\n") == 1


def test_server_url_must_be_http(offline: CliRunner) -> None:
    result = offline.invoke(app, ["get", "svc", "--server", "127.0.0.1:7070"])
    assert result.exit_code == 2
    assert "is not an http(s) URL" in result.output


def test_piped_tables_are_not_cut_to_80_columns(server: ApiServer, tmp_path: Path) -> None:
    runner = CliRunner(env={"GOSSAMER_SERVER": server.url, "COLUMNS": None, "NO_COLOR": "1"})
    long_name = "cart-" + "x" * 50
    workload = WORKLOAD.replace("name: cart-1,", f"name: {long_name},")
    path = write(tmp_path, "shop.yaml", SERVICES + "---\n" + workload)
    assert runner.invoke(app, ["apply", "-f", str(path)]).exit_code == 0
    result = runner.invoke(app, ["get", "workloads"])
    [row] = result.stdout.splitlines()[1:]
    assert row.split() == [
        "default",
        long_name,
        "cart",
        "127.0.0.2",
        "15006->8080",
        "host-a",
        "-",
        "healthy",
        "-",
    ]
    assert max(len(line) for line in result.stdout.splitlines()) > 80


def test_wait_with_no_proxy_to_wait_for_says_so(
    runner: CliRunner, server: ApiServer, shop_file: Path
) -> None:
    """A new user's `apply --wait` before any agent runs returned at once, silently."""
    ok = runner.invoke(app, ["apply", "-f", str(shop_file), "--wait"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[-1] == (
        "revision 1; waited for no proxy: no connected proxy's config changed (none routes "
        "what was applied yet; `gossamer proxy-status` lists the connected ones)"
    )
    plain = runner.invoke(app, ["apply", "-f", str(shop_file)])
    assert plain.stdout.splitlines()[-1] == "revision 1"
