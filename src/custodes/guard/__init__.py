"""The AI gate: what stands between callers and a model.

:class:`Guard` checks prompts (admission) and outputs (validation) against the policy, records
every step in the ledger, holds high-risk outputs in the human :class:`ReviewQueue`, and
governs an ``openai`` client with one line (``client = guard.wrap(client)``). The guard's own
verdict is :class:`custodes.guard.pipeline.Verdict`; ``Verdict`` here is a reviewer's.
"""

from custodes.guard.explain import Explanation, ExplanationNotFound
from custodes.guard.pipeline import Action, Caller, Guard, GuardViolation
from custodes.guard.review import (
    DEFAULT_REVIEW_WINDOW,
    AlreadyDecided,
    ItemExpired,
    ReviewItem,
    ReviewItemNotFound,
    ReviewPage,
    ReviewQueue,
    ReviewState,
    ReviewTimeout,
    Verdict,
)
from custodes.guard.review_sql import ReviewStoreError
from custodes.guard.stream import StreamCheck

__all__ = [
    "DEFAULT_REVIEW_WINDOW",
    "Action",
    "AlreadyDecided",
    "Caller",
    "Explanation",
    "ExplanationNotFound",
    "Guard",
    "GuardViolation",
    "ItemExpired",
    "ReviewItem",
    "ReviewItemNotFound",
    "ReviewPage",
    "ReviewQueue",
    "ReviewState",
    "ReviewStoreError",
    "ReviewTimeout",
    "StreamCheck",
    "Verdict",
]
