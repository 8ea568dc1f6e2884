"""An item's text, built from the normalized item fields by a template that lives in config.

Template syntax (kept small on purpose):

* ``{field}`` is replaced by the item's value; a Python format spec may follow (``{price:.2f}``).
  Field names are item columns (``title, brand, categories, price, description`` and any other).
* ``[...]`` is an optional segment: it is dropped whole when any field inside it is missing, so
  ``[ Brand: {brand}.]`` never renders as ``Brand: .``. Outside brackets a missing field renders empty.
  ``[`` and ``]`` are reserved; segments do not nest. ``{{`` and ``}}`` are literal braces.
* Missing means ``None``, NaN, a blank string or a list with no non-blank element. A list (the category
  path) renders as its elements joined by ``" > "``.
* Runs of whitespace collapse to one space and the ends are stripped, so segments can start with a space.

An item with no field present renders as the empty string: it has no text to embed (collaborative
vectors are the way to give such items a Semantic ID).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

DEFAULT_TEMPLATE = "[{title}.][ Brand: {brand}.][ Categories: {categories}.][ Price: {price:.2f}.][ {description}]"
LIST_SEPARATOR = " > "

_CONVERSIONS = {"s": str, "r": repr, "a": ascii}


@dataclass(frozen=True)
class _Piece:
    literal: str
    field: str | None
    spec: str
    conversion: str | None


@dataclass(frozen=True)
class _Segment:
    optional: bool
    pieces: tuple[_Piece, ...]

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.pieces if p.field is not None]


@dataclass(frozen=True)
class ItemTemplate:
    """A parsed template; parse once per catalog, render once per item."""

    source: str
    segments: tuple[_Segment, ...]

    @classmethod
    def parse(cls, template: str) -> ItemTemplate:
        """Raises ``ValueError`` naming the template when brackets or braces do not balance."""
        segments: list[_Segment] = []
        chunk, optional = "", False
        for char in template:
            if char == "[":
                if optional:
                    raise ValueError(f"item text template {template!r}: optional segments '[...]' cannot nest")
                segments.append(_Segment(False, _pieces(chunk, template)))
                chunk, optional = "", True
            elif char == "]":
                if not optional:
                    raise ValueError(f"item text template {template!r}: ']' without a matching '['")
                segments.append(_Segment(True, _pieces(chunk, template)))
                chunk, optional = "", False
            else:
                chunk += char
        if optional:
            raise ValueError(f"item text template {template!r}: '[' is never closed")
        segments.append(_Segment(False, _pieces(chunk, template)))
        return cls(template, tuple(s for s in segments if s.pieces))

    @property
    def fields(self) -> list[str]:
        """Every field the template reads, in order of first use."""
        return list(dict.fromkeys(f for s in self.segments for f in s.fields))

    def check_fields(self, available: list[str]) -> None:
        """A field the items do not have is a typo in config, not a missing value: say so up front."""
        unknown = [f for f in self.fields if f not in available]
        if unknown:
            raise ValueError(
                f"item text template {self.source!r} uses field(s) {unknown} that the items do not have; "
                f"available: {sorted(available)}"
            )

    def render(self, item: Mapping[str, object]) -> str:
        self.check_fields(list(item))
        values = {f: _normalize(item[f]) for f in self.fields}
        parts = []
        for segment in self.segments:
            if segment.optional and any(values[f] is None for f in segment.fields):
                continue
            parts.extend(_render_piece(p, values) for p in segment.pieces)
        return " ".join("".join(parts).split())


def item_text(item: Mapping[str, object], template: str = DEFAULT_TEMPLATE) -> str:
    """One item's text; see the module docstring for the template syntax."""
    return ItemTemplate.parse(template).render(item)


def item_texts(items: pl.DataFrame, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """Texts of every catalog row, in row order."""
    parsed = ItemTemplate.parse(template)
    parsed.check_fields(items.columns)
    return [parsed.render(row) for row in items.select(parsed.fields).iter_rows(named=True)]


def _pieces(chunk: str, template: str) -> tuple[_Piece, ...]:
    try:
        parsed = list(string.Formatter().parse(chunk))
    except ValueError as err:
        raise ValueError(f"item text template {template!r}: {err}") from err
    pieces = []
    for literal, field, spec, conversion in parsed:
        if field is not None and not field.isidentifier():
            raise ValueError(
                f"item text template {template!r}: {{{field}}} is not a plain field name "
                "(attribute and index access are not supported)"
            )
        if conversion is not None and conversion not in _CONVERSIONS:
            raise ValueError(f"item text template {template!r}: unknown conversion !{conversion} (use !s, !r or !a)")
        pieces.append(_Piece(literal, field, spec or "", conversion))
    return tuple(p for p in pieces if p.literal or p.field is not None)


def _normalize(value: object) -> object | None:
    """``None`` for a missing value; lists joined, strings stripped, everything else as is."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        kept = [str(v).strip() for v in value if v is not None and str(v).strip()]
        return LIST_SEPARATOR.join(kept) if kept else None
    if isinstance(value, str):
        return value.strip() or None
    return value


def _render_piece(piece: _Piece, values: dict[str, object | None]) -> str:
    if piece.field is None:
        return piece.literal
    value = values[piece.field]
    if value is None:
        return piece.literal
    if piece.conversion:
        value = _CONVERSIONS[piece.conversion](value)
    try:
        return piece.literal + format(value, piece.spec)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"item text template: cannot format {piece.field}={value!r} with {piece.spec!r}: {err}"
        ) from err
