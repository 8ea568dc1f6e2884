"""Run configs from files: read, layer over a profile, check against the job's schema, cut to a selection.

``sid-platform run --config FILE.yaml`` takes the YAML the Dagster launchpad takes. Everything here
happens before a run starts, so a mistyped key or a missing file stops the command with one line per
problem naming the key (``ops.codebooks.config.codebok_size``) instead of a traceback mid-run.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster import AssetKey, DagsterInvalidConfigError, Definitions, JobDefinition, validate_run_config

from sid_platform.profiles import profile as profile_of
from sid_platform.profiles import run_config as profile_run_config

# Sections of a run config a user edits; Dagster's execution and loggers sections are left to the runner.
EDITABLE_SECTIONS = ("ops", "resources")


class RunConfigError(ValueError):
    """A run config that cannot be run: one line per problem, each naming its key or file."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def load_run_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file is an empty config)."""
    if not path.is_file():
        raise RunConfigError([f"{path}: no such file"])
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RunConfigError([f"{path}: not valid YAML{where}: {problem}"]) from error
    except (OSError, UnicodeDecodeError) as error:
        raise RunConfigError([f"{path}: cannot read: {error}"]) from error
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise RunConfigError([f"{path}: expected a mapping (ops:, resources:), got {type(loaded).__name__}"])
    return loaded


