"""One place for paths and profiles.

Profiles name run-config presets: ``test`` (seconds, synthetic data), ``default`` (Amazon Beauty on
2 cores, minutes) and ``full`` (longer training, a GPU when one is lent). The Dagster assets take their
knobs from Dagster ``Config`` classes whose defaults are the ``default`` profile; the other profiles
are expressed as run-config overrides produced here, so every knob lives in exactly one class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "SID_DATA_DIR"
HOME_ENV = "SID_HOME"
PROFILE_ENV = "SID_PROFILE"

PROFILES = ("test", "default", "full")


def data_home() -> Path:
    """Where the platform writes what it produces (asset files, quarantine, reports, MLflow store)."""
    return Path(os.environ.get(HOME_ENV, Path.cwd() / ".sid_home")).absolute()


def resolve_data_dir(configured: str | None = None) -> Path | None:
    """Config wins over ``SID_DATA_DIR``; ``None`` means no data directory was given at all."""
    value = configured or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser().absolute() if value else None


def profile_run_config(profile: str) -> dict[str, Any]:
    """Run-config overrides (``ops`` section) for a profile; ``default`` overrides nothing."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if profile == "default":
        return {}
    if profile == "test":
        return {
            "sasrec_model": {
                "config": {
                    "hidden_dim": 32,
                    "max_len": 10,
                    "dropout": 0.1,
                    "lr": 0.005,
                    "epochs": 40,
                    "patience": 8,
                    "batch_size": 64,
                    "num_negatives": 0,
                }
            },
            "codebooks": {"config": {"levels": 3, "codebook_size": 16, "epochs": 30, "batch_size": 128}},
            "router_checkpoint": {
                "config": {
                    "hidden_dim": 32,
                    "num_layers": 1,
                    "num_heads": 2,
                    "max_len": 10,
                    "dropout": 0.1,
                    "lr": 0.005,
                    "epochs": 25,
                    "patience": 6,
                    "batch_size": 64,
                    "num_negatives": 0,
                    "n_prefixes": 4,
                }
            },
            "faiss_index": {"config": {"top_n": 30}},
            "dpo_checkpoint": {"config": {"pool_size": 20, "epochs": 5}},
        }
    # full: longer schedules (a GPU when one is lent); same code, more patience.
    return {
        "sasrec_model": {"config": {"epochs": 200, "patience": 10}},
        "router_checkpoint": {
            "config": {
                "hidden_dim": 256,
                "num_layers": 4,
                "num_heads": 8,
                "epochs": 200,
                "patience": 8,
                "max_minutes": 240.0,
            }
        },
    }
