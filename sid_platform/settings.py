"""One place for paths and the environment.

Run-config presets (profiles) live in ``sid_platform/profiles.py``; quality thresholds in ``policy.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SID_DATA_DIR"
HOME_ENV = "SID_HOME"
PROFILE_ENV = "SID_PROFILE"


def data_home() -> Path:
    """Where the platform writes what it produces (asset files, quarantine, reports, MLflow store)."""
    return Path(os.environ.get(HOME_ENV, Path.cwd() / ".sid_home")).absolute()


def resolve_data_dir(configured: str | None = None) -> Path | None:
    """Config wins over ``SID_DATA_DIR``; ``None`` means no data directory was given at all."""
    value = configured or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser().absolute() if value else None
