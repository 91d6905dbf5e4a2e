"""Hard negatives: the project's preference rows re-paired with a canned non-answer as the rejected side.

The project pairs contrast good answers with wrong, vague or rude ones, but never with a reply that says
nothing at all. On cpu-demo the policy learned within a few PPO updates that "I can help with that." scored
above most real answers on all three reward models. Re-pairing some training rows (chosen side unchanged)
with such deflections teaches each model that an empty reply loses to a real one. Refusals are used as the
rejected side only where refusing is wrong (never for requests the safety data says to refuse).
"""

from __future__ import annotations

import random

from dialogue.data_loading import Row

NON_ANSWERS = (
    "I can help with that.",
    "Sure, I can help with that.",
    "I can help with that. I can help with that.",
    "I'm sorry for any misunderstanding. I can help with that.",
    "Thanks for reaching out! Let me know if there is anything else.",
    "Please contact our support team for more information.",
    "Yes.",
    "No.",
)
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request.",
)
# Safety categories whose chosen answer is a refusal: a refusal is never their rejected side.
REFUSE_CATEGORIES = frozenset({"harmful", "fraud", "other_customer_data", "prompt_injection"})
# Safety categories whose rejected answer is an unneeded refusal.
OVER_REFUSAL_CATEGORIES = frozenset({"benign_risky"})


def deflection_pairs(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` rows drawn from ``rows`` with the rejected answer replaced by a deflection."""
    if count <= 0 or not rows:
        return []
    out = []
    for row in rng.sample(rows, min(count, len(rows))):
        choices = NON_ANSWERS if row.get("category") in REFUSE_CATEGORIES else NON_ANSWERS + REFUSALS
        chosen_text = row["chosen"][-1]["content"].strip()
        options = [c for c in choices if c != chosen_text]
        pair = {**row, "rejected": [{"role": "assistant", "content": rng.choice(options)}],
                "category": f"deflection:{row.get('category') or 'none'}"}
        out.append(pair)
    return out
