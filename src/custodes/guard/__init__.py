"""The AI gate: what stands between callers and a model.

:class:`Guard` checks prompts (admission) and outputs (validation) against the policy, records
every step in the ledger, holds high-risk outputs in the human :class:`ReviewQueue`, and
governs an ``openai`` client with one line (``client = guard.wrap(client)``). The guard's
answer for a step is a :class:`Verdict`; a reviewer's decision on a held output is a
:class:`ReviewOutcome`.
"""

from custodes.guard.explain import Explanation, ExplanationNotFound
from custodes.guard.pipeline import Action, Caller, Guard, GuardViolation, Verdict
from custodes.guard.review import (
    DEFAULT_REVIEW_WINDOW,
    AlreadyDecided,
    ItemExpired,
    ReviewItem,
    ReviewItemNotFound,
    ReviewOutcome,
    ReviewPage,
    ReviewQueue,
    ReviewState,
    ReviewTimeout,
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
    "ReviewOutcome",
    "ReviewPage",
    "ReviewQueue",
    "ReviewState",
    "ReviewStoreError",
    "ReviewTimeout",
    "StreamCheck",
    "Verdict",
]
