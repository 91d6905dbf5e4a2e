"""The frozen-prefix replay gives TRL's PPO passes the same logits and gradients as TRL's own passes."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from dialogue.ppo.frozen_prefix import FrozenPrefixCache, frozen_depth  # noqa: E402

PAD, EOS = 0, 2


def _policy(lora_layers: list[int], layers: int = 4):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=PAD, eos_token_id=EOS,
                         bos_token_id=1)
    base = LlamaForCausalLM(config)
    base.requires_grad_(False)
    policy = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"],
                                             layers_to_transform=lora_layers, init_lora_weights=False))
    policy.eval()
    return policy


def _rollout(policy, cache: FrozenPrefixCache, new_tokens: int = 10):
    """A TRL rollout through the patched ``batch_generation``: left-padded prompts, rows that stop early."""
    import trl.experimental.ppo.ppo_trainer as trl_ppo
    from transformers import GenerationConfig

    queries = torch.randint(3, 64, (4, 7), generator=torch.Generator().manual_seed(1))
    queries[0, :3] = PAD
    queries[1, :1] = PAD
    # Many stop tokens, so rows finish at different steps and the rest of each row is padding.
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                              pad_token_id=PAD, eos_token_id=[EOS, *range(40, 52)])
    torch.manual_seed(3)
    query_responses, _ = trl_ppo.batch_generation(policy, queries, 2, PAD, config)
    return queries.shape[1], query_responses


def test_depth_is_the_first_layer_with_an_adapter() -> None:
    assert frozen_depth(_policy([2, 3])) == 2
    assert frozen_depth(_policy([0, 1, 2, 3])) == 0
    policy = _policy([3])
    assert frozen_depth(policy) == 3
    policy.get_base_model().get_input_embeddings().weight.requires_grad_(True)
    assert frozen_depth(policy) == 0


def test_reference_and_policy_logits_match_trl_forward_on_early_stopped_rows() -> None:
    import trl.experimental.ppo.ppo_trainer as trl_ppo

    original_forward = trl_ppo.forward
    policy = _policy([2, 3])
    cache = FrozenPrefixCache(policy)
    with cache.installed():
        context, query_responses = _rollout(policy, cache)
        assert (query_responses[:, context:] == PAD).any(), "no row stopped early: the test would not cover it"
        with torch.no_grad():
            fast_policy = trl_ppo.forward(policy, query_responses, PAD).logits[:, context - 1: -1]
            with policy.disable_adapter():
                fast_reference = trl_ppo.forward(policy, query_responses, PAD).logits[:, context - 1: -1]
        assert cache.stats == {"replayed_rows": 8, "full_rows": 0}
    assert trl_ppo.forward is original_forward
    with torch.no_grad():
        full_policy = original_forward(policy, query_responses, PAD).logits[:, context - 1: -1]
        with policy.disable_adapter():
            full_reference = original_forward(policy, query_responses, PAD).logits[:, context - 1: -1]
    real = (query_responses[:, context:] != PAD)  # the positions TRL does not mask out
    assert torch.allclose(fast_policy[real], full_policy[real], atol=1e-5)
    assert torch.allclose(fast_reference[real], full_reference[real], atol=1e-5)
    assert not torch.allclose(full_policy[real], full_reference[real], atol=1e-3)  # the adapter matters


def test_training_pass_gradients_match_trl_forward() -> None:
    import trl.experimental.ppo.ppo_trainer as trl_ppo
    from transformers import AutoModelForSequenceClassification

    policy = _policy([2, 3])
    value_config = policy.get_base_model().config.__class__.from_dict(policy.get_base_model().config.to_dict())
    value_config.num_hidden_layers, value_config.num_labels = 1, 1
    value = AutoModelForSequenceClassification.from_config(value_config)
    model = trl_ppo.PolicyAndValueWrapper(policy, value)
    original_forward = trl_ppo.forward

    def loss_and_grads(forward, query_responses, context, rows):
        model.zero_grad()
        output, values = forward(model, query_responses[rows], PAD)
        logits = output.logits[:, context - 1: -1]
        logprobs = torch.log_softmax(logits, -1).gather(-1, query_responses[rows, context:, None]).squeeze(-1)
        mask = query_responses[rows, context:] != PAD
        loss = -(logprobs * mask).sum() + values[:, context - 1: -1].pow(2).sum()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    cache = FrozenPrefixCache(policy)
    rows = torch.tensor([3, 0])  # a minibatch in shuffled order, as TRL draws it
    with cache.installed():
        context, query_responses = _rollout(policy, cache)
        fast_loss, fast_grads = loss_and_grads(trl_ppo.forward, query_responses, context, rows)
        assert cache.stats["replayed_rows"] == 2
    full_loss, full_grads = loss_and_grads(original_forward, query_responses, context, rows)
    assert torch.allclose(fast_loss, full_loss, rtol=1e-5)
    assert fast_grads.keys() == full_grads.keys() and any("lora_" in n for n in fast_grads)
    for name, grad in full_grads.items():
        assert torch.allclose(fast_grads[name], grad, atol=1e-5), name


def test_rows_that_were_not_generated_run_the_full_model() -> None:
    import trl.experimental.ppo.ppo_trainer as trl_ppo

    policy = _policy([2, 3])
    cache = FrozenPrefixCache(policy)
    with cache.installed():
        context, query_responses = _rollout(policy, cache)
        other = query_responses.clone()
        other[:, context] = 5  # a response no rollout produced
        with torch.no_grad():
            fast = trl_ppo.forward(policy, other, PAD).logits[:, context - 1: -1]
        assert cache.stats == {"replayed_rows": 0, "full_rows": 4}
    with torch.no_grad():
        full = trl_ppo.forward(policy, other, PAD).logits[:, context - 1: -1]
    assert torch.allclose(fast, full, atol=1e-5)


def test_nothing_is_patched_when_no_layer_is_frozen() -> None:
    import trl.experimental.ppo.ppo_trainer as trl_ppo

    policy = _policy([0, 1, 2, 3])
    original = trl_ppo.forward, trl_ppo.batch_generation
    with FrozenPrefixCache(policy).installed() as cache:
        assert not cache.enabled
        assert (trl_ppo.forward, trl_ppo.batch_generation) == original
