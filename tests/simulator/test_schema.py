"""The JSON Schema instance generator: every instance validates against its schema, for the
shapes pydantic and the SDKs' strict helpers emit and for the keywords the module lists."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Literal

import jsonschema
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from simulator.schema import instance, object_instance


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    postcode: str = Field(pattern=r"^[0-9]{5}$")


class Person(BaseModel):
    name: str = Field(min_length=5, max_length=8)
    age: int = Field(ge=18, le=99)
    score: float = Field(gt=0.5)
    email: str = Field(json_schema_extra={"format": "email"})
    born: datetime.date
    seen: datetime.datetime
    ident: uuid.UUID
    colour: Colour
    kind: Literal["staff"]
    tags: list[str] = Field(min_length=2)
    home: Address
    previous: list[Address]
    manager: Person | None = None
    nickname: str | None


SCHEMAS = {
    "pydantic": Person.model_json_schema(),
    "strict": to_strict_json_schema(Person),
    "unique items": {
        "type": "array",
        "items": {"type": "integer", "minimum": 3},
        "minItems": 3,
        "uniqueItems": True,
    },
    "enum array": {
        "type": "array",
        "items": {"enum": ["a", "b", "c"]},
        "minItems": 2,
        "uniqueItems": True,
    },
    "all of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    },
    "type list": {"type": ["null", "integer"], "multipleOf": 7, "minimum": 10},
    "number bounds": {"type": "number", "exclusiveMinimum": 2, "maximum": 2.5},
    "const": {"const": {"fixed": [1, 2]}},
    "prefix items": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
    },
    "max items zero": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
    "empty": {},
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_instance_validates_against_its_schema(name):
    schema = SCHEMAS[name]
    value = instance(schema)
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)


def test_pydantic_parses_the_instance_of_its_own_schema():
    person = Person.model_validate(instance(Person.model_json_schema()))
    assert person.kind == "staff" and person.colour is Colour.RED
    assert len(person.tags) == 2 and len(person.tags[0]) >= 1
    assert person.home.postcode.isdigit() and len(person.home.postcode) == 5
    assert 18 <= person.age <= 99 and person.score > 0.5


def test_strict_schema_instance_has_every_property():
    strict = to_strict_json_schema(Person)
    value = instance(strict)
    assert set(value) == set(strict["properties"])
    assert Person.model_validate(value)


def test_recursive_refs_stop():
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}},
                "required": ["child"],
            }
        },
        "$ref": "#/$defs/Node",
    }
    value = instance(schema)  # returns rather than recursing forever
    depth = 0
    while isinstance(value, dict):
        value, depth = value["child"], depth + 1
    assert depth > 3


def test_tool_arguments_are_always_an_object():
    assert object_instance({}) == {}
    assert object_instance({"type": "string"}) == {}
    assert object_instance(None) == {}
    assert object_instance({"type": "object", "properties": {"city": {"type": "string"}}}) == {
        "city": "sim"
    }
