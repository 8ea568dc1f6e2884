"""Beauty's leave-one-out sequences from ``SID_DATA_DIR``: what the training benchmarks read outside Dagster."""

from __future__ import annotations

from sid_platform.data.p5 import load_p5
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.settings import resolve_data_dir


def beauty_sequences() -> tuple[UserSequences, int]:
    """The sequences and the interaction count; exits with a message when ``SID_DATA_DIR`` is not set."""
    data_dir = resolve_data_dir()
    if data_dir is None:
        raise SystemExit("set SID_DATA_DIR to the shared data folder")
    loaded = load_p5(data_dir, "beauty")
    vocab = ItemVocab.from_catalog(loaded.items)
    return UserSequences.from_splits(leave_one_out(loaded.interactions), vocab), len(loaded.interactions)
