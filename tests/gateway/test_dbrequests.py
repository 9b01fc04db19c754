"""Client CRUD bodies become DbRequests in one place, with the same reading as the adapters'."""

from __future__ import annotations

import pytest

from common.errors import BadRequest
from gateway import dbrequests


@pytest.mark.parametrize("id_field", ["id", "_id"])
def test_a_pipeline_is_read_with_the_databases_id_field(id_field: str) -> None:
    # excluding the id in an inclusion $project is what every adapter accepts: the gateway must too
    pipe = [{"$project": {id_field: 0, "name": 1}}]
    assert dbrequests.build("aggr", "c", {"pipe": pipe}, id_field).pipe == pipe
    with pytest.raises(BadRequest):
        dbrequests.build("aggr", "c", {"pipe": [{"$project": {"other": 0, "name": 1}}]}, id_field)


def test_reserved_and_folded_collection_names() -> None:
    with pytest.raises(BadRequest):
        dbrequests.collection("bad name")
    assert dbrequests.collection("Todos") == "Todos"
