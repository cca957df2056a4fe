"""Documents for testing a JSON Schema against a validator (the subset of draft 2020-12 our
schemas use): hypothesis strategies for the documents the schema allows and for near misses
(such documents with one part changed), and deterministic probes on both sides of every limit.

Every keyword the generator meets must be one it knows, so a schema that grows a new keyword
fails loudly here instead of being tested against documents that ignore it.
"""

from __future__ import annotations

import math
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
    sizes = st.integers(lo, max(lo, min(hi, 12))) | st.sampled_from([max(lo, hi - 1), hi])
    return sizes.flatmap(lambda n: st.text(chars, min_size=n, max_size=n))


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
    lo, hi = schema.get("minItems", 0), min(schema.get("maxItems", 6), 6)
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


# --- boundary probes -----------------------------------------------------------------------


def minimal(schema: dict[str, Any]) -> Any:
    """The smallest document the schema allows: required members only, least values."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return minimal(schema["oneOf"][0])
    kind = schema["type"]
    if kind == "object":
        props = schema.get("properties", {})
        return {key: minimal(props[key]) for key in schema.get("required", ())}
    if kind == "array":
        # The least item must satisfy "contains" too (checked by the caller's validity check).
        return [minimal(schema["items"])] * max(schema.get("minItems", 0),
                                                 schema.get("minContains", 0))
    if kind == "string":
        return "a" * schema.get("minLength", 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    return False


def probes(schema: dict[str, Any], where: str = "") -> list[tuple[str, Any]]:
    """Documents on both sides of every limit the schema sets, one limit at a time: each is the
    least document with one value changed (to null, to either side of a bound, to another
    choice), one member left out or added, or one list shortened, lengthened or repeated."""
    out: list[tuple[str, Any]] = [(f"{where} null", None)]
    if "const" in schema:
        return [*out, (where, schema["const"]), (f"{where} other", "?")]
    if "enum" in schema:
        values = schema["enum"]
        others = ["?"] if isinstance(values[0], str) else [values[0] - 1, values[-1] + 1,
                                                           float(values[0]), True]
        return [*out, *((f"{where}={v!r}", v) for v in [*values, *others])]
    if "oneOf" in schema:
        return [*out, *(p for branch in schema["oneOf"] for p in probes(branch, where))]
    kind = schema["type"]
    if kind == "object":
        return out + _object_probes(schema, where)
    if kind == "array":
        return out + _array_probes(schema, where)
    if kind == "string":
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 50)
        values = ["a" * lo, "a" * hi, "a" * (hi + 1), "\U00020bb7" * hi, 1]
        values += ["a" * (lo - 1)] if lo > 0 else []
        values += [f"a{c}" for c in [*_CONTROLS, "\u2028", "\ufeff"]]
        return out + [(f"{where}={v!r}", v) for v in values]
    if kind in ("integer", "number"):
        lo, hi = schema["minimum"], schema["maximum"]
        values: list[Any] = [lo, hi, lo - 1, hi + 1, float(lo), True, str(lo)]
        if kind == "integer":
            values += [lo + 0.5]
        else:
            values += [math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)]
        return out + [(f"{where}={v!r}", v) for v in values]
    return out + [(f"{where}={v!r}", v) for v in (True, False, 0)]


def _object_probes(schema: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    base, props = minimal(schema), schema.get("properties", {})
    out = [(f"{where} least", base), (f"{where} +unknown", {**base, "zz": 1}), (where, [])]
    for key, sub in props.items():
        out += [(label, {**base, key: value}) for label, value in probes(sub, f"{where}.{key}")]
    out += [(f"{where} -{key}", {k: v for k, v in base.items() if k != key})
            for key in schema.get("required", ())]
    for key, needs in schema.get("dependentRequired", {}).items():
        out.append((f"{where} {key} without {needs}",
                    {**{k: v for k, v in base.items() if k not in needs},
                     key: minimal(props[key])}))
    return out


def _array_probes(schema: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    base, item = minimal(schema), minimal(schema["items"])
    out = [(label, [value, *base[1:]]) for label, value in probes(schema["items"], f"{where}[0]")]
    lo, hi = schema.get("minItems", 0), schema.get("maxItems", 50)
    out += [(f"{where} x{n}", [item] * n) for n in (lo - 1, hi, hi + 1, 2) if n >= 0]
    out += [(f"{where} as object", {})]
    return out


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
