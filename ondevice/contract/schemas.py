"""The JSON Schemas of a bundle's files (manifest.json, policy.json, the apps' latency files) and their one validator.

The schemas ship in this package and are what the apps' parsers can rely on. Numbers must be finite
(the apps' JSON parsers refuse NaN and Infinity). A subschema may carry an ``errorMessage``: the rule,
in words, reported when a value breaks it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

__all__ = ["Violation", "check_version", "first_violation", "load_schema", "read_bundle_json"]

_TYPE_RULES = {
    "number": "must be a finite number",
    "integer": "must be an integer",
    "boolean": "must be true or false",
    "object": "must be an object",
    "array": "must be a list",
    "string": "must be a string",
}


def _finite_number(_checker: Any, value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _finite_number),
)


@dataclass(frozen=True)
class Violation:
    """The first rule a document breaks: where (``thermal.energy[2]``), the value found there, the rule in words,
    and the validator's own message (e.g. "'median_ms' is a required property")."""

    kind: str  # "missing" (a required key), "unknown" (a key the schema does not know) or "value"
    where: str
    value: Any
    rule: str
    message: str


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The shipped schema ``<name>.schema.json`` (manifest, policy, latency)."""
    return json.loads(resources.files(__package__).joinpath(f"{name}.schema.json").read_text())


def _where(path: Any, key: str | None = None) -> str:
    text = ""
    for part in [*path, *([key] if key is not None else [])]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _violation(error: ValidationError) -> Violation:
    schema = error.schema if isinstance(error.schema, dict) else {}
    path = error.absolute_path
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return Violation("missing", _where(path, missing), None, "every key is required", error.message)
    if error.validator == "additionalProperties":
        known = schema.get("properties", {})
        unknown = sorted(set(error.instance) - set(known))[0]
        rule = "known keys: " + ", ".join(_where(path, k) for k in sorted(known))
        return Violation("unknown", _where(path, unknown), error.instance[unknown], rule, error.message)
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else error.validator_value[0]
        rule = _TYPE_RULES.get(expected, error.message)
    else:
        rule = schema.get("errorMessage", error.message)
    return Violation("value", _where(path), error.instance, rule, error.message)


def read_bundle_json(path: str | Path, file_name: str, *, missing: str, error: type[ValueError]) -> tuple[Path, Any]:
    """(the file, its JSON) for ``path``, a bundle file or the bundle directory holding ``file_name``.

    ``missing``: how to create the file, said when it does not exist; an unreadable file or invalid JSON
    raises ``error`` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    if not path.is_file():
        raise FileNotFoundError(f"no {file_name} at {path}; {missing}")
    try:
        return path, json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path} cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise error(f"{path} is not valid JSON ({err})") from None


def check_version(
    document: Any, key: str, version: int, source: str, *, fix: str, error: type[ValueError]
) -> dict[str, Any]:
    """``document`` if it is a JSON object whose ``key`` is ``version``; else ``error`` saying what this ondevice
    reads and ``fix``, how to get a file it reads."""
    from .. import __version__

    if not isinstance(document, dict):
        raise error(f"{source}: expected a JSON object, got {type(document).__name__}")
    if document.get(key) != version:
        raise error(
            f"{source} has {key} {document.get(key)!r}; this ondevice ({__version__}) reads version {version}. {fix}"
        )
    return document


def first_violation(document: Any, name: str) -> Violation | None:
    """The first rule of schema ``name`` that ``document`` breaks, or None when it is valid."""
    error = best_match(_Validator(load_schema(name)).iter_errors(document))
    return None if error is None else _violation(error)
