"""New catalog items into the registry: the champion's bundle extended (``serving/cold_start.py``), registered
as a new version and made champion, so the HTTP service serves the new items at its next poll.

Why a new version rather than an edit: a registered version is immutable and hash-pinned, and the service reloads
when the alias moves, so one alias move swaps in the extended catalog atomically (and a rollback takes it back).
Nothing is retrained, so the gate's figures are the source version's: the extended version carries them, with a
``cold_start`` section in its ``config.json`` saying which version it extends and what it added.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sid_platform.progress import LogLine
from sid_platform.registry.bundle import download_version, load_bundle, log_bundle
from sid_platform.registry.promotion import champion, existing_version, set_champion
from sid_platform.registry.tracking import Tracking
from sid_platform.serving.cold_start import ColdStartReport, add_items

SOURCE_TAG = "cold_start_from"  # on the new version: the version it extends


@dataclass(frozen=True)
class ColdStartRelease:
    source_version: int
    version: int | None  # the registered extension; None when nothing was new
    promoted: bool
    report: ColdStartReport
    serving: str = ""  # the ranking the version serves (the source's: the evaluation chose it)

    @property
    def recommendable(self) -> bool:
        """Whether the served ranking can return the new items: the router's can; SASRec's once they borrowed its
        item vectors (it has no other vector for an item it never saw). Either way they are searchable and
        explained by their Semantic IDs."""
        return self.serving.startswith("router_") or (
            self.serving == "sasrec" and "sasrec_model" in self.report.borrowed
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_version": self.source_version,
            "version": self.version,
            "promoted": self.promoted,
            "serving": self.serving,
            "recommendable": self.recommendable,
            **{k: v for k, v in self.report.as_dict().items() if k != "sids"},
        }


def register_new_items(
    tracking: Tracking,
    registered_model: str,
    items: pl.DataFrame,
    *,
    from_version: int | None = None,
    promote: bool = True,
    on_progress: LogLine | None = None,
) -> ColdStartRelease:
    """Extend ``from_version`` (default: the champion) with ``items`` and register the result.

    With ``promote`` the new version becomes champion when it extends the champion (never over a newer champion
    chosen meanwhile by the gate). Items the version already has are skipped; with none left, nothing is
    registered.
    """
    client = tracking.client
    current = champion(client, registered_model)
    if from_version is None and current is None:
        raise ValueError(f"{registered_model!r} has no champion to add items to; name a version")
    source = existing_version(client, registered_model, from_version) if from_version is not None else current
    assert source is not None
    with tempfile.TemporaryDirectory(prefix="sid-cold-start-") as folder:
        bundle = load_bundle(download_version(tracking, source, Path(folder)))
        run_config = bundle.config.get("resolved_run_config", {})
        embedding_config = run_config.get("ops", {}).get("item_embeddings", {}).get("config", {})
        components, report = add_items(
            bundle.components, items, embedding_config=embedding_config, on_progress=on_progress
        )
        if not report.added:
            return ColdStartRelease(int(source.version), None, False, report, bundle.serving)
        pinned = {key: value for key, value in bundle.config.items() if key not in ("components", "packages")}
        pinned["cold_start"] = {"source_version": int(source.version), **report.as_dict()}
        tags = {SOURCE_TAG: str(source.version), "cold_start_items": str(len(report.added))}
        version = log_bundle(tracking, registered_model, components, pinned, run_name="cold_start", tags=tags)
    latest = champion(client, registered_model)  # read again: the gate may have moved it while we worked
    promoted = promote and latest is not None and latest.version == source.version
    if promoted:
        note = f"cold start: {len(report.added)} new items added to v{source.version}, nothing retrained"
        set_champion(client, registered_model, int(version.version), note)
    return ColdStartRelease(int(source.version), int(version.version), promoted, report, bundle.serving)
