"""Every ``Any`` the translators pack holds its message's deterministic bytes (map
entries sorted), so equal configs are equal bytes in every process: resource versions
survive a control-plane restart and a restarted agent recognises its Envoy's bootstrap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import any_pb2, descriptor_pool, message, message_factory, struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from translate_helpers import proxies, shop

from gossamer.agent.bootstrap import sidecar_bootstrap
from gossamer.agent.config import WorkloadConfig
from gossamer.translate.common import any_of
from gossamer.translate.proxy import Translator


def _unpack(value: any_pb2.Any) -> message.Message:
    name = value.type_url.rpartition("/")[2]
    cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))
    out = cls()
    value.Unpack(out)
    return out


def undeterministic_anys(msg: message.Message, path: str = "") -> list[str]:
    """The paths of the ``Any`` values in ``msg`` whose bytes are not their message's
    deterministic serialisation."""
    if isinstance(msg, any_pb2.Any):
        inner = _unpack(msg)
        bad = [path] if msg.value != inner.SerializeToString(deterministic=True) else []
        return bad + undeterministic_anys(inner, path)
    out: list[str] = []
    for field, value in msg.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        where = f"{path}.{field.name}"
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    out += undeterministic_anys(item, f"{where}[{key}]")
        elif field.is_repeated:
            for i, item in enumerate(value):
                out += undeterministic_anys(item, f"{where}[{i}]")
        else:
            out += undeterministic_anys(value, where)
    return out


def test_any_of_packs_map_entries_sorted() -> None:
    keys = [f"k{i:02d}" for i in range(40)]
    struct = struct_pb2.Struct()
    for key in reversed(keys):
        struct[key] = key
    assert undeterministic_anys(any_of(struct)) == []


def test_every_any_of_every_proxy_of_the_shop_is_deterministic() -> None:
    snap = shop()
    translator = Translator()
    for ident in proxies(snap):
        res = translator.proxy(snap, ident)
        for kind in ("clusters", "endpoints", "listeners", "routes", "extension_configs"):
            for name, resource in getattr(res, kind).items():
                assert undeterministic_anys(resource) == [], (ident, kind, name)


def _sidecar() -> WorkloadConfig:
    return WorkloadConfig.model_validate(
        {"name": "catalog-1", "service": "catalog", "appPort": 8080}
    )


def test_a_sidecar_bootstrap_is_the_same_in_every_process(tmp_path: Path) -> None:
    """What a restarted agent compares to adopt its Envoy (``bootstrap_digest``)."""
    script = (
        "from gossamer.agent.bootstrap import sidecar_bootstrap\n"
        "from gossamer.agent.config import WorkloadConfig\n"
        "from gossamer.agent.envoy import bootstrap_digest\n"
        "from pathlib import Path\n"
        "w = WorkloadConfig.model_validate({'name': 'catalog-1', 'service': 'catalog',"
        " 'appPort': 8080})\n"
        "b = sidecar_bootstrap(w, host='host-b', xds=('127.0.0.1', 18000), admin_port=9901,"
        f" sds_socket=Path({str(tmp_path / 'sds.sock')!r}))\n"
        "print(bootstrap_digest(b))\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout.strip()
        for _ in range(4)
    }
    assert len(digests) == 1, digests
    bootstrap = sidecar_bootstrap(
        _sidecar(),
        host="host-b",
        xds=("127.0.0.1", 18000),
        admin_port=9901,
        sds_socket=tmp_path / "sds.sock",
    )
    assert undeterministic_anys(bootstrap) == []
