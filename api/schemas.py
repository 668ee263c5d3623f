"""The base of every API schema: Python names in snake_case, JSON keys in camelCase, both
ways (requests are read by alias, responses written by alias: see api.main.router)."""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel


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
