"""Item text: missing fields vanish cleanly, the template syntax is checked up front."""

import math

import polars as pl
import pytest

from sid_platform.data.schema import ITEM_SCHEMA
from sid_platform.embed.text import DEFAULT_TEMPLATE, ItemTemplate, item_text, item_texts

FULL = {
    "title": "Velvet Lipstick",
    "brand": "Acme",
    "categories": ["Beauty", "Makeup", "Lips"],
    "price": 12.5,
    "description": "A  matte\nred.",
}
EMPTY = {"title": None, "brand": None, "categories": None, "price": None, "description": None}


def test_every_field_present():
    assert item_text(FULL) == (
        "Velvet Lipstick. Brand: Acme. Categories: Beauty > Makeup > Lips. Price: 12.50. A matte red."
    )


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        (
            {"brand": None},
            "Velvet Lipstick. Categories: Beauty > Makeup > Lips. Price: 12.50. A matte red.",
        ),
        ({"title": None, "description": "  "}, "Brand: Acme. Categories: Beauty > Makeup > Lips. Price: 12.50."),
        ({"categories": [], "price": math.nan}, "Velvet Lipstick. Brand: Acme. A matte red."),
        (
            {"categories": [None, " ", "Beauty"]},
            "Velvet Lipstick. Brand: Acme. Categories: Beauty. Price: 12.50. A matte red.",
        ),
    ],
)
def test_missing_fields_are_omitted_cleanly(missing, expected):
    text = item_text({**FULL, **missing})
    assert text == expected
    assert "None" not in text and "nan" not in text


def test_an_item_with_no_content_has_no_text():
    assert item_text(EMPTY) == ""


def test_fields_outside_brackets_render_empty_when_missing():
    template = "Item {title} by {brand}[ at {price:.1f} dollars]"
    assert item_text({**EMPTY, "title": "Tent"}, template) == "Item Tent by"
    assert item_text({**EMPTY, "brand": "Acme", "price": 3.0}, template) == "Item by Acme at 3.0 dollars"
    assert item_text({"title": "{not a field}"}, "{{{title}}}") == "{{not a field}}"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("[{title} [{brand}]]", "cannot nest"),
        ("{title}]", "without a matching"),
        ("[{title}", "never closed"),
        ("{title", "template"),
        ("{title.upper}", "not a plain field name"),
        ("{title!x}", "unknown conversion"),
    ],
)
def test_template_syntax_errors_name_the_template(template, message):
    with pytest.raises(ValueError, match=message):
        ItemTemplate.parse(template)


def test_a_field_the_items_do_not_have_is_reported():
    with pytest.raises(ValueError, match=r"\['titel'\].*available"):
        item_text(FULL, "[{titel}]")
    with pytest.raises(ValueError, match="cannot format title='Velvet Lipstick'"):
        item_text(FULL, "{title:.2f}")


def test_item_texts_reads_a_catalog_in_row_order():
    items = pl.DataFrame(
        [
            {"item_id": "a", **FULL, "image_url": None},
            {"item_id": "b", **EMPTY, "image_url": None},
            {"item_id": "c", **{**EMPTY, "title": "Tent Pole", "price": 9.0}, "image_url": None},
        ],
        schema=ITEM_SCHEMA,
    )
    assert item_texts(items) == [item_text(FULL), "", "Tent Pole. Price: 9.00."]
    assert ItemTemplate.parse(DEFAULT_TEMPLATE).fields == ["title", "brand", "categories", "price", "description"]
    with pytest.raises(ValueError, match="colour"):
        item_texts(items, "{title} {colour}")
