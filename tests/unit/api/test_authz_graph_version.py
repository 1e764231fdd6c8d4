"""``GET /v1/authz/graph``'s version (``api.authz_graph.GraphBoard``) changes for real graph
changes only: a trial run (a validation, a dry run, a refused batch) is undone and leaves it
as it was, so decision points do not refetch the whole graph after each one."""

from __future__ import annotations

import pytest
from tests.unit.authz.planes import authz_plane
from tests.unit.authz.test_engine import SHOP, WEB, create

from gossamer.api.authz_graph import GraphBoard
from gossamer.errors import AccessDeniedError
from gossamer.model.access_policy import AccessPolicy
from gossamer.polling import wait_until

OTHER = "spiffe://m/ns/default/sa/other"


def with_other_user() -> AccessPolicy:
    spec = SHOP.model_dump()
    spec["spec"]["users"][OTHER] = ["web"]
    return AccessPolicy.model_validate(spec)


@pytest.mark.asyncio
async def test_trial_runs_keep_the_version_and_real_changes_move_it() -> None:
    async with authz_plane() as (plane, engine):
        board = GraphBoard(plane, engine)
        await plane.apply([SHOP])
        await wait_until(lambda: engine.graph.find(WEB) is not None, what="the rebuild")
        version = (await board.current())["version"]

        changed = with_other_user()
        assert await plane.validate([changed]) == []  # `gossamer validate`: tried in place
        await plane.apply([changed], dry_run=True)  # `gossamer apply --dry-run`
        with pytest.raises(AccessDeniedError):  # a refused batch: run, then undone
            await engine.execute(WEB, create("cart:/nope"))
        assert engine.graph.find("cart:/nope") is None
        assert board.version == version
        assert (await board.current())["version"] == version

        await plane.apply([changed])  # a real apply, made in place: the version moves
        await wait_until(lambda: engine.graph.find(OTHER) is not None, what="the apply")
        document = await board.current()
        assert document["version"] != version
        assert OTHER in str(document["graph"])

        version = document["version"]
        await engine.execute("admin", create("cart:/checkout"))  # a real batch: it moves
        assert board.version != version
