"""Prefix caching in the torch engine: the prompt framing is prefilled once, answers stay the same."""

from __future__ import annotations

import pytest
import torch

from serving.engines import load_engine
from serving.engines.prefix_cache import MIN_PREFIX_TOKENS, PrefixKVCache, common_prefix_length
from serving.engines.torch_engine import TorchEngine

TINY = "tiny-random-llama"
REQUESTS = [
    ("Where is my order? It was due on Monday.", "Orders ship within 2 business days."),
    ("Can I return a damaged kettle?", "Damaged items: report them within 7 days with a photo."),
    ("Translate to French: thank you for waiting", None),
]


@pytest.fixture(scope="module")
def engines():
    cached = load_engine("torch", TINY, threads=2, system_prompt="You are the support assistant of a shop.")
    plain = TorchEngine(cached.model, cached.tokenizer, threads=2, system_prompt=cached.system_prompt,
                        prefix_cache=False)
    yield cached, plain
    cached.close()


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"temperature": 1.0, "seed": 5}])
def test_answers_with_the_cached_framing_equal_answers_without(engines, sampling):
    cached, plain = engines
    for question, kb in REQUESTS:
        with_cache = cached.generate(question, context=kb, max_tokens=12, **sampling)
        assert cached.last_stats.prompt_tokens > MIN_PREFIX_TOKENS
        assert with_cache == plain.generate(question, context=kb, max_tokens=12, **sampling)
    assert plain.prefix_cache is None


def test_every_request_hits_one_of_the_two_framings(engines):
    cached, _ = engines
    openings = cached.framing_openings()
    assert len(openings) == 2 and all(len(o) >= MIN_PREFIX_TOKENS for o in openings)
    with_kb = cached.tokenizer(cached.render(REQUESTS[0][0], context=REQUESTS[0][1]),
                               add_special_tokens=False)["input_ids"]
    assert max(len(o) for o in openings) == common_prefix_length(openings[1], with_kb)  # KB framing: the longer
    hits = cached.prefix_cache.hits if cached.prefix_cache else 0
    for question, kb in REQUESTS:
        cached.generate(question, context=kb, max_tokens=2)
    assert cached.prefix_cache.hits == hits + len(REQUESTS)
    assert cached.prefix_cache.misses == 0


def test_a_lookup_hands_out_a_copy_and_only_true_prefixes_match(engines):
    cached, _ = engines
    store = PrefixKVCache(cached.model)
    ids = list(range(5, 45))
    store.add(ids[:8])  # too short to be worth caching
    assert len(store) == 0
    store.add(ids[:30])
    copy_, length = store.lookup(ids)
    assert length == 30 and copy_.get_seq_length() == 30
    cached.model(input_ids=torch.tensor([ids[30:]]), cache=copy_, use_cache=True)
    assert copy_.get_seq_length() == 40
    assert store.lookup(ids)[0].get_seq_length() == 30  # the held entry did not grow
    assert store.lookup(ids[:30]) is None  # nothing left to prefill: generate needs one id
    assert store.lookup([4] + ids) is None
    assert (store.hits, store.misses) == (2, 2)


def test_a_repeated_opening_is_reused_whole_and_the_answer_is_unchanged(engines):
    cached, plain = engines
    kb = "Refunds: we refund within 5 business days of receiving the return, to the original payment method."
    cached.generate("When do I get my refund?", context=kb, max_tokens=4)
    store = cached.prefix_cache
    prompt = cached.prepare("Is the refund paid to my card?", context=kb)
    assert prompt.text.startswith(prompt.opening) and "refund paid" not in prompt.opening
    ids = cached.tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    _, held = store.lookup(ids)  # the first question's opening (framing + this passage), not just the framing
    assert held > max(len(o) for o in cached.framing_openings())
    assert len(ids) - held < 20  # only the new question is left to prefill
    answer = cached.generate("Is the refund paid to my card?", context=kb, max_tokens=12, temperature=0.0)
    assert answer == plain.generate("Is the refund paid to my card?", context=kb, max_tokens=12, temperature=0.0)


PASSAGES = [
    "Refunds: we refund within 5 business days of receiving the return, to the original payment method.",
    "Damaged items: report them within 7 days with a photo and we send a replacement or a refund.",
    "Shipping: orders leave the warehouse within 2 business days; tracking arrives by e-mail.",
]


@pytest.fixture()
def with_passages(engines):
    cached, plain = engines
    engine = TorchEngine(cached.model, cached.tokenizer, threads=2, system_prompt=cached.system_prompt)
    engine.cache_passages(PASSAGES, budget_mb=64)
    engine.warm_up()
    yield engine, plain
    engine.close()


