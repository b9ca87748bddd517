"""``INSERT ... ON CONFLICT DO NOTHING RETURNING``: create a row unless its key exists.

``get_or_create`` inside a transaction costs four statements (a SELECT, a savepoint,
the INSERT, its release) so that a duplicate key can be caught without aborting
the transaction. PostgreSQL does the same in one: the INSERT skips a row whose
unique key exists (waiting for a concurrent insert of the same key to commit or roll
back first) and returns the new primary key only when it inserted. Django's
``bulk_create(ignore_conflicts=True)`` runs that INSERT but does not return the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.db import connections, router
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


def insert_unless_exists(obj: Model, *, unique_field: str) -> bool:
    """Insert ``obj`` unless a row with its ``unique_field`` exists; whether it did.

    When it did, ``obj.pk`` is set and ``obj`` is saved; otherwise ``obj`` is untouched
    and the caller reads the existing row. Field defaults and ``auto_now_add`` apply as
    in ``save()``; signals are not sent (as with ``bulk_create``).
    """
    return bool(insert_new_only([obj], unique_field=unique_field))


def insert_new_only(objs: Sequence[M], *, unique_field: str) -> list[M]:
    """``insert_unless_exists`` for many rows of one model, in one statement.

    Returns the objects inserted (their ``pk`` set), in the order given; the others
    (their key already stored, or repeated in ``objs``) are left untouched.
    """
    if not objs:
        return []
    meta = objs[0]._meta
    using = router.db_for_write(type(objs[0]), instance=objs[0])
    connection = connections[using]
    quote = connection.ops.quote_name
    pk = meta.pk
    unique = meta.get_field(unique_field)
    assert pk is not None and isinstance(unique, Field)
    # The primary key is left to the database unless it has a value (a UUID default).
    with_pk = objs[0].pk is not None
    fields = [
        field
        for field in meta.concrete_fields
        if not field.generated and (field is not pk or with_pk)
    ]
    rows = [
        [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
        for obj in objs
    ]
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} "
        f"({', '.join(quote(str(field.column)) for field in fields)}) "
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({quote(str(unique.column))}) DO NOTHING "
        f"RETURNING {quote(str(pk.column))}, {quote(str(unique.column))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])
        returned = cursor.fetchall()
    new_key = {unique.to_python(key): row_pk for row_pk, key in returned}
    inserted = []
    for obj in objs:
        key = unique.value_from_object(obj)
        if key in new_key:
            obj.pk = new_key.pop(key)  # a key repeated in objs: only its first is new
            obj._state.adding = False
            obj._state.db = using
            inserted.append(obj)
    return inserted
