"""Handoff to a human agent: when a customer asks for one (in any of the five languages) or is unhappy twice.

Detection is a small set of phrase patterns per language, tuned to miss "agent" in ordinary sentences
("my travel agent") while catching the usual ways of asking for a person. The ticket itself lives in the
feedback store (which redacts the transcript); this module only decides *when* and says *what* to tell
the customer, in their language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PATTERNS: dict[str, str] = {
    "en": r"\b(talk|speak|chat|connect me|transfer me|put me through)\b[^.?!]{0,20}\b(human|person|agent|"
    r"representative|someone|somebody|operator)\b|\bhuman (agent|being|please)\b|\breal (person|human)\b"
    r"|\blive (agent|person|support)\b|^\s*(human|agent|representative|operator)\s*[.!?]*\s*$",
    "zh": r"人工|真人|客服人员|转接客服|找客服|活人",
    "es": r"\b(hablar|habla|comunicarme|pasarme|conectarme)\b[^.?!]{0,25}\b(humano|persona|agente|operador|"
    r"representante)\b|\bagente humano\b|\bpersona real\b",
    "fr": r"\b(parler|discuter|passer|mettre en relation)\b[^.?!]{0,25}\b(humain|personne|conseill[eè]re?|agent|"
    r"op[ée]rateur)\b|\bagent humain\b|\bvraie personne\b|\b[êe]tre humain\b",
    "de": r"\b(sprechen|reden|verbinden|durchstellen)\b|\b(mit|einen?|echten?)\s+(menschen?|mitarbeiter(in)?|"
    r"berater(in)?|person)\b|\becht(e|en|er) (person|mensch(en)?)\b|\bmenschliche[nr]? (mitarbeiter|ansprechpartner)",
}
_COMPILED = {lang: re.compile(p, re.IGNORECASE) for lang, p in _PATTERNS.items()}
# German verbs alone are too broad ("sprechen" about a product): require a person word as well.
_DE_PERSON = re.compile(r"\b(menschen?|mitarbeiter(in)?|berater(in)?|person|kundendienst|agent(en)?)\b", re.I)

NOTICE: dict[str, str] = {
    "en": "I've asked a human colleague to take over (ticket #{ticket}). They will reply here as soon as possible.",
    "zh": "我已请人工客服接手（工单 #{ticket}），他们会尽快在这里回复您。",
    "es": "He pedido a un compañero humano que continúe (ticket #{ticket}). Le responderá aquí lo antes posible.",
    "fr": "J'ai demandé à un collègue humain de prendre le relais (ticket #{ticket}). Il vous répondra ici dès que "
    "possible.",
    "de": "Ich habe einen menschlichen Kollegen gebeten zu übernehmen (Ticket #{ticket}). Er antwortet Ihnen hier "
    "so bald wie möglich.",
}

# Added to an answer that is only filler ("I can help you with that."): the customer learns how to get help.
FILLER_FOLLOW_UP: dict[str, str] = {
    "en": "Our help articles don't answer this one, though: ask to talk to a human and a colleague will take over.",
    "zh": "不过我们的帮助文章没有涉及这个问题：请说“转人工”，客服同事会接手。",
    "es": "Nuestros artículos de ayuda no responden a esto: pida hablar con una persona y un compañero continuará.",
    "fr": "Nos articles d'aide ne répondent pas à cette question : demandez à parler à un humain et un collègue "
    "prendra le relais.",
    "de": "Unsere Hilfeartikel beantworten das leider nicht: Bitten Sie, mit einem Menschen zu sprechen, dann "
    "übernimmt ein Kollege.",
}

# Said instead of a policy refusal of a support request the guard scores clearly benign (below the request
# model's benign threshold): turning a customer away is a mistake there; a human colleague is the way on.
REFUSAL_HANDOFF: dict[str, str] = {
    "en": "Our help articles don't cover this, so a human colleague is better placed to answer: ask to talk to a "
    "human and they will take over.",
    "zh": "我们的帮助文章没有涉及这个问题，人工客服同事能更好地为您解答：请说“转人工”，同事会接手。",
    "es": "Nuestros artículos de ayuda no tratan esto; un compañero humano podrá responderle mejor: pida hablar con "
    "una persona y continuará él.",
    "fr": "Nos articles d'aide ne traitent pas ce sujet ; un collègue humain saura mieux vous répondre : demandez à "
    "parler à un humain et il prendra le relais.",
    "de": "Unsere Hilfeartikel behandeln das nicht; ein menschlicher Kollege kann besser antworten: Bitten Sie, mit "
    "einem Menschen zu sprechen, dann übernimmt er.",
}

DISLIKES_FOR_HANDOFF = 2


def wants_human(text: str) -> str | None:
    """The language code whose pattern matches a request for a human, or None."""
    for lang, pattern in _COMPILED.items():
        if pattern.search(text or ""):
            if lang == "de" and not _DE_PERSON.search(text):
                continue
            return lang
    return None


def filler_follow_up(language: str = "en") -> str:
    """The sentence added to a filler-only answer, in the customer's language (English when unknown)."""
    return FILLER_FOLLOW_UP.get(language, FILLER_FOLLOW_UP["en"])


def refusal_handoff(language: str = "en") -> str:
    """What replaces a refusal of a clearly benign support request, in the customer's language."""
    return REFUSAL_HANDOFF.get(language, REFUSAL_HANDOFF["en"])


def notice(ticket_id: int, language: str = "en") -> str:
    """What the customer is told once a ticket is open."""
    return NOTICE.get(language, NOTICE["en"]).format(ticket=ticket_id)


@dataclass
class DislikeStreak:
    """Consecutive dislikes in one conversation; a like resets it; reaching the limit triggers a handoff once."""

    limit: int = DISLIKES_FOR_HANDOFF
    count: int = 0
    disliked: set[int] = field(default_factory=set)

    def record(self, message_id: int, liked: bool | None) -> bool:
        """Count one vote; True exactly when this vote completes a streak of ``limit`` dislikes."""
        if liked is None:
            return False
        if liked:
            self.count = 0
            self.disliked.discard(message_id)
            return False
        if message_id in self.disliked:  # a repeated click on the same answer is not a second dislike
            return False
        self.disliked.add(message_id)
        self.count += 1
        if self.count >= self.limit:
            self.count = 0
            return True
        return False
