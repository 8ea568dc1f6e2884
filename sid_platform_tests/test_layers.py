"""Layers that cannot rot: the import-linter contracts hold, nothing imports in a cycle, every package is placed
in a layer, only ``settings.py`` reads the environment, and nothing unpickles."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from sid_platform_tests.import_graph import ROOT, report

REPO = ROOT.parent
# The Dagster side of the code; everything else in sid_platform is core and must be in the core contract.
DAGSTER_LAYER = {"assets", "automation", "definitions", "resources", "cli"}


def _contract(contract_id: str) -> dict:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's code, not an installed copy
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_cycles_even_through_function_level_imports():
    assert {title: found for title, found in report().items() if found} == {}


def test_every_core_package_is_in_the_core_contract():
    listed = {name.removeprefix("sid_platform.").removesuffix(".**") for name in _contract("core")["source_modules"]}
    children = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if _is_module(p)}
    assert children - DAGSTER_LAYER - {"__init__"} <= listed, "a new core module: add it to the 'core' contract"


def test_only_settings_reads_the_environment():
    readers = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "settings.py" and path.parent == ROOT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                readers.append(f"{path.relative_to(REPO)}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                readers += [f"{path.relative_to(REPO)}:{node.lineno}" for a in node.names if "env" in a.name]
    assert readers == [], "read the environment through sid_platform/settings.py (or dagster.EnvVar)"


def test_nothing_stored_is_unpickled():
    """No code path deserializes with pickle: stored values go through sid_platform/artifacts.py's codecs."""
    forbidden = ("pickle.load", "pickle.loads", "weights_only=False", "allow_pickle=True", "joblib.load")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for folder in (ROOT, REPO / "benchmarks")
        for path in sorted(folder.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(word in line for word in forbidden)
    ]
    assert found == [], "stored values are read through sid_platform/artifacts.py, never unpickled"


def _is_module(path: Path) -> bool:
    return (path.is_file() and path.suffix == ".py") or (path.is_dir() and (path / "__init__.py").is_file())
