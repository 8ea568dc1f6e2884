"""The evaluation setting, one resource shared by early stopping and the final table."""

from dagster import ConfigurableResource
from pydantic import Field

from sid_platform.policy import POLICY


class EvaluationProtocol(ConfigurableResource):
    """The evaluation setting shared by early stopping and the final table, so every figure uses the same one.

    ``exclude_history``: drop items already in the user's history from the ranking. Off by default,
    as in the published anchors (TIGER, ActionPiece); no item repeats within an Amazon 5-core sequence.
    """

    exclude_history: bool = False
    ks: list[int] = Field(default_factory=lambda: list(POLICY.ks), description="the K of Recall@K and NDCG@K")
