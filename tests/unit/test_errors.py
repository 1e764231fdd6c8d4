"""The one exception tree: every error Gossamer raises on purpose is defined in
``gossamer.errors``, every one the API can answer with has its row in the HTTP table, and a
client maps an answer back to the branch that says what to do about it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import httpx
import pydantic
import pytest
from fastapi import FastAPI

import gossamer
from gossamer import errors
from gossamer.api.errors import HTTP_ERRORS, http_error, install_error_handlers
from gossamer.errors import (
    ApiError,
    AuthError,
    ClientError,
    FieldError,
    GossamerError,
    RefusedError,
    RejectedError,
    ServerError,
    ValidationError,
    WaitTimeoutError,
    field_errors,
)


def _modules() -> list[Any]:
    return [
        importlib.import_module(m.name)
        for m in pkgutil.walk_packages(gossamer.__path__, "gossamer.")
    ]


def test_every_public_exception_is_defined_in_errors_py() -> None:
    outside = sorted(
        f"{mod.__name__}.{name}"
        for mod in _modules()
        for name, obj in vars(mod).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == mod.__name__
        and mod.__name__ != "gossamer.errors"
        and not name.startswith("_")
    )
    assert not outside, f"define these in gossamer/errors.py (or make them private): {outside}"


def test_every_error_of_the_tree_is_a_gossamer_error() -> None:
    stray = [
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == "gossamer.errors"
        and not issubclass(obj, GossamerError)
    ]
    assert not stray


def _tree() -> list[type[GossamerError]]:
    return [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, GossamerError)
    ]


def test_every_error_the_api_can_answer_with_has_its_own_row() -> None:
    """Server-side errors (all but the client branch) answer a status of their own, never
    the catch-all 500 of ``GossamerError``."""
    unmapped = [
        cls.__name__
        for cls in _tree()
        if not issubclass(cls, ClientError)
        and cls is not GossamerError
        and http_error(cls)[1] == "internal"
    ]
    assert not unmapped, f"give these a row in api/errors.py HTTP_ERRORS: {unmapped}"


def test_no_row_of_the_table_is_shadowed() -> None:
    for i, (cls, _, _) in enumerate(HTTP_ERRORS):
        earlier = [c.__name__ for c, _, _ in HTTP_ERRORS[:i] if issubclass(cls, c)]
        assert not earlier, f"{cls.__name__} is never reached: {earlier} come first"


@pytest.mark.parametrize(("cls", "status", "code"), HTTP_ERRORS)
def test_a_client_maps_every_answer_back(cls: type[Exception], status: int, code: str) -> None:
    """An agent retries ``ServerError`` (5xx: not ready, store down), acts on
    ``RefusedError``'s reason (401) and reports ``RejectedError`` (other 4xx)."""
    back = ApiError.answered(status, code, ["it went wrong"])
    expected = RefusedError if status == 401 else RejectedError if status < 500 else ServerError
    assert type(back) is expected
    assert (back.status, back.code, str(back)) == (status, code, "it went wrong")


def test_a_refusal_keeps_its_reason() -> None:
    back = ApiError.answered(401, "unauthorized", ["agent revoked"], reason="revoked")
    assert isinstance(back, RefusedError) and back.revoked and back.reason == "revoked"


# -- one function turns a pydantic error into FieldErrors ---------------------------------


class _Port(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    port: int
    name: str = "x"

    @pydantic.field_validator("name")
    @classmethod
    def _lower(cls, v: str) -> str:
        if v != v.lower():
            raise ValueError(f"Must be lowercase, got {v!r}")
        return v


class _Spec(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    ports: list[_Port]


def _errors(data: object, **kw: Any) -> list[FieldError]:
    with pytest.raises(pydantic.ValidationError) as info:
        _Spec.model_validate(data)
    return field_errors(info.value, **kw)


def test_field_errors_name_the_field_and_say_what_is_valid() -> None:
    got = _errors(
        {"ports": [{"port": "80"}, {"name": "A", "port": 1}, {"port": 2, "colour": 1}, {}]},
        resource="Service default/cart",
        source="cart.yaml",
    )
    assert [str(e) for e in got] == [
        "cart.yaml: Service default/cart: ports[0].port: input should be a valid integer, not '80'",
        "cart.yaml: Service default/cart: ports[1].name: must be lowercase, got 'A'",
        "cart.yaml: Service default/cart: ports[2].colour: unknown field: remove it or "
        "check its spelling",
        "cart.yaml: Service default/cart: ports[3].port: required field is missing",
    ]


def test_field_errors_under_another_root() -> None:
    """``root`` replaces the first ``skip`` parts of the location (e.g. a request's
    ``commands`` validated one by one)."""
    got = _errors({"ports": [{"port": 1, "extra": 2}]}, root=("commands",), skip=1)
    assert [e.path for e in got] == ["commands[0].extra"]


# -- the table, as the API answers -------------------------------------------------------


def _instance(cls: type[GossamerError]) -> GossamerError:
    if issubclass(cls, ValidationError):
        return cls([FieldError("must be 1..65535", "spec.port")])
    if issubclass(cls, AuthError):
        return cls("agent a-1 was revoked", "revoked")
    return cls("it went wrong")


def _server_side() -> list[type[GossamerError]]:
    return [cls for cls in _tree() if not issubclass(cls, ClientError)]


@pytest.mark.asyncio
@pytest.mark.parametrize("cls", _server_side(), ids=lambda c: c.__name__)
async def test_the_api_answers_each_error_with_its_row(cls: type[GossamerError]) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise _instance(cls)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        response = await client.get("/fail")
    status, code = http_error(cls)
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code)
    assert body["errors"] and all(isinstance(line, str) for line in body["errors"])
    assert body["stored"] is issubclass(cls, WaitTimeoutError)
    if issubclass(cls, AuthError):  # the agent acts on the reason (docs/agent-protocol.md)
        assert body["reason"] == "revoked"
        assert response.headers["www-authenticate"] == "Bearer"
    back = ApiError.answered(status, body["code"], body["errors"], reason=body.get("reason"))
    assert str(back) == "\n".join(body["errors"])
