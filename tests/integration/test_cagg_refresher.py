"""sql.refresh against the real database: one bottom-up pass over every aggregate works outside a transaction."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_refresh_once_refreshes_every_aggregate_bottom_up(stack):
    from sql.refresh import AGGREGATES, refresh_once

    done = refresh_once(stack.db_dsn)
    assert [d["view"] for d in done] == [a.view for a in AGGREGATES]
    assert all(d["start"] < d["end"] for d in done)
