"""Dagster ``Config`` classes generated from the core's config dataclasses, so every knob is defined once."""

import dataclasses
import typing

from dagster import Config
from pydantic import create_model


def config_class(name: str, dataclass_type: type) -> type[Config]:
    """A Dagster ``Config`` with the fields and defaults of a core dataclass, so knobs are defined once."""
    hints = typing.get_type_hints(dataclass_type)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(dataclass_type)}
    return create_model(name, __base__=Config, **fields)  # type: ignore[call-overload]
