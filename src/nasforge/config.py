"""params.yaml: load it, check it against its schema and fill the schema's defaults, before anything runs.

jsonschema finds the problems; this module words them for a person: the file,
the key path, what is wrong and what is allowed. A key left out takes the
``default`` its schema entry states, filled here once, so rules and code read
``params["train"]["threads"]`` and never repeat a default of their own.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from nasforge.errors import InputError

DEFAULT_SCHEMA = Path("workflow/schemas/params.schema.yaml")


class ParamsError(InputError):
    """params.yaml does not match its schema; the message names the key and the fix."""


def load_params(path: Path | str = "params.yaml", schema: Path | str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found; copy params.yaml from the repository root")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from err
    check_params(params, schema or _schema_beside(path), str(path))
    return params


def _schema_beside(params_path: Path) -> Path:
    candidate = params_path.resolve().parent / DEFAULT_SCHEMA
    return candidate if candidate.is_file() else DEFAULT_SCHEMA


def check_params(params: dict[str, Any], schema: Path | str, source: str = "params.yaml", partial: bool = False) -> None:
    """Raise ParamsError listing every problem in ``params``: what the schema says, then what
    needs the search space to judge (include strings, sample and shard counts). Then fill, in
    place, every default the schema states for a key ``params`` leaves out.

    ``partial``: ``params`` is part of a configuration (as rules pass it with
    ``--params-json``), so keys may be absent, but every value present is checked."""
    spec = yaml.safe_load(Path(schema).read_text())
    _check(params, spec, schema, source, partial)
    fill_defaults(params, spec)


def fill_defaults(params: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each absent key that has a schema ``default`` set to it, at every level of
    the objects present (a section with no default of its own, left out of a partial configuration,
    stays out)."""
    for key, entry in spec.get("properties", {}).items():
        if key not in params and "default" in entry:
            params[key] = copy.deepcopy(entry["default"])
        if isinstance(params.get(key), dict) and entry.get("type") == "object":
            fill_defaults(params[key], entry)
    return params


def _check(params: dict[str, Any], spec: dict[str, Any], schema: Path | str, source: str, partial: bool) -> None:
    if partial:
        spec = _without_required(spec)
    validator = jsonschema.Draft202012Validator(spec)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_explain(e) for e in errors] if errors else _semantic_problems(params)
    if problems:
        lines = [f"{source} does not match {schema}:"] + [f"  - {p}" for p in problems]
        raise ParamsError("\n".join(lines))


def _without_required(spec: Any) -> Any:
    """The schema with no key required anywhere: every value present is still checked."""
    if isinstance(spec, dict):
        return {k: _without_required(v) for k, v in spec.items() if k != "required"}
    if isinstance(spec, list):
        return [_without_required(v) for v in spec]
    return spec


def _semantic_problems(params: dict[str, Any]) -> list[str]:
    """What JSON Schema cannot say: the plan must fit its space."""
    if "space" not in params or not {"archs", "shards"} <= set(params.get("plan", {})):
        return []
    from nasforge.spaces import get_space

    space, plan, problems = get_space(params["space"]), params["plan"], []
    include = plan.get("include") or []
    for k, arch in enumerate(include):
        try:
            space.index(arch)
        except ValueError as err:
            problems.append(f"plan.include.{k}: {arch!r} is not an arch of the {params['space']} space ({err})")
    archs = len(space) if plan["archs"] == "all" else plan["archs"]
    if archs > len(space):
        problems.append(f"plan.archs: {archs} is more than the {len(space)} archs of the {params['space']} space")
    if len(set(include)) > archs:
        problems.append(f"plan.archs: {archs} cannot hold the {len(set(include))} archs of plan.include; "
                        f"raise plan.archs or include fewer")
    if plan["shards"] > min(archs, len(space)):
        problems.append(f"plan.shards: {plan['shards']} shards for {archs} archs would leave shards empty; "
                        f"use at most {min(archs, len(space))}")
    return problems


def _explain(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{key}: unknown key(s) {extra}; allowed keys are {allowed}"
    if error.validator == "required":
        return f"{key}: {error.message}; see workflow/schemas/params.schema.yaml"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not allowed; allowed values are {schema['enum']}"
    if error.validator == "oneOf":
        options = [o.get("const", o.get("type")) for o in schema.get("oneOf", [])]
        return f"{key}: {error.instance!r} is not allowed; expected one of {options}"
    hint = f" ({schema['description']})" if "description" in schema else ""
    return f"{key}: {error.message}{hint}"