def _held_length(engine: TorchEngine, question: str, context: list[str]) -> int:
    ids = engine.tokenizer(engine.render(question, context=context), add_special_tokens=False)["input_ids"]
    hit = engine.prefix_cache.lookup(ids)
    return hit[1] if hit else 0


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"temperature": 1.0, "seed": 3}])
def test_each_kb_article_as_first_passage_is_prefilled_at_start_and_answers_stay_the_same(with_passages,
                                                                                          sampling):
    engine, plain = with_passages
    framing = max(len(o) for o in engine.framing_openings())
    assert len(engine.prefix_cache) == 2 + len(PASSAGES)  # both framings, then one opening per article
    for first in PASSAGES:
        context = [first, "Opening hours: the support desk answers from 8:00 to 20:00 on weekdays."]
        opening = engine.passage_opening(first)
        assert len(opening) > framing
        assert _held_length(engine, "Where is my parcel?", context) == len(opening)  # before any request
        answer = engine.generate("Where is my parcel?", context=context, max_tokens=12, **sampling)
        assert answer == plain.generate("Where is my parcel?", context=context, max_tokens=12, **sampling)


def test_a_passage_opening_holds_only_its_own_positions_and_the_budget_caps_them(engines):
    cached, _ = engines
    engine = TorchEngine(cached.model, cached.tokenizer, threads=2, system_prompt=cached.system_prompt)
    engine.warm_up()
    framing_bytes = engine.prefix_cache.pinned_bytes
    framing = max(len(o) for o in engine.framing_openings())
    engine.cache_passages(PASSAGES[:1], budget_mb=64)  # the store exists already: added now
    one = engine.prefix_cache.pinned_bytes - framing_bytes
    per_token = engine.prefix_cache.bytes_per_token
    assert one == per_token * (len(engine.passage_opening(PASSAGES[0])) - framing)
    engine.clear_prefix_cache()
    engine.cache_passages(PASSAGES, budget_mb=2.5 * one / 2**20)  # room for two of the three
    engine.generate("Hello?", max_tokens=1)  # the store is rebuilt on the first request after a clear
    assert len(engine.prefix_cache) == 2 + 2
    assert engine.prefix_cache.pinned_bytes - framing_bytes <= 2.5 * one
    assert _held_length(engine, "Where is my parcel?", [PASSAGES[2], PASSAGES[0]]) == framing
    engine.cache_passages(PASSAGES, budget_mb=0)
    engine.clear_prefix_cache()
    engine.generate("Hello?", max_tokens=1)
    assert len(engine.prefix_cache) == 2
    engine.close()


def test_request_openings_are_dropped_oldest_first_and_the_pinned_ones_stay(with_passages):
    engine, plain = with_passages
    store = engine.prefix_cache
    store.max_entries = 2
    questions = ["Where is my parcel?", "Can I get a refund?", "Is my kettle covered?"]
    for question, second in zip(questions, ["Opening hours: 8:00 to 20:00.", "Gift cards: never expire.",
                                            "Warranty: two years on electric appliances."], strict=True):
        engine.generate(question, context=[PASSAGES[1], second], max_tokens=2)
    assert len(store) == 2 + len(PASSAGES) + 2  # the first request's opening was dropped
    context = [PASSAGES[1], "Warranty: two years on electric appliances."]
    held = _held_length(engine, "Does it cover the lid?", context)
    assert held > len(engine.passage_opening(PASSAGES[1]))  # the latest request's opening, joined to its parent
    answer = engine.generate("Does it cover the lid?", context=context, max_tokens=12, temperature=0.0)
    assert answer == plain.generate("Does it cover the lid?", context=context, max_tokens=12, temperature=0.0)
    assert _held_length(engine, "Where is my parcel?", [PASSAGES[1], "Opening hours: 8:00 to 20:00."]) \
        == len(engine.passage_opening(PASSAGES[1]))


def test_a_model_with_sliding_window_layers_keeps_whole_openings_and_answers_the_same(tmp_path):
    from arch_fixtures import build_tiny_model

    folder = build_tiny_model("gemma2", tmp_path / "gemma2")
    cached = load_engine("torch", str(folder), threads=2, system_prompt="You are the support assistant of a shop.")
    plain = TorchEngine(cached.model, cached.tokenizer, threads=2, system_prompt=cached.system_prompt,
                        prefix_cache=False)
    try:
        cached.cache_passages(PASSAGES, budget_mb=64)
        cached.warm_up()
        store = cached.prefix_cache
        assert not store.segmented and store.pinned_entries == 2 + len(PASSAGES)
        for question, first in zip(("Where is my parcel?", "Can I get a refund?"), PASSAGES, strict=False):
            context = [first, PASSAGES[2]]
            assert _held_length(cached, question, context) == len(cached.passage_opening(first))
            for _ in range(2):  # the second time the request's own opening is held too
                answer = cached.generate(question, context=context, max_tokens=8, temperature=0.0)
                assert answer == plain.generate(question, context=context, max_tokens=8, temperature=0.0)
    finally:
        cached.close()
