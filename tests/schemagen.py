"""Hypothesis strategies for the documents a JSON Schema allows (the subset of draft 2020-12 our
schemas use), and for near misses: such documents with one part changed.

Every keyword the generator meets must be one it knows, so a schema that grows a new keyword
fails loudly here instead of being tested against documents that ignore it.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from hypothesis import strategies as st

KNOWN = {
    "$schema", "$comment", "title", "description", "type", "properties", "required",
    "additionalProperties", "dependentRequired", "items", "minItems", "maxItems", "uniqueItems",
    "contains", "minContains", "maxContains", "enum", "const", "oneOf", "minLength", "maxLength",
    "not", "minimum", "maximum",
}
Path = tuple[str | int, ...]


def documents(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Documents valid under the schema."""
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError(f"schemagen does not know {sorted(unknown)}")
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "oneOf" in schema:
        branches = [jsonschema.Draft202012Validator(s) for s in schema["oneOf"]]
        return st.one_of([documents(s) for s in schema["oneOf"]]).filter(
            lambda doc: sum(b.is_valid(doc) for b in branches) == 1)
    kind = schema["type"]
    if kind == "object":
        return _object(schema)
    if kind == "array":
        return _array(schema)
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False,
                         allow_infinity=False) | st.integers(
            int(schema.get("minimum", -1e9)), int(schema.get("maximum", 1e9)))
    if kind == "boolean":
        return st.booleans()
    raise ValueError(f"schemagen does not know type {kind}")


_CONTROLS = [chr(i) for i in (*range(0x20), *range(0x7F, 0xA0))]


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    chars: st.SearchStrategy[str] = st.characters(exclude_categories=("Cs",))
    forbidden = schema.get("not", {}).get("pattern")
    if forbidden is not None:  # a class of control characters: leave those out
        chars = st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(
            [c for c in _CONTROLS if re.search(forbidden, c) is None] or ["a"])
    lo, hi = schema.get("minLength", 0), schema.get("maxLength", 20)
    short = st.text(chars, min_size=lo, max_size=max(lo, min(hi, 12)))
    return short | st.text(chars, min_size=hi, max_size=hi)


def _object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    props = {key: documents(sub) for key, sub in schema.get("properties", {}).items()}
    order = list(props)
    required = set(schema.get("required", ()))
    pairs = schema.get("dependentRequired", {})

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        keys = [k for k in order if k in required or draw(st.booleans())]
        for key in list(keys):
            keys += [needed for needed in pairs.get(key, ()) if needed not in keys]
        return {key: draw(props[key]) for key in sorted(keys, key=order.index)}

    return build()


def _array(schema: dict[str, Any]) -> st.SearchStrategy[list[Any]]:
    item = documents(schema["items"])
    lo, hi = schema.get("minItems", 0), min(schema.get("maxItems", 4), 4)
    if "contains" not in schema:
        return st.lists(item, min_size=lo, max_size=hi, unique=schema.get("uniqueItems", False))
    contains = jsonschema.Draft202012Validator(schema["contains"])
    matching = item.filter(contains.is_valid)
    other = item.filter(lambda d: not contains.is_valid(d))
    counts = st.integers(schema.get("minContains", 1), min(schema.get("maxContains", hi), hi))

    @st.composite
    def build(draw: st.DrawFn) -> list[Any]:
        wanted = draw(counts)
        rest = draw(st.lists(other, min_size=max(lo - wanted, 0), max_size=hi - wanted))
        return draw(st.permutations([draw(matching) for _ in range(wanted)] + rest))

    return build()


# --- near misses ----------------------------------------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0, 1, 2, 3, 3.0, 4, 5, 6,
                                                                      -91, 181, 1441, 201]),
    st.text(max_size=3), st.sampled_from(["home", "stay", "shelter", "flood", "3-5", "75+",
                                          "", "x" * 101, "a\x00", "a\nb", "a\x01"]),
    st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.sampled_from(["kind", "x"]),
                                                             st.integers(0, 3), max_size=2),
)


def _paths(doc: Any, here: Path = ()) -> list[Path]:
    out = [here]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*here, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*here, i))
    return out


def _set(doc: Any, path: Path, change: tuple[str, Any]) -> Any:
    if not path:
        return change[1] if change[0] == "replace" else doc
    head, rest = path[0], path[1:]
    copy: Any = dict(doc) if isinstance(doc, dict) else list(doc)
    if rest or change[0] == "replace":
        copy[head] = _set(doc[head], rest, change)
    elif change[0] == "delete":
        del copy[head]
    return copy


@st.composite
def near_misses(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> tuple[Any, Path]:
    """A valid document with one part replaced, deleted or one member added; and where."""
    doc = draw(valid)
    path = draw(st.sampled_from(_paths(doc)))
    what = draw(st.sampled_from(["replace", "delete", "add"]))
    if what == "add":
        target = doc
        for step in path:
            target = target[step]
        if isinstance(target, dict):
            key = draw(st.sampled_from(["kind", "lat", "floor", "minutes", "extra", "3", "flood"]))
            added = draw(JUNK)
            return _set(doc, path, ("replace", {**target, key: added})), (*path, key)
        what = "replace"
    if what == "delete" and path:
        return _set(doc, path, ("delete", None)), path
    return _set(doc, path, ("replace", draw(JUNK))), path