def parse_override(text: str) -> tuple[list[str], Any]:
    """``KEY.PATH=VALUE`` (the value read as YAML, so ``5``, ``true`` and ``[a, b]`` keep their types)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise RunConfigError([f"--set {text!r}: expected KEY.PATH=VALUE, e.g. resources.dataset.config.data_dir=/data"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise RunConfigError([f"--set {text!r}: the value is not valid YAML"]) from error
    return key.strip().split("."), value


def with_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``config`` with each ``KEY.PATH=VALUE`` set, creating the mappings on the way."""
    result = copy.deepcopy(dict(config))
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RunConfigError([f"--set {text!r}: {'.'.join(path[: i + 1])} is not a mapping"])
            node = child
        node[path[-1]] = value
    return result


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` layered over ``base``: mappings merge key by key, anything else (lists too) replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_selection(definitions: Definitions, assets: Iterable[str]) -> tuple[list[str], set[str]]:
    """The assets a run of ``assets`` builds and the ops it executes.

    An op that cannot build part of its assets (``ingest`` builds raw_interactions, item_catalog and
    quarantined_rows together) brings its other assets along, as Dagster requires. The ops are those
    computing the assets and those of their asset checks: check ops are named ``<asset>_<check>``
    (``raw_interactions_raw_interactions_expectations``), so config cannot be cut by asset name.
    """
    wanted = {AssetKey(name) for name in assets}
    known = {key for assets_def in definitions.assets or () for key in getattr(assets_def, "keys", ())}
    unknown = sorted(key.to_user_string() for key in wanted - known)
    if unknown:
        names = ", ".join(sorted(key.to_user_string() for key in known))
        raise RunConfigError([f"--select: unknown asset(s) {', '.join(unknown)}; the graph has: {names}"])
    nodes, built = set(), set(wanted)
    for assets_def in definitions.assets or ():
        keys = set(getattr(assets_def, "keys", ()))
        if keys & wanted:
            nodes.add(assets_def.node_def.name)
            if not assets_def.can_subset:
                built |= keys
    for checks_def in definitions.asset_checks or ():
        if {key.asset_key for key in checks_def.check_keys} & built:
            nodes.add(checks_def.node_def.name)
    return sorted(key.to_user_string() for key in built), nodes


def for_selection(config: Mapping[str, Any], nodes: set[str]) -> dict[str, Any]:
    """``config`` without the ``ops`` entries of ops outside the selection (Dagster rejects those)."""
    result = copy.deepcopy(dict(config))
    if "ops" in result and isinstance(result["ops"], Mapping):
        result["ops"] = {name: value for name, value in result["ops"].items() if name in nodes}
    return result


def validated(job: JobDefinition, config: Mapping[str, Any]) -> dict[str, Any]:
    """Dagster's resolved config (defaults filled in), or ``RunConfigError`` with one readable line per problem."""
    try:
        return dict(validate_run_config(job, dict(config)))
    except DagsterInvalidConfigError as error:
        raise RunConfigError(describe(error, job)) from error


def describe(error: DagsterInvalidConfigError, job: JobDefinition) -> list[str]:
    """``ops.codebooks.config.codebok_size: unknown key; did you mean codebook_size? ...``, per error."""
    problems = []
    for item in error.errors:
        path = _path(getattr(getattr(item, "stack", None), "entries", ()))
        reason = getattr(getattr(item, "reason", None), "value", "")
        data = getattr(item, "error_data", None)
        if reason == "FIELD_NOT_DEFINED":
            name = str(getattr(data, "field_name", "?"))
            problems.append(f"{_join(path, name)}: unknown key{_suggestion(name, _keys_at(job, path))}")
        elif reason == "FIELDS_NOT_DEFINED":
            known = _keys_at(job, path)
            for name in getattr(data, "field_names", ()):
                problems.append(f"{_join(path, str(name))}: unknown key{_suggestion(str(name), known)}")
        elif reason in ("MISSING_REQUIRED_FIELD", "MISSING_REQUIRED_FIELDS"):
            names = getattr(data, "field_names", None) or [getattr(data, "field_name", "?")]
            problems.extend(f"{_join(path, str(name))}: required, but missing" for name in names)
        elif reason == "RUNTIME_TYPE_MISMATCH":
            problems.append(f"{'.'.join(path) or '(top level)'}: {_mismatch(item.message, data)}")
        else:
            problems.append(f"{'.'.join(path) or '(top level)'}: {_short(item.message)}")
    return problems or [_short(str(error))]


def _path(entries: Iterable[object]) -> list[str]:
    parts: list[str] = []
    for entry in entries:
        if (name := getattr(entry, "field_name", None)) is not None:
            parts.append(str(name))
        elif (index := getattr(entry, "list_index", None)) is not None:
            parts[-1:] = [f"{parts[-1] if parts else ''}[{index}]"]
        elif (key := getattr(entry, "map_key", None)) is not None:
            parts.append(str(key))
    return parts


def _join(path: list[str], name: str) -> str:
    return ".".join([*path, name])


def _keys_at(job: JobDefinition, path: list[str]) -> list[str]:
    """The keys the job's config schema allows at ``path`` (empty where the schema cannot be walked)."""
    config_type = job.run_config_schema.config_type
    for part in path:
        fields = getattr(config_type, "fields", None)
        if not isinstance(fields, Mapping) or part not in fields:
            return []
        config_type = fields[part].config_type
        config_type = getattr(config_type, "inner_type", config_type)  # optional wrappers
    fields = getattr(config_type, "fields", None)
    return sorted(fields) if isinstance(fields, Mapping) else []


def _suggestion(name: str, known: list[str]) -> str:
    if not known:
        return ""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = ", ".join(known) if len(known) <= 25 else ", ".join(known[:25]) + ", ..."
    return f"{hint} expected one of: {listed}"


def _mismatch(message: str, data: object) -> str:
    snap = getattr(data, "config_type_snap", None)
    enum_values = [getattr(v, "value", v) for v in getattr(snap, "enum_values", None) or ()]
    given = getattr(data, "value_rep", None)
    if enum_values:
        return f"expected one of {', '.join(map(str, enum_values))}, got {given}"
    expected = getattr(snap, "given_name", None) or getattr(snap, "key", None)
    if expected and given is not None:
        return f"expected {expected}, got {given}"
    return _short(message)


def _short(message: str) -> str:
    """Dagster's message without the schema it appends (``Expected: "{ ... }"`` can run for pages)."""
    return message.split(' Expected: "', 1)[0].strip().replace("\n", " ")


def full_run_config(job: JobDefinition, definitions: Definitions, profile: str) -> dict[str, Any]:
    """The run config of ``profile`` with every knob at its value: a starting point for a config file.

    Dagster's resolved config lacks fields whose defaults are lists or dicts (built by a factory); those
    come from the profile's dataclasses and the resources' own defaults.
    """
    resolved = validated(job, profile_run_config(profile))
    chosen = profile_of(profile)
    ops: dict[str, Any] = {}
    for name, node in sorted(resolved.get("ops", {}).items()):
        values = dict(node.get("config") or {}) if isinstance(node, Mapping) else {}
        core = getattr(chosen, name, None)
        if dataclasses.is_dataclass(core):
            values = {f.name: values.get(f.name, _plain(getattr(core, f.name))) for f in dataclasses.fields(core)}
        if values:
            ops[name] = {"config": values}
    resources: dict[str, Any] = {}
    for name, resource in sorted((definitions.resources or {}).items()):
        values = dict((resolved.get("resources", {}).get(name) or {}).get("config") or {})
        dump = getattr(resource, "model_dump", None)
        defaults = dump() if callable(dump) else {}
        values = {key: values.get(key, _plain(value)) for key, value in defaults.items()} | values
        if values:
            resources[name] = {"config": values}
    return {"ops": ops, "resources": resources}


def _plain(value: Any) -> Any:
    """Run-config form of a default: tuples become lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
