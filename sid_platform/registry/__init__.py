"""MLflow tracking, the servable bundle, the promotion gate and rollback; plain Python, no Dagster."""

from sid_platform.registry.bundle import (
    ServableRecommender,
    download_version,
    frame_fingerprint,
    log_bundle,
    pinned_config,
)
from sid_platform.registry.promotion import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Candidate,
    Decision,
    GatePolicy,
    alias_version,
    champion,
    champion_history,
    decide,
    gate,
    rollback,
    set_champion,
)
from sid_platform.registry.tracking import Tracking, log_run, metric_key, png_from_markdown, resolve_tracking_uri

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "Candidate",
    "Decision",
    "GatePolicy",
    "ServableRecommender",
    "Tracking",
    "alias_version",
    "champion",
    "champion_history",
    "decide",
    "download_version",
    "frame_fingerprint",
    "gate",
    "log_bundle",
    "log_run",
    "metric_key",
    "pinned_config",
    "png_from_markdown",
    "resolve_tracking_uri",
    "rollback",
    "set_champion",
]
