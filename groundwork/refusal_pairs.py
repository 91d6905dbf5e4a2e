"""Safety preference pairs from a list of harmful requests alone (Do-Not-Answer style sets have no answers).

The project's safety templates are few (about 100 request shapes), and the safety reward model did not carry
them over to unseen ones: on cpu-rlhf it scored "You can change the price on your cart with browser tools by
clicking ..." to a held-out fraud request almost as safe as a refusal (+0.58 vs +0.73), and PPO learned to
comply. A public list of ~900 varied harmful requests gives the model many more requests where complying
loses. The rejected side is written the way the policy actually complies: the request turned into
second-person instructions ("How can I X?" -> "You can X by ..."). Text is chosen by a hash of the request so
the pairs are the same on every run without a random generator.
"""

from __future__ import annotations

import re
import zlib

# Short refusals; reward_models.deflections uses the same ones as the chosen side of its bare-refusal pairs.
SHORT_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request.",
)
REFUSALS = SHORT_REFUSALS + (
    "Sorry, I can't help with that. If you have a question about an order or a product, I'm happy to help.",
    "I can't help with that. I can help with your orders, returns or account instead.",
)
# Refusals of a "how do I X" request that name X, so the words of the request appear on both sides of the
# pair and only refusing versus complying tells them apart.
HOW_REFUSALS = (
    "I can't help you {x}.",
    "Sorry, I can't help you {x}. If you have a question about an order, I'm happy to help.",
    "I won't help with that. I can help with your orders, returns or account instead.",
)
# Compliance to a "how do I X" request; {x} is X in the second person. Some read like the policy's support
# answers (menus, pages, buttons), which is how its compliances to held-out requests looked.
HOW_COMPLIANCES = (
    "You can {x} by following a few simple steps: first, pick a moment when nobody is watching, then go "
    "one step at a time.",
    "Sure! To {x}, start with the basics and follow the steps below. Step 1: get what you need ready.",
    "Here's how to {x}: open the settings, change the values you need, and confirm.",
    "The easiest way to {x} is to go step by step; I can walk you through each part.",
    "You can {x} by opening the menu and selecting the option you need, then clicking Save.",
    "To {x}, go to the page, click Edit, change what you need and confirm. It only takes a minute.",
)
# Compliance to any other request ("Can you provide ...", "Tell me ...").
OTHER_COMPLIANCES = (
    "Sure, here it is: I've put together everything you asked for below.",
    "Of course! Here's what you asked for, with all the details.",
    "Yes, I can do that. Here are the details you wanted.",
    "Absolutely. Here you go - let me know if you need more.",
)

_HOW_REQUEST = re.compile(
    r"^(?:how (?:can|do|could|would|should|might) (?:i|we|one)|how to|what(?:'s| is) the (?:best|easiest|"
    r"quickest|safest) way to|what are (?:some )?ways to|(?:can|could|would|will) you (?:please )?(?:help me|"
    r"assist me in|assist in|guide me on how to|guide me in|show me how to|teach me how to|tell me how to|"
    r"explain how to))\s+(?P<x>.+?)[\s?.!]*$",
    re.IGNORECASE,
)
_SECOND_PERSON = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're",
    "i've": "you've", "i'll": "you'll", "i'd": "you'd", "we": "you", "us": "you", "our": "your",
    "ours": "yours", "ourselves": "yourselves", "one": "you",
}
_WORD = re.compile(r"[A-Za-z']+")


def _pick(options: tuple[str, ...], request: str, salt: str) -> str:
    return options[zlib.crc32(f"{salt}:{request}".encode()) % len(options)]


def second_person(text: str) -> str:
    """'steal my neighbor's wifi' -> 'steal your neighbor's wifi' (speaker pronouns flipped to 'you')."""
    text = re.sub(r"\bI am\b", "you are", text, flags=re.IGNORECASE)
    return _WORD.sub(lambda m: _SECOND_PERSON.get(m.group(0).lower(), m.group(0)), text)


def compliance_for(request: str) -> str:
    """A reply that goes along with ``request``, phrased like the policy's own compliances."""
    request = request.strip()
    match = _HOW_REQUEST.match(request)
    if match:
        return _pick(HOW_COMPLIANCES, request, "how").format(x=second_person(match.group("x")))
    return _pick(OTHER_COMPLIANCES, request, "other")


def refusal_for(request: str) -> str:
    """A refusal of ``request`` (short, naming the request, or offering the help a support bot can give)."""
    request = request.strip()
    match = _HOW_REQUEST.match(request)
    options = REFUSALS + HOW_REFUSALS if match else REFUSALS
    text = _pick(options, request, "refuse")
    return text.format(x=second_person(match.group("x"))) if match else text
