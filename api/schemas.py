"""The base of every API schema: Python names in snake_case, JSON keys in camelCase, both
ways (requests are read by alias, responses written by alias: see api.main.router)."""

from __future__ import annotations

from typing import Annotated

from ninja import Schema
from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

# A database id as a client may send one: positive and within a bigint, so an id past it is a
# 422 rather than a database error.
ObjectId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class CamelSchema(Schema):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )


class StrictCamelSchema(CamelSchema):
    """A request body: an unknown key is an error, not silently ignored (a typo in an
    option must not start a run that does something else)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
    )
