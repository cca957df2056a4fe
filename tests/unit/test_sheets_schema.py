"""sheets.schema: the published JSON Schema and the validator agree on what a sheet is."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings

from sheets import schema, validate
from sheets.errors import SheetInvalid
from tests import schemagen

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SCHEMA = schema.sheet_schema()
CHECKER = jsonschema.Draft202012Validator(SCHEMA)
SHEETS = schemagen.documents(SCHEMA)
# The validator's reasons for the rules the schema cannot state (schema.UNEXPRESSED).
UNEXPRESSED_REASONS = ("must not be above floors", "must not be above the home's floors",
                       "must not contain lone surrogates")


def reasons(document: Any) -> list[tuple[str, str]] | None:
    """The validator's errors, or None when it accepts the document."""
    try:
        validate.parse(document)
    except SheetInvalid as invalid:
        return [(f.path, f.reason) for f in invalid.fields]
    return None


def path_string(steps: tuple[str | int, ...]) -> str:
    """The validator's path syntax for a list of keys and indexes."""
    path = ""
    for step in steps:
        path = f"{path}[{step}]" if isinstance(step, int) else validate.key_path(path, step)
    return path


def unexpressed_only(errors: list[tuple[str, str]]) -> bool:
    return all(reason.startswith(UNEXPRESSED_REASONS) for _, reason in errors)


def test_schema_is_a_valid_2020_12_schema() -> None:
    """The schema itself passes the draft 2020-12 metaschema, and is plain JSON."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA
    jsonschema.Draft202012Validator.check_schema(schema.advice_schema())


def test_schema_names_exactly_the_validators_fields() -> None:
    """The top-level properties are the validator's fields, and the required ones match."""
    assert tuple(SCHEMA["properties"]) == validate.SHEET_FIELDS
    assert SCHEMA["required"] == ["name", "places"]
    assert SCHEMA["additionalProperties"] is False


@SETTINGS
@given(SHEETS)
def test_what_the_schema_allows_the_validator_accepts(document: Any) -> None:
    """A document generated from the schema is accepted and written back unchanged, unless
    the only complaints are rules the schema cannot state."""
    assert CHECKER.is_valid(document)
    errors = reasons(document)
    if errors is not None:
        assert unexpressed_only(errors), errors
        return
    assert validate.parse(document).as_json() == document


def test_schema_and_validator_agree_on_both_sides_of_every_limit() -> None:
    """Every limit the schema sets, probed one at a time from the least sheet (each bound and
    one past it, each choice and one more, each member left out, unknown members, list sizes,
    every control character), gets the same verdict from the validator."""
    assert CHECKER.is_valid(schemagen.minimal(SCHEMA))
    verdicts = []
    disagreements = []
    for label, document in schemagen.probes(SCHEMA):
        errors = reasons(document)
        verdicts.append(errors is None)
        if errors is not None and unexpressed_only(errors):
            continue
        if (errors is None) != CHECKER.is_valid(document):
            disagreements.append((label, errors))
    assert disagreements == []
    assert verdicts.count(True) > 100 and verdicts.count(False) > 300


@SETTINGS
@given(schemagen.near_misses(SHEETS))
def test_schema_and_validator_agree_on_near_misses(miss: tuple[Any, tuple[str | int, ...]]
                                                   ) -> None:
    """A valid document with one part changed is valid for both or for neither (bar the rules
    the schema cannot state), and a refusal names a field at or near the change."""
    document, changed = miss
    errors = reasons(document)
    schema_ok = CHECKER.is_valid(document)
    if errors is None:
        assert schema_ok, list(CHECKER.iter_errors(document))
        return
    if unexpressed_only(errors):
        return
    assert not schema_ok, errors
    parent = path_string(changed[:-1])
    assert any(path.startswith(parent) or parent.startswith(path) for path, _ in errors), (
        changed, errors)


def test_unexpressed_rules_are_the_validators_alone() -> None:
    """A floor above the storeys, or a lone surrogate, passes the schema but not the validator,
    as schema.UNEXPRESSED says."""
    home = {"kind": "home", "lat": 1, "lon": 1, "floors": 2}
    documents = [
        {"name": "家", "places": [{**home, "floor": 3}]},
        {"name": "家", "places": [home], "destinations": [{"kind": "stay", "floor": 3}]},
        {"name": "\ud800", "places": [home]},
    ]
    assert [CHECKER.is_valid(d) for d in documents] == [True, True, True]
    assert [reasons(d) for d in documents] == [
        [("places[0].floor", "must not be above floors (2)")],
        [("destinations[0].floor", "must not be above the home's floors (2)")],
        [("name", "must not contain lone surrogates")],
    ]
    assert len(schema.UNEXPRESSED) == len(UNEXPRESSED_REASONS)
