"""Typed access to the tables: a model's ``Table`` and its rows as the model's own class.

The repositories query through SQLAlchemy Core (a ``Connection``, no ORM session): fast, but
its rows are ``Row[Any]``, so every field read past a repository was ``Any`` to mypy. Here a
row of a full-table select becomes an instance of the table's SQLModel class, so the columns
are written once (on the model) and every read of them is typed.

The instance is made as SQLAlchemy's ORM makes the ones it loads (``new_instance`` and the
column values put in its ``__dict__``): no validation, about a microsecond a row, and no
session (the instance is transient: reading it never runs SQL). Columns typed as an enum
hold the enum member, as the annotation says (Core gives the stored string).
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, TypeVarTuple, cast

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Executable,
    Row,
    Select,
    Table,
    and_,
    inspect,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapper, configure_mappers
from sqlalchemy.orm.attributes import instance_dict
from sqlmodel import SQLModel

from kap_outcomes.errors import not_found

M = TypeVar("M", bound=SQLModel)
P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

_Enums = tuple[tuple[str, type[enum.Enum]], ...]
_KNOWN: dict[type[SQLModel], tuple[Mapper[Any], _Enums]] = {}


def table_of(model: type[SQLModel]) -> Table:
    """The table of a ``table=True`` model (``__table__``, which SQLModel does not type)."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def _enum_of(annotation: Any) -> type[enum.Enum] | None:
    """``E`` for a field annotated ``E`` or ``E | None``; None for any other type."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [_enum_of(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return found[0] if len(found) == 1 else None
    return None


def _known(model: type[SQLModel]) -> tuple[Mapper[Any], _Enums]:
    known = _KNOWN.get(model)
    if known is None:
        enums = tuple(
            (name, found)
            for name, field in model.model_fields.items()
            if (found := _enum_of(field.annotation)) is not None
        )
        configure_mappers()  # the attributes read the instance's values once configured
        known = _KNOWN[model] = (inspect(model), enums)
    return known


def as_model(model: type[M], row: Row[Any] | Mapping[str, Any]) -> M:
    """A row of ``select(table_of(model))`` (or a mapping of every column) as a ``model``."""
    mapper, enums = _known(model)
    values = dict(row._mapping if isinstance(row, Row) else row)
    for name, kind in enums:
        value = values.get(name)
        if value is not None:
            values[name] = kind(value)
    instance = cast(M, mapper.class_manager.new_instance())
    instance_dict(instance).update(values)
    return instance


def first(conn: Connection, model: type[M], query: Executable) -> M | None:
    """The first row of a full-table select of ``model``, or None."""
    row = conn.execute(query).first()
    return None if row is None else as_model(model, row)


def every(conn: Connection, model: type[M], query: Executable) -> list[M]:
    """Every row of a full-table select of ``model``."""
    return all_of(model, conn.execute(query))


def all_of(model: type[M], rows: Iterable[Row[Any]]) -> list[M]:
    return [as_model(model, row) for row in rows]


def after_key(
    query: Select[*Ts],
    at: ColumnElement[Any],
    key: ColumnElement[Any],
    after: tuple[Any, str] | None,
) -> Select[*Ts]:
    """Keyset paging, oldest first: the rows after ``after`` (``at`` then ``key``), in order."""
    if after is not None:
        value, last = after
        query = query.where(or_(at > value, and_(at == value, key > last)))
    return query.order_by(at, key)


def before_key(
    query: Select[*Ts],
    at: ColumnElement[Any],
    key: ColumnElement[Any],
    before: tuple[Any, str] | None,
    *,
    inclusive: bool = False,
) -> Select[*Ts]:
    """Keyset paging, newest first: the rows before ``before`` (``at`` then ``key``; with
    ``inclusive``, ``before``'s own row too), in order."""
    if before is not None:
        value, last = before
        key_passes = key <= last if inclusive else key < last
        query = query.where(or_(at < value, and_(at == value, key_passes)))
    return query.order_by(at.desc(), key.desc())


def columns_for(table: Table, shape: type[BaseModel]) -> list[Column[Any]]:
    """The table's columns named by the fields of ``shape``: a select of just what it shows."""
    return [table.c[name] for name in shape.model_fields]


def shaped(shape: type[P], row: Row[Any] | SQLModel | Mapping[str, Any]) -> P:
    """A row (of at least the columns ``shape`` names) as ``shape``, validated."""
    return shape.model_validate(row, from_attributes=True)


def values_of(row: SQLModel) -> dict[str, Any]:
    """Every column of a model's row, by name."""
    return {name: getattr(row, name) for name in type(row).model_fields}


def owned(
    conn: Connection, model: type[M], *, id: str, organisation_id: str, lock: bool = False
) -> M | None:
    """The row of ``model`` with this id, if it is the organisation's (``lock``: locked until
    the transaction ends, on PostgreSQL)."""
    table = table_of(model)
    query = select(table).where(table.c.id == id, table.c.organisation_id == organisation_id)
    return first(conn, model, query.with_for_update() if lock else query)


def unless_taken(conn: Connection, *statements: Executable) -> bool:
    """Run the statements in a savepoint; False, and none of them kept, when a unique
    constraint refuses one (a value taken, by this row's twin or a concurrent writer)."""
    try:
        with conn.begin_nested():
            for statement in statements:
                conn.execute(statement)
    except IntegrityError:
        return False
    return True


def found(row: R | None, what: str) -> R:
    """``row``, or a 404 naming ``what`` when there is none."""
    if row is None:
        raise not_found(what)
    return row
