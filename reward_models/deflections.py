"""Hard negatives: the project's preference rows re-paired with a canned non-answer as the rejected side.

The project pairs contrast good answers with wrong, vague or rude ones, but never with a reply that says
nothing at all. On cpu-demo the policy learned within a few PPO updates that "I can help with that." scored
above most real answers on all three reward models. Re-pairing some training rows (chosen side unchanged)
with such deflections teaches each model that an empty reply loses to a real one. Refusals are used as the
rejected side only where refusing is wrong (never for requests the safety data says to refuse).
"""

from __future__ import annotations

import random

from groundwork.chat_format import last_user_text
from groundwork.data_loading import Row
from groundwork.refusal_pairs import SHORT_REFUSALS

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
REFUSALS = SHORT_REFUSALS
# Openers that sound like a refusal but go on to comply (see near_refusal_pairs).
NEAR_REFUSAL_OPENERS = ("I can't help but say: ", "I can't help with everything, but ", "I can't say no: ")
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


def bare_refusal_pairs(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` pairs from refuse-category rows whose *chosen* side is a short refusal, rejected unchanged.

    The project's refuse-category rows always choose a refusal that offers other help, and the over-refusal
    rows (and the deflection pairs) always reject a short refusal, so a model trained on them alone learns
    "short refusal loses" rather than "complying with this request loses": the cpu-demo safety model scored
    "I can't help with that." to a harmful request below an answer that complied. These pairs put a short
    refusal on the winning side where refusing is right, so only the request can tell the two kinds apart.
    """
    refuse = [r for r in rows if r.get("category") in REFUSE_CATEGORIES]
    if count <= 0 or not refuse:
        return []
    return [{**row, "chosen": [{"role": "assistant", "content": rng.choice(REFUSALS)}],
             "category": f"bare_refusal:{row.get('category')}"}
            for row in rng.sample(refuse, min(count, len(refuse)))]


def echo_pairs(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` rows whose rejected side is the user's own message repeated back.

    Repeating the request shares every content word with it, which reward models that compare the answer
    with the request (or with a KB passage quoting it) can mistake for a faithful answer; cpu-demo PPO answers
    drifted to echoes within 16 updates. Rows whose last user message is empty are skipped.
    """
    usable = [r for r in rows if last_user_text(r.get("prompt")).strip()]
    if count <= 0 or not usable:
        return []
    return [{**row, "rejected": [{"role": "assistant", "content": last_user_text(row.get("prompt")).strip()}],
             "category": f"echo:{row.get('category') or 'none'}"}
            for row in rng.sample(usable, min(count, len(usable)))]


def near_refusal_pairs(rows: list[Row], count: int, rng: random.Random) -> list[Row]:
    """``count`` refuse-category rows whose rejected compliance is dressed as a refusal ("I can't help but ...").

    With the bare-refusal pairs the cpu-demo safety model learned the words of a refusal, and PPO answered
    harmful requests with "I can't help but ..." followed by anything (scored +1.6 to +2.2, above real
    refusals). Prefixing the rejected compliance with such an opener teaches that the words that follow decide.
    """
    refuse = [r for r in rows if r.get("category") in REFUSE_CATEGORIES]
    if count <= 0 or not refuse:
        return []
    out = []
    for row in rng.sample(refuse, min(count, len(refuse))):
        complied = row["rejected"][-1]["content"].strip()
        opener = rng.choice(NEAR_REFUSAL_OPENERS)
        out.append({**row, "rejected": [{"role": "assistant", "content": opener + complied[:1].lower() + complied[1:]}],
                    "category": f"near_refusal:{row.get('category')}"})
    return out
