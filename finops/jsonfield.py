"""``FastJSONField``: a ``JSONField`` that encodes and decodes with orjson.

For columns that hold customer payloads (a stored Responses conversation can be a coding agent's
400 KB context): the standard library's ``json`` takes about 1 ms to encode that and holds the
GIL the whole time, in the ledger thread beside the event loop; orjson takes 0.15 ms. Values
must be what JSON parsing produces (str keys; no Decimal, no NaN), which is all these columns
hold. The column is the same ``jsonb`` / JSON text as ``JSONField``'s: no migration of data.
"""

from __future__ import annotations

import orjson
from django.db import models
from psycopg.types.json import Jsonb


class FastJSONField(models.JSONField):
    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if hasattr(value, "as_sql"):  # an expression: Django's own path
            return super().get_db_prep_value(value, connection, prepared=True)
        if connection.vendor == "postgresql":
            return Jsonb(value, dumps=orjson.dumps)
        return orjson.dumps(value).decode()

    def from_db_value(self, value, expression, connection):
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        return super().from_db_value(value, expression, connection)
