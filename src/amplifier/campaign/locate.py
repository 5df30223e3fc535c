"""Where a pydantic validation error stands: its ``loc`` followed through the data (the path of the node to report
at, the union member it went through) and through the model's types (the field it is about, the keys allowed there).
:mod:`amplifier.campaign.wording` words the error; this module only finds its place."""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from amplifier.campaign.yamlsource import PathKey


def field_name(loc: tuple[Any, ...]) -> str:
    """The model field an error is about: the last label of ``loc`` that names a field of any campaign model."""
    from amplifier.campaign import models

    names: set[str] = set()
    for value in vars(models).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            names.update(value.model_fields)
    for item in reversed(loc):
        if isinstance(item, str) and item in names:
            return item
    return next((str(item) for item in reversed(loc) if isinstance(item, str)), "")


def _walk(data: Any, loc: tuple[Any, ...]) -> tuple[PathKey, PathKey | None]:
    """The labels of ``loc`` that name nodes of the data, and the data path where the last label not in the data
    stood (a union tag or a validator's name), or None."""
    branch: PathKey | None = None
    path: list[str | int] = []
    node = data
    for item in loc:
        if _has(node, item):
            path.append(item)
            node = node[item]
        else:
            branch = tuple(path)
    return tuple(path), branch


def data_path(data: Any, loc: tuple[Any, ...]) -> PathKey:
    """The part of a pydantic ``loc`` that names nodes of the data (dropping union tags and validator names)."""
    return _walk(data, loc)[0]


def branch(data: Any, loc: tuple[Any, ...]) -> PathKey | None:
    """The data path of the union whose member ``loc`` passes through (the last label not in the data), or None."""
    return _walk(data, loc)[1]


def _has(node: Any, item: Any) -> bool:
    if isinstance(node, dict):
        return item in node
    return isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)


def model_keys(model: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model found by following ``loc`` through the types of ``model``."""
    kind: Any = model
    for item in loc:
        kind = _step(kind, item)
        if kind is None:
            return None
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return list(kind.model_fields)
    return None


def _unwrap(kind: Any) -> Any:
    while True:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            models = [arg for arg in members if isinstance(arg, type) and issubclass(arg, BaseModel)]
            if len(models) == 1:
                return models[0]
            return kind
        else:
            return kind


def _step(kind: Any, item: Any) -> Any:
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        info = kind.model_fields.get(str(item))
        return info.annotation if info is not None else None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(kind):
            member = _unwrap(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                for info in member.model_fields.values():
                    if typing.get_args(_unwrap(info.annotation)) == (item,):
                        return member
        return kind
    if origin is dict:
        return typing.get_args(kind)[1]
    if origin in (list, tuple):
        return typing.get_args(kind)[0]
    return None
