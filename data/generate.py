#!/usr/bin/env python3
"""Deterministic generator for Parley's synthetic Kestrel Market datasets.

Usage:  python data/generate.py --out data

Standard library only. All content (KB articles, question phrasings, translations, safety prompts) is
hand-written for this project and lives in the *_content.py modules next to this script. Running the
script twice produces byte-identical files.
"""

import argparse
import json
import os
import random
import re
import sys
import zlib

sys.dont_write_bytecode = True  # keep data/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jailbreak_content as jc  # noqa: E402
import kb_content  # noqa: E402
import multilingual_content as ml  # noqa: E402
import safety_content as sc  # noqa: E402
import translation_content as tc  # noqa: E402

SEED = 20240611

# ----------------------------------------------------------------------------- helpers


def rng(name):
    return random.Random(f"{SEED}:{name}")


def norm(text):
    """Normalization used for train/held-out overlap checks."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return " ".join(text.split())


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = sorted(rows, key=lambda r: r["id"])
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def assign_ids(rows, prefix, r):
    r.shuffle(rows)
    for i, row in enumerate(rows, 1):
        row["id"] = f"{prefix}-{i:05d}"
    return rows


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def user_turns(row):
    msgs = row.get("messages") or row.get("prompt") or []
    return [m["content"] for m in msgs if m["role"] == "user"]


PREFIXES = ["", "", "", "", "Hi, ", "Hello! ", "hey ", "Quick question: ", "Hi there. ", "Good morning. ",
            "Hello, ", "Excuse me, ", "hi "]
SUFFIXES = ["", "", "", "", " Thanks!", " thx", " Thank you.", " Thanks in advance.", " :)", " Cheers."]


def typo(text, r):
    words = text.split(" ")
    cands = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    if not cands:
        return text
    i = r.choice(cands)
    w = words[i]
    j = r.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def vary(text, r, allow_noise=True, greet=True):
    pre, suf = r.choice(PREFIXES), r.choice(SUFFIXES)
    if not greet:
        pre = ""
    if pre and len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    out = pre + text + suf
    if allow_noise:
        x = r.random()
        if x < 0.15:
            out = out.lower()
        elif x < 0.27:
            out = typo(out, r)
    return out


def order_id(r):
    return f"KM-{r.randint(10000, 99999)}"


def fill_item_order(text, r, cat="any", name=None):
    if "{item}" in text:
        item = r.choice(kb_content.ITEMS[cat])
        article = "an" if item[0].lower() in "aeio" else "a"
        text = re.sub(r"\b([Aa]) \{item\}", lambda m: ("A" if m.group(1) == "A" else "a") + article[1:]
                      + " {item}", text)
        text = text.replace("{item}", item)
    if "{order}" in text:
        text = text.replace("{order}", order_id(r))
    if "{name}" in text:
        text = text.replace("{name}", name or r.choice(tc.NAMES))
    if "{last4}" in text:
        text = text.replace("{last4}", str(r.randint(1000, 9999)))
    return text


# ----------------------------------------------------------------------------- knowledge base

ARTICLES = {a["id"]: a for a in kb_content.ARTICLES}
FACTS = []  # (article, fact)
for _a in kb_content.ARTICLES:
    for _f in _a["facts"]:
        FACTS.append((_a, _f))
FACT_BY_KEY = {f["key"]: (a, f) for a, f in FACTS}


def check_kb():
    problems = []
    if len(FACT_BY_KEY) != len(FACTS):
        problems.append("duplicate fact keys")
    if len(ARTICLES) != len(kb_content.ARTICLES):
        problems.append("duplicate article ids")
    for a, f in FACTS:
        for p in f["answer_patterns"]:
            if not re.search(p, a["text"], re.I):
                problems.append(f"{f['key']}: pattern {p!r} not in article text")
        if not any(re.search(p, f["answer"], re.I) for p in f["answer_patterns"]):
            problems.append(f"{f['key']}: answer does not match patterns")
        for w in f["wrong"]:
            if any(re.search(p, w, re.I) for p in f["answer_patterns"]):
                problems.append(f"{f['key']}: wrong answer matches a pattern: {w!r}")
        if not f["hq"] or len(f["tq"]) < 2:
            problems.append(f"{f['key']}: needs >=2 train and >=1 held-out question")
    if problems:
        raise SystemExit("KB problems:\n" + "\n".join(problems))


def kb_rows():
    rows = []
    for a in kb_content.ARTICLES:
        rows.append({
            "id": a["id"], "title": a["title"], "topic": a["topic"], "text": a["text"],
            "facts": [{"key": f["key"], "question": f["question"], "answer": f["answer"],
                       "answer_patterns": list(f["answer_patterns"])} for f in a["facts"]],
        })
    return rows


def questions(fact, split):
    if split == "train":
        return [(f"q{i}", q) for i, q in enumerate([fact["question"]] + fact["tq"])]
    return [(f"h{i}", q) for i, q in enumerate(fact["hq"])]


def context_for(kb_ids):
    return "\n\n".join(ARTICLES[k]["text"] for k in kb_ids)


# Answers lead with the fact. pick_dress still draws one of 8 opener slots and, for one-sentence answers, one
# of 6 closer slots from the conversation's stream, so every later draw (and so every support and PPO prompt)
# is the same as when these slots held openers like "Of course. ". Only the last opener slot can dress an
# answer, only for facts whose answer hashes into ANSWER_OPENER_SHARE and never before a yes/no answer: about
# 2-4% of answers. An opener never ends its sentence, so the fact always follows in the same sentence. A closer
# needs the last closer slot and an even opener slot: about 1 in 12 one-sentence answers.
ANSWER_OPENER_SLOTS = 8
ANSWER_OPENER_SHARE = 3  # 1 in 3 facts can get an opener (when the last slot is drawn)
ANSWER_OPENERS = ["Sure - ", "Good question - ", "Happy to help: "]
ANSWER_CLOSER_SLOTS = 6
ANSWER_CLOSERS = [" Is there anything else I can help with?", " Let me know if you have any other questions.",
                  " I hope that helps!"]


def lower_first(text):
    if text.startswith("Kestrel") or text.startswith("KM-"):
        return text
    return text[0].lower() + text[1:]


def dress(answer, opener, closer):
    if opener and not opener.endswith(("! ", ". ")):
        answer = lower_first(answer)
    return opener + answer + closer


def pick_dress(r, answer):
    slot = r.choice(range(ANSWER_OPENER_SLOTS))
    h = zlib.crc32(answer.encode("utf-8"))
    opener = ""
    if (slot == ANSWER_OPENER_SLOTS - 1 and h % ANSWER_OPENER_SHARE == 0
            and not answer.startswith(("Yes", "No"))):
        opener = ANSWER_OPENERS[h // ANSWER_OPENER_SHARE % len(ANSWER_OPENERS)]
    closer = ""
    if (answer.count(". ") == 0 and r.choice(range(ANSWER_CLOSER_SLOTS)) == ANSWER_CLOSER_SLOTS - 1
            and slot % 2 == 0):
        closer = ANSWER_CLOSERS[h % len(ANSWER_CLOSERS)]
    return opener, closer


def ask(fact, split, r, greet=True):
    """A varied user question for a fact; returns (template_suffix, text)."""
    qid, q = r.choice(questions(fact, split))
    return qid, vary(fill_item_order(q, r, fact["cat"]), r, greet=greet)


OPENERS = {
    "train": ["Hi, I have a question about my order {order}.", "Hello, can you help me with something?",
              "hi i need some help", "Hey, I'm trying to figure something out.",
              "Good evening, I have a question.", "Hi! Quick question about order {order}.",
              "Hello there, I need help with my account.", "hey, got a minute?",
              "Hi, I bought a {item} from you recently.", "Hello, I'm a Kestrel Rewards member and have a "
              "question."],
    "heldout": ["Greetings - I'm hoping you can clear something up for me.",
                "Hey support, I'm a bit confused about order {order}.",
                "Hi, first time shopping with you and I've got a question.",
                "Hello, my partner ordered a {item} on my account and I'm wondering about something."],
}
# Replies to an opening line that asks nothing yet (never the final, trained turn). They ask for the question
# instead of promising help, so no assistant turn models "Of course"/"Happy to help" without substance.
OPENER_REPLIES = ["What would you like to know?", "Go ahead - what's your question?",
                  "Hello! What's your question?", "What do you need to know?",
                  "Hi there! What would you like to ask?"]
FOLLOWUP_PREFIXES = ["Also, ", "One more thing: ", "And ", "Thanks. ", "Got it. ", "Ok, also "]


def related_fact(a, f, r):
    same = [g for g in a["facts"] if g["key"] != f["key"]]
    topic = [(b, g) for b, g in FACTS if b["topic"] == a["topic"] and g["key"] != f["key"]]
    if same and r.random() < 0.5:
        return a, r.choice(same)
    if topic:
        return r.choice(topic)
    return r.choice([(b, g) for b, g in FACTS if g["key"] != f["key"]])


def build_conversation(split, r, shape=None):
    """Returns dict(messages, kb_ids, template_id, topic, last_fact, opener, closer)."""
    a, f = r.choice(FACTS)
    if shape is None:
        x = r.random()
        shape = "single" if x < 0.6 else "opener" if x < 0.75 else "two" if x < 0.9 else "three"
    msgs, kb_ids, tids = [], [], []
    if shape in ("opener", "three"):
        msgs.append(user(vary(fill_item_order(r.choice(OPENERS[split]), r), r, greet=False)))
        msgs.append(assistant(r.choice(OPENER_REPLIES)))
    if shape in ("two", "three"):
        qid, q = ask(f, split, r, greet=shape == "two")
        opener, closer = pick_dress(r, f["answer"])
        msgs += [user(q), assistant(dress(f["answer"], opener, closer))]
        kb_ids.append(a["id"])
        tids.append(f"{f['key']}/{qid}")
        a, f = related_fact(a, f, r)
        qid, q = ask(f, split, r, greet=False)
        q = r.choice(FOLLOWUP_PREFIXES) + (q[0].lower() + q[1:] if q[1:2].islower() else q)
    else:
        qid, q = ask(f, split, r, greet=shape == "single")
    msgs.append(user(q))
    if a["id"] not in kb_ids:
        kb_ids.append(a["id"])
    tids.append(f"{f['key']}/{qid}")
    opener, closer = pick_dress(r, f["answer"])
    return {"messages": msgs, "kb_ids": kb_ids, "template_id": "support/" + "+".join(tids),
            "topic": a["topic"], "fact": f, "article": a, "opener": opener, "closer": closer, "shape": shape}


def support_rows(split, n, r):
    rows, seen = [], set()
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > n * 50:
            raise SystemExit(f"could not build {n} unique support rows for {split}")
        c = build_conversation(split, r)
        key = tuple(norm(t) for t in user_turns(c))
        if key in seen:
            continue
        seen.add(key)
        final = dress(c["fact"]["answer"], c["opener"], c["closer"])
        rows.append({"topic": c["topic"], "template_id": c["template_id"], "kb_ids": c["kb_ids"],
                     "context": context_for(c["kb_ids"]), "messages": c["messages"] + [assistant(final)]})
    return rows


# ----------------------------------------------------------------------------- translation


def render(template, lang, slots):
    text = template
    for k, v in slots.items():
        if k == "price":
            v = tc.fmt_price(v, lang)
        elif k == "date":
            v = tc.fmt_date(v, lang)
        elif k == "pct":
            v = tc.fmt_pct(v, lang)
        elif k == "item":
            v = v[1 + tc.LANGS.index(lang)]
        text = text.replace("{" + k + "}", str(v))
    return text


SLOT_POOLS = {"order": tc.ORDERS, "n": tc.COUNTS, "days": tc.DAYS, "price": tc.PRICES, "date": tc.DATES,
              "pct": tc.PERCENTS, "points": tc.POINTS, "code": tc.CODES, "name": tc.NAMES}


def translation_split(tid):
    return "heldout" if int(tid[2:]) % 6 == 3 else "train"


def translation_rows():
    r = rng("translation")
    out = {"train": [], "heldout": []}
    for t in tc.TEMPLATES:
        tid, texts = t[0], dict(zip(tc.LANGS, t[1:6], strict=True))
        cats = t[6] if len(t) > 6 else None
        slots = sorted(set(re.findall(r"\{(\w+)\}", texts["en"])))
        for lang in tc.LANGS:
            if sorted(set(re.findall(r"\{(\w+)\}", texts[lang]))) != slots:
                raise SystemExit(f"{tid}: slot mismatch in {lang}")
        n_rows = 5 if slots else 1
        seen = set()
        tries = 0
        while len(seen) < n_rows and tries < 200:
            tries += 1
            fill = {}
            for s in slots:
                if s == "item":
                    pool = [p for p in tc.PRODUCTS if cats is None or p[0] in cats]
                    fill[s] = r.choice(pool)
                else:
                    fill[s] = r.choice(SLOT_POOLS[s])
            row = {lang: render(texts[lang], lang, fill) for lang in tc.LANGS}
            if row["en"] in seen:
                continue
            seen.add(row["en"])
            row["template_id"] = tid
            row["_fill"] = fill
            out[translation_split(tid)].append(row)
    return out


EN_INSTR = {
    "train": ["Translate into {L}: {s}", "Please translate this into {L}:\n{s}",
              "Can you translate the following sentence to {L}?\n\n{s}", "Translate to {L}, please: {s}",
              "{L} translation needed: {s}"],
    "heldout": ["How would you say this in {L}? \"{s}\"", "Could you put this customer message into {L}? {s}",
                "Render the following in {L}: {s}"],
}
LNAME = {"zh": ["Chinese", "Simplified Chinese", "Chinese (Simplified)"], "es": ["Spanish"], "fr": ["French"],
         "de": ["German"], "en": ["English"]}
SRC_INSTR = {
    "zh": ["请把下面这句话翻译成英文：{s}", "翻译成英语：{s}", "请将以下内容译为英文：\n{s}"],
    "es": ["Traduce al inglés: {s}", "¿Puedes traducir esta frase al inglés? {s}",
           "Tradúceme esto al inglés:\n{s}"],
    "fr": ["Traduis en anglais : {s}", "Peux-tu traduire cette phrase en anglais ? {s}",
           "Merci de traduire ceci en anglais :\n{s}"],
    "de": ["Übersetze ins Englische: {s}", "Kannst du diesen Satz ins Englische übersetzen? {s}",
           "Bitte ins Englische übersetzen:\n{s}"],
}


def translation_request(row, split, r, src=None, tgt=None):
    if src is None:
        if r.random() < 0.75:
            src, tgt = "en", r.choice(["zh", "es", "fr", "de"])
        else:
            src, tgt = r.choice(["zh", "es", "fr", "de"]), "en"
    if src == "en":
        instr = r.choice(EN_INSTR[split]).replace("{L}", r.choice(LNAME[tgt]))
    else:
        instr = r.choice(SRC_INSTR[src])
    return src, tgt, instr.replace("{s}", row[src])


def alter_number(text, r):
    matches = list(re.finditer(r"\d+", text))
    if not matches:
        return None
    m = r.choice(matches)
    old = m.group(0)
    new = str(int(old) + r.choice([1, 2, 3, 5, 10]))
    if old.startswith("0") and len(new) < len(old):
        new = new.zfill(len(old))
    return text[:m.start()] + new + text[m.end():]


def partial(text):
    for sep in ("，", ", ", ",", " y ", " et ", " und ", " and ", " because ", " car ", " da ", " porque "):
        if sep in text:
            head = text.split(sep)[0].rstrip()
            if len(head) >= 8:
                return head + ("。" if sep == "，" else ".")
    return None


# ----------------------------------------------------------------------------- preferences: quality

RUDE = ["Ugh, this is all on our website. {a}", "{a} Honestly, you could have looked that up yourself.",
        "Read the help pages next time. {a}", "Fine. {a} Anything else, or are we done here?",
        "Seriously? Everyone knows this. {a}", "{a} Please try not to waste my time with basic questions."]
VAGUE = ["It depends on several factors. Please check our website for details.",
         "There are some rules about that, but it varies from case to case.",
         "I'm not sure exactly; it could be a few different things.",
         "That's covered somewhere in our policies, so please review them.",
         "Hmm, hard to say. Maybe try again later?",
         "Various conditions apply, so I can't really say."]
OFF_TOPIC = ["Did you know our Aero wireless earbuds are on sale this week? They come in three colors!",
             "Thanks for reaching out! By the way, have you tried our new line of cast-iron cookware?",
             "Our fall apparel collection just arrived - it's worth a look!",
             "Have you thought about joining Kestrel Rewards? Members love it.",
             "Great weather today, isn't it? Perfect for shopping online."]
RAMBLE = ["At Kestrel Market we care deeply about every customer and every order, big or small.",
          "Our policies have been designed carefully over many years to be fair to everyone.",
          "Many customers ask about this, and it's always a pleasure to explain it.",
          "Shopping should be enjoyable, and we work hard every day to make it so.",
          "Of course, every situation is a little different, and we appreciate your patience.",
          "We also invite you to explore our wide selection of electronics, home goods, apparel and books.",
          "Customer satisfaction is at the heart of everything we do here.",
          "We're constantly reviewing our processes to make your experience smoother."]
WRONG_LANG = {
    "return_window": "La mayoría de los artículos se pueden devolver en un plazo de 30 días desde la "
                     "entrega.",
    "refund_time": "Les remboursements sont effectués sous 5 à 7 jours ouvrés après l'arrivée de votre "
                   "retour dans notre entrepôt.",
    "free_shipping_threshold": "Der Standardversand ist bei Bestellungen über 50 $ kostenlos.",
    "standard_cost": "El envío estándar cuesta 4,99 $.",
    "standard_time": "La livraison standard prend de 3 à 5 jours ouvrés après l'expédition de la commande.",
    "express_cost": "Der Expressversand kostet 12,99 $.",
    "express_time": "El envío exprés se entrega en 1 a 2 días hábiles después de que se envía el pedido.",
    "cancel_window": "Vous pouvez annuler une commande sans frais dans l'heure qui suit sa passation.",
    "electronics_warranty": "Alle Elektronikartikel haben ab Kaufdatum eine eingeschränkte Garantie von 2 "
                            "Jahren.",
    "giftcard_validity": "Las tarjetas regalo de Kestrel Market son válidas durante 5 años a partir de la "
                         "fecha de compra.",
    "lockout_attempts": "Votre compte est bloqué après 5 tentatives de connexion infructueuses consécutives.",
    "points_rate": "Mitglieder von Kestrel Rewards erhalten 1 Punkt pro ausgegebenem Dollar für Waren.",
    "price_match_window": "Si encuentra un precio más bajo para un artículo idéntico en un plazo de 14 días "
                          "desde su compra, le reembolsaremos la diferencia.",
    "restocking_fee": "Oui, les appareils électroniques ouverts et non défectueux sont soumis à des frais de "
                      "remise en stock de 15 %.",
    "return_label_fee": "Für Rücksendungen ohne Defekt, Beschädigung oder Falschlieferung kostet ein "
                        "vorfrankiertes Rücksendeetikett 5,95 $, die von Ihrer Rückerstattung abgezogen "
                        "werden.",
    "intl_cost": "El envío internacional cuesta una tarifa fija de 24,99 $ por pedido.",
    "chat_hours": "Le chat en direct est disponible tous les jours de 8 h à 22 h, heure de l'Est.",
    "refund_method": "Rückerstattungen erfolgen auf die ursprüngliche Zahlungsmethode.",
    "tracking_email": "Le enviamos por correo electrónico un número de seguimiento en las 24 horas "
                      "siguientes al envío de su pedido.",
    "lost_wait": "Veuillez patienter 48 heures, car les transporteurs indiquent parfois un colis comme livré "
                 "trop tôt ; ensuite, contactez-nous et nous ouvrirons une réclamation.",
    "paypal_accepted": "Ja, wir akzeptieren PayPal sowie Visa, Mastercard, American Express, Discover, Apple "
                       "Pay und Kestrel-Geschenkkarten.",
    "damaged_window": "Informe de un artículo dañado en un plazo de 7 días desde la entrega mediante la "
                      "opción Informar de un problema en la página Pedidos.",
    "reset_link_validity": "Le lien de réinitialisation du mot de passe est valable 45 minutes.",
    "deletion_time": "Die Löschung des Kontos ist innerhalb von 21 Tagen abgeschlossen, und Sie erhalten "
                     "eine E-Mail, sobald sie erfolgt ist.",
    "max_units": "Sie können höchstens 10 Stück desselben Artikels in einer Bestellung kaufen.",
    "express_po_box": "No, el envío exprés no está disponible para apartados postales ni direcciones "
                      "APO/FPO.",
}
SUPPORT_QUALITY_CATS = ["rude", "vague", "off_topic", "wrong_fact", "ignores_question", "wrong_language",
                        "rambling"]


def quality_support_row(split, r):
    c = build_conversation(split, r, shape="single" if r.random() < 0.75 else None)
    f, a = c["fact"], c["article"]
    cats = [x for x in SUPPORT_QUALITY_CATS if x != "wrong_language" or f["key"] in WRONG_LANG]
    cat = r.choice(cats)
    chosen = dress(f["answer"], c["opener"], c["closer"])
    if cat == "rude":
        rejected = r.choice(RUDE).replace("{a}", f["answer"])
    elif cat == "vague":
        rejected = r.choice(VAGUE)
    elif cat == "off_topic":
        rejected = r.choice(OFF_TOPIC)
    elif cat == "wrong_fact":
        rejected = dress(r.choice(f["wrong"]), c["opener"], c["closer"])
    elif cat == "ignores_question":
        others = [g for b, g in FACTS if b["id"] != a["id"]]
        rejected = dress(r.choice(others)["answer"], c["opener"], c["closer"])
    elif cat == "wrong_language":
        rejected = WRONG_LANG[f["key"]]
    else:
        extra = r.sample(RAMBLE, r.randint(4, 6))
        rejected = " ".join([r.choice(RAMBLE[:3])] + [f["answer"]] + extra)
    return {"template_id": c["template_id"], "category": cat, "prompt": c["messages"],
            "chosen": [assistant(chosen)], "rejected": [assistant(rejected)],
            "context": context_for(c["kb_ids"])}


def quality_translation_row(trows, split, r):
    row = r.choice(trows)
    src, tgt, prompt = translation_request(row, split, r)
    chosen = row[tgt]
    options = ["translation_wrong_language", "translation_untranslated"]
    if partial(chosen):
        options.append("translation_partial")
    if re.search(r"\d", chosen):
        options += ["translation_wrong_number", "translation_wrong_number"]
    cat = r.choice(options)
    if cat == "translation_wrong_language":
        rejected = row[r.choice([x for x in tc.LANGS if x not in (src, tgt)])]
    elif cat == "translation_untranslated":
        rejected = row[src]
    elif cat == "translation_partial":
        rejected = partial(chosen)
    else:
        rejected = alter_number(chosen, r)
    return {"template_id": f"translation/{row['template_id']}/{src}-{tgt}", "category": cat,
            "prompt": [user(prompt)], "chosen": [assistant(chosen)], "rejected": [assistant(rejected)],
            "context": None}


def dedupe_pref(rows):
    out, seen = [], set()
    for row in rows:
        key = (tuple(norm(t) for t in user_turns(row)), row["rejected"][0]["content"])
        if key in seen or row["chosen"][0]["content"] == row["rejected"][0]["content"]:
            continue
        seen.add(key)
        out.append(row)
    return out


def quality_rows(split, n_support, n_translation, trows, r):
    rows = []
    while len(dedupe_pref(rows)) < n_support:
        rows.append(quality_support_row(split, r))
    rows = dedupe_pref(rows)[:n_support]
    trs = []
    while len(dedupe_pref(trs)) < n_translation:
        trs.append(quality_translation_row(trows, split, r))
    return rows + dedupe_pref(trs)[:n_translation]


# ----------------------------------------------------------------------------- preferences: faithfulness

PROMISES = [" As a thank-you, we'll also add a $10 credit to your account.",
            " We'll also waive any fees on your next order.",
            " And if anything goes wrong, you'll get a full refund, no questions asked.",
            " I've also applied a 20% discount to your next purchase.",
            " We guarantee this will be resolved by tomorrow.",
            " You'll also receive a free gift with your next order.",
            " Plus, we'll upgrade your next order to overnight delivery at no cost."]
INVENTED = [" Note that this only applies to orders placed through our mobile app.",
            " This requires a receipt signed by a store manager.",
            " Please note this policy doesn't apply to customers in Texas or Florida.",
            " A $2.50 processing fee applies.",
            " You'll need to confirm by phone within 6 hours for this to apply.",
            " This only applies if you have been a customer for at least a year.",
            " Orders over $200 are excluded from this policy."]


def faithfulness_rows(split, n, r):
    rows = []
    while len(dedupe_pref(rows)) < n:
        c = build_conversation(split, r, shape="single" if r.random() < 0.8 else None)
        f = c["fact"]
        kb_ids = list(c["kb_ids"])
        if len(kb_ids) == 1 and r.random() < 0.3:
            other = r.choice([k for k in sorted(ARTICLES) if k not in kb_ids])
            kb_ids.insert(r.randrange(2), other)
        chosen = dress(f["answer"], c["opener"], c["closer"])
        x = r.random()
        if x < 0.5:
            cat = "altered_fact"
            rejected = dress(r.choice(f["wrong"]), c["opener"], c["closer"])
        elif x < 0.75:
            cat = "unsupported_promise"
            rejected = dress(f["answer"], c["opener"], "") + r.choice(PROMISES)
        else:
            cat = "invented_policy"
            rejected = dress(f["answer"], c["opener"], "") + r.choice(INVENTED)
        rows.append({"template_id": c["template_id"], "category": cat, "prompt": c["messages"],
                     "chosen": [assistant(chosen)], "rejected": [assistant(rejected)],
                     "context": context_for(kb_ids)})
    return dedupe_pref(rows)[:n]


# ----------------------------------------------------------------------------- safety

REFUSAL_OPENERS = ["I'm sorry, but I can't help with that.", "I can't help with that request.",
                   "Sorry, that's not something I can assist with.", "I'm not able to help with that.",
                   "I have to decline that request.", "Unfortunately, I can't do that.",
                   "I'm afraid I can't help with this one."]
REASONS = {
    "harmful": ["It could put people at risk of harm.", "I can't provide help that could be used to hurt "
                "someone or break the law.", "", ""],
    "fraud": ["It would involve fraud, and I can't take part in that.",
              "That would mean deceiving Kestrel Market or a bank, so I can't assist.", "", ""],
    "other_customer_data": ["For privacy reasons, I can only discuss orders and details on your own account.",
                            "Customer information is private, and I can't share it with anyone else.",
                            "We protect every customer's personal data, so I can't share it."],
    "prompt_injection": ["I can't reveal internal instructions or change policies, prices or accounts "
                         "on request.",
                         "My instructions and internal tools aren't something I can share or bypass.",
                         "I have to follow Kestrel Market's actual policies, and I can't override them.", ""],
}
SELF_HARM = [
    "I'm really sorry you're feeling this way, and I can't help with that. You don't have to go through this "
    "alone - please reach out to someone you trust, or call or text 988 (the Suicide & Crisis Lifeline in "
    "the US) or your local emergency number right now.",
    "It sounds like you're going through something very painful, and I'm not able to help with that request. "
    "Please contact a crisis line such as 988 in the US, or local emergency services if you're in immediate "
    "danger - talking to someone can really help.",
    "I'm concerned about what you've shared, so I won't help with that. If you might act on these thoughts, "
    "please call your local emergency number, or call or text 988 in the US to talk with someone right away.",
]
UNNEEDED_REFUSALS = ["I'm sorry, but I can't help with that request.",
                     "I'm not able to assist with anything that could be dangerous.",
                     "Sorry, I can't discuss that topic.",
                     "That sounds unsafe, so I won't be able to help with it.",
                     "I'm afraid I can't help with this. Please contact a professional.",
                     "For safety reasons, I can't provide that information.",
                     "I can't help with requests like this one, sorry.",
                     "This request may violate our policies, so I have to decline."]
COMPLY_PREFIX = ["", "", "", "No problem! ", "Of course. ", "Happy to help! "]
SAFETY_CATEGORIES = {"harmful": sc.HARMFUL, "fraud": sc.FRAUD, "other_customer_data": sc.OTHER_DATA,
                     "prompt_injection": sc.INJECTION}


def split_templates(templates, split):
    k = sc.HELDOUT_PER_CATEGORY
    return templates[:-k] if split == "train" else templates[-k:]


def fill_safety(texts, r):
    """Fill the same slots consistently across prompt / help / comply texts."""
    name = r.choice(tc.NAMES)
    item = r.choice(kb_content.ITEMS["electronics"] + kb_content.ITEMS["home"])
    order = order_id(r)
    last4 = str(r.randint(1000, 9999))
    out = []
    for t in texts:
        t = re.sub(r"\b([Aa]) \{item\}",
                   lambda m: m.group(1) + ("n" if item[0] in "aeio" else "") + " {item}", t)
        out.append(t.replace("{item}", item).replace("{order}", order).replace("{name}", name)
                   .replace("{last4}", last4))
    return out


def refusal(cat, help_text, r):
    if not help_text:
        return r.choice(SELF_HARM)
    parts = [r.choice(REFUSAL_OPENERS), r.choice(REASONS[cat]), help_text]
    return " ".join(p for p in parts if p)


def risky_prompt(cat, split, r):
    tid, prompt, help_text, comply = r.choice(split_templates(SAFETY_CATEGORIES[cat], split))
    prompt, help_text, comply = fill_safety([prompt, help_text, comply], r)
    return tid, vary(prompt, r), help_text, comply


def benign_prompt(split, r):
    tid, prompt, answer, kb = r.choice(split_templates(sc.BENIGN, split))
    kb_ids = [kb] if isinstance(kb, str) else list(kb or [])
    prompt, answer = fill_safety([prompt, answer], r)
    return tid, vary(prompt, r), answer, kb_ids


def injected_row(split, r):
    c = build_conversation(split, r, shape="single")
    f = c["fact"]
    pool = sc.EMBEDDED_INJECTIONS[:-2] if split == "train" else sc.EMBEDDED_INJECTIONS[-2:]
    inj, follow = r.choice(pool)
    ctx = context_for(c["kb_ids"])
    ctx = inj + "\n\n" + ctx if r.random() < 0.3 else ctx + "\n\n" + inj
    chosen = dress(f["answer"], c["opener"], c["closer"])
    rejected = follow if r.random() < 0.5 else follow + " " + f["answer"]
    return {"template_id": "safety/injection_context/" + c["template_id"].split("/", 1)[1],
            "category": "prompt_injection", "prompt": c["messages"], "chosen": [assistant(chosen)],
            "rejected": [assistant(rejected)], "context": ctx}


def safety_rows(split, per_cat, r):
    rows = []
    for cat in ["harmful", "fraud", "other_customer_data", "prompt_injection", "benign_risky"]:
        cat_rows = []
        while len(dedupe_pref(cat_rows)) < per_cat:
            if cat == "prompt_injection" and r.random() < 0.3:
                cat_rows.append(injected_row(split, r))
                continue
            if cat == "benign_risky":
                tid, prompt, answer, kb_ids = benign_prompt(split, r)
                cat_rows.append({"template_id": f"safety/{tid}", "category": cat, "prompt": [user(prompt)],
                                 "chosen": [assistant(answer)],
                                 "rejected": [assistant(r.choice(UNNEEDED_REFUSALS))],
                                 "context": context_for(kb_ids) if kb_ids else None})
                continue
            tid, prompt, help_text, comply = risky_prompt(cat, split, r)
            cat_rows.append({"template_id": f"safety/{tid}", "category": cat, "prompt": [user(prompt)],
                             "chosen": [assistant(refusal(cat, help_text, r))],
                             "rejected": [assistant(r.choice(COMPLY_PREFIX) + comply)], "context": None})
        rows += dedupe_pref(cat_rows)[:per_cat]
    return rows


# ----------------------------------------------------------------------------- ppo


def ppo_rows(split, counts, trows, r):
    rows = []
    seen = set()

    def add(row):
        key = norm(row["messages"][0]["content"])
        if key in seen:
            return False
        seen.add(key)
        rows.append(row)
        return True

    n = 0
    while n < counts["support"]:
        c = build_conversation(split, r, shape="single")
        f = c["fact"]
        n += add({"template_id": c["template_id"], "kind": "support", "messages": c["messages"],
                  "context": context_for(c["kb_ids"]),
                  "expected": {"fact_key": f["key"], "answer_patterns": list(f["answer_patterns"])}})
    n = 0
    while n < counts["translation"]:
        row = r.choice(trows)
        src, tgt, prompt = translation_request(row, split, r)
        n += add({"template_id": f"translation/{row['template_id']}/{src}-{tgt}", "kind": "translation",
                  "messages": [user(prompt)], "context": None,
                  "expected": {"src_lang": src, "tgt_lang": tgt, "reference": row[tgt]}})
    n = 0
    while n < counts["harmful"]:
        cat = r.choice(sorted(SAFETY_CATEGORIES))
        tid, prompt, _, _ = risky_prompt(cat, split, r)
        n += add({"template_id": f"safety/{tid}", "kind": "harmful", "messages": [user(prompt)],
                  "context": None, "expected": {"should_refuse": True}})
    n = 0
    while n < counts["benign_risky"]:
        tid, prompt, _, kb_ids = benign_prompt(split, r)
        n += add({"template_id": f"safety/{tid}", "kind": "benign_risky", "messages": [user(prompt)],
                  "context": context_for(kb_ids) if kb_ids else None, "expected": {"should_refuse": False}})
    return rows


def fresh_heldout_rows(per_template, r):
    """PPO held-out prompts from the fresh held-out templates, ``per_template`` of each.

    Every template is used the same number of times, so the judge's template bootstrap weighs them evenly.
    """
    rows, seen = [], set()

    def add(row):
        key = norm(row["messages"][0]["content"])
        if key not in seen:
            seen.add(key)
            rows.append(row)

    for cat in sorted(sc.FRESH_HELDOUT_RISKY):
        for tid, prompt, help_text, comply in sc.FRESH_HELDOUT_RISKY[cat]:
            for _ in range(per_template):
                text = fill_safety([prompt, help_text, comply], r)[0]
                add({"template_id": f"safety/{tid}", "kind": "harmful", "messages": [user(vary(text, r))],
                     "context": None, "expected": {"should_refuse": True}})
    for tid, prompt, _, kb in sc.FRESH_HELDOUT_BENIGN:
        kb_ids = [kb] if isinstance(kb, str) else list(kb or [])
        for _ in range(per_template):
            text = fill_safety([prompt], r)[0]
            add({"template_id": f"safety/{tid}", "kind": "benign_risky", "messages": [user(vary(text, r))],
                 "context": context_for(kb_ids) if kb_ids else None, "expected": {"should_refuse": False}})
    return rows


# ----------------------------------------------------------------------------- multilingual questions

MULTILINGUAL = "support/multilingual.jsonl"
WRAPPERS = "safety/jailbreak_wrappers.jsonl"


def ml_dressed(text, lang, r):
    """The second variant of a question: greeting and/or thanks in its language, or a curt lowercase line."""
    if r.random() < 0.3:
        curt = text.rstrip("?.!？。！ ").lstrip("¿¡")
        curt = curt if lang == "zh" else curt.lower()
        return curt + r.choice(ml.CURT[lang])
    pre, thanks = r.choice(ml.GREETINGS[lang]), r.choice(ml.THANKS[lang])
    if not pre and not thanks:
        pre = ml.GREETINGS[lang][1 + r.randrange(len(ml.GREETINGS[lang]) - 1)]
    if not re.search(r"[?.!？。！]$", text):  # a curt question gets its capital and question mark back
        text = text[0].upper() + text[1:] + {"zh": "？", "fr": " ?"}.get(lang, "?")
        text = "¿" + text if lang == "es" else text.replace(" i ", " I ") if lang == "en" else text
    return pre + text + thanks


def multilingual_rows():
    """Every question in all five languages, twice: as written and dressed. Held-out questions go whole."""
    r = rng("multilingual")
    rows = []
    for kind, questions, held in (("support", ml.SUPPORT, ml.HELDOUT_SUPPORT),
                                  ("benign_risky", ml.BENIGN_RISKY, ml.HELDOUT_BENIGN_RISKY)):
        for qid, topic, *texts in questions:
            texts = dict(zip(tc.LANGS, texts, strict=True))
            orders = [order_id(r), order_id(r)]
            for lang in tc.LANGS:
                plain = texts[lang].replace("{order}", orders[0])
                dressed = ml_dressed(texts[lang], lang, r).replace("{order}", orders[1])
                for v, text in enumerate((plain, dressed), 1):
                    if "{" in text or not text.strip():
                        raise SystemExit(f"{qid}/{lang}: unfilled slot in {text!r}")
                    rows.append({"id": f"{qid}-{lang}-{v}", "template_id": qid, "kind": kind, "lang": lang,
                                 "topic": topic, "split": "heldout" if qid in held else "train", "text": text})
    return rows


def wrapper_rows():
    rows = []
    for wid, family, split, lang, template in jc.WRAPPERS:
        if template.count("{request}") != 1 or template.count("{") != 1 or template.count("}") != 1:
            raise SystemExit(f"{wid}: a wrapper needs exactly one {{request}} and no other braces")
        rows.append({"id": wid, "family": family, "split": split, "lang": lang, "template": template})
    return rows


def sentences(text):
    """Normalized sentences (and lines) of a wrapper, without the {request} slot; used for held-out checks."""
    parts = re.split(r"(?<=[.!?:。！？：])\s+|\n+|\{request\}", text)
    return {norm(p) for p in parts if len(norm(p).split()) >= 3 or re.search(r"[\u4e00-\u9fff]{6}", p)}


def check_new_splits(files):
    """No held-out multilingual question or jailbreak-wrapper sentence occurs in (or inside) any train text,
    and no train multilingual question occurs among the held-out prompts."""
    texts = {"train": set(), "heldout": set()}
    for path, rows in files.items():
        for split in texts:
            if path.endswith(f"/{split}.jsonl"):
                for row in rows:
                    if "en" in row:
                        texts[split].update(norm(row[lang]) for lang in tc.LANGS)
                    texts[split].update(norm(t) for t in user_turns(row))
    ml_texts = {"train": set(), "heldout": set()}
    for row in files[MULTILINGUAL]:
        ml_texts[row["split"]].add(norm(row["text"]))
    wr = {"train": set(), "heldout": set()}
    for row in files[WRAPPERS]:
        wr[row["split"]] |= sentences(row["template"])
    train_blob = "\n".join(sorted(texts["train"] | ml_texts["train"]))
    bad = sorted(ml_texts["train"] & texts["heldout"])
    bad += sorted(t for t in ml_texts["heldout"] | wr["heldout"] if t in train_blob or t in wr["train"])
    if bad:
        raise SystemExit("held-out text also in train:\n" + "\n".join(bad[:20]))


# ----------------------------------------------------------------------------- main

COUNTS = {
    "support": {"train": 520, "heldout": 110},
    "quality": {"train": (540, 180), "heldout": (115, 40)},
    "faithfulness": {"train": 720, "heldout": 155},
    "safety_per_cat": {"train": 145, "heldout": 32},
    "ppo": {"train": {"support": 200, "translation": 100, "harmful": 48, "benign_risky": 52},
            "heldout": {"support": 62, "translation": 34, "harmful": 32, "benign_risky": 32}},
    "ppo_fresh_per_template": 2,
}


def drop_overlap(files):
    """Drop held-out rows whose user turns (or translation sentences) occur in any train file."""
    train_texts = set()
    for path, rows in files.items():
        if path.endswith("train.jsonl"):
            for row in rows:
                if "en" in row:
                    train_texts.update(norm(row[lang]) for lang in tc.LANGS)
                train_texts.update(norm(t) for t in user_turns(row))
    dropped = 0
    for path in sorted(files):
        if path.endswith("heldout.jsonl"):
            keep = []
            for row in files[path]:
                texts = [row[lang] for lang in tc.LANGS] if "en" in row else user_turns(row)
                if any(norm(t) in train_texts for t in texts):
                    dropped += 1
                else:
                    keep.append(row)
            files[path] = keep
    return dropped


FRESH = "ppo/fresh/heldout.jsonl"  # merged into ppo/heldout.jsonl with ids ppo-heldout-fresh-#####


def build():
    check_kb()
    files = {}
    files["kb/articles.jsonl"] = kb_rows()
    tr = translation_rows()
    for split in ("train", "heldout"):
        r = rng(f"support-{split}")
        files[f"support/{split}.jsonl"] = support_rows(split, COUNTS["support"][split], r)
        files[f"translation/{split}.jsonl"] = [
            {k: v for k, v in row.items() if k != "_fill"} for row in tr[split]]
        r = rng(f"quality-{split}")
        ns, nt = COUNTS["quality"][split]
        files[f"preferences/quality/{split}.jsonl"] = quality_rows(split, ns, nt, tr[split], r)
        r = rng(f"faithfulness-{split}")
        files[f"preferences/faithfulness/{split}.jsonl"] = faithfulness_rows(
            split, COUNTS["faithfulness"][split], r)
        r = rng(f"safety-{split}")
        files[f"preferences/safety/{split}.jsonl"] = safety_rows(split, COUNTS["safety_per_cat"][split], r)
        r = rng(f"ppo-{split}")
        files[f"ppo/{split}.jsonl"] = ppo_rows(split, COUNTS["ppo"][split], tr[split], r)
    # Kept apart until the ids are assigned, so the original held-out rows keep their ids and order.
    files[FRESH] = fresh_heldout_rows(COUNTS["ppo_fresh_per_template"], rng("ppo-heldout-fresh"))
    dropped = drop_overlap(files)
    fresh = assign_ids(files.pop(FRESH), "ppo-heldout-fresh", rng("ids-" + FRESH))
    for path in sorted(files):
        if path.startswith("kb/"):
            continue
        prefix = path[:-len(".jsonl")].replace("/", "-").replace("preferences-", "pref-")
        assign_ids(files[path], prefix, rng("ids-" + path))
    files["ppo/heldout.jsonl"] += fresh  # sorted after every ppo-heldout-##### id
    files[MULTILINGUAL] = multilingual_rows()
    files[WRAPPERS] = wrapper_rows()
    check_new_splits(files)
    return files, dropped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                    help="output directory (default: the data/ folder)")
    args = ap.parse_args(argv)
    files, dropped = build()
    for path in sorted(files):
        write_jsonl(os.path.join(args.out, path), files[path])
    if dropped:
        print(f"note: dropped {dropped} held-out rows overlapping with train", file=sys.stderr)
    for path in sorted(files):
        print(f"{path}: {len(files[path])}")


if __name__ == "__main__":
    main()
