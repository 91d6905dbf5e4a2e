"""Every recipe section, one module per section, named as its YAML key (``ppo:`` -> ``sections.ppo``)."""

from __future__ import annotations

from groundwork.sections.data import DataSection, SourceSection
from groundwork.sections.evaluate import EvalModelSection, EvaluateSection
from groundwork.sections.generate import GenerateSection
from groundwork.sections.lora import LoraSection
from groundwork.sections.pipeline import PipelineSection
from groundwork.sections.ppo import PPOSection, PromptSourceSection
from groundwork.sections.quantize import QuantizeSection
from groundwork.sections.reward import CompositeSection, RewardSection, RewardSourceSection
from groundwork.sections.risk import RiskSection, RiskSourceSection
from groundwork.sections.run import PolicySection, RunSection
from groundwork.sections.serve import ServeSection
from groundwork.sections.sft import SFTSection
from groundwork.sections.soup import SoupSection

__all__ = [
    'CompositeSection',
    'DataSection',
    'EvalModelSection',
    'EvaluateSection',
    'GenerateSection',
    'LoraSection',
    'PPOSection',
    'PipelineSection',
    'PolicySection',
    'PromptSourceSection',
    'QuantizeSection',
    'RewardSection',
    'RewardSourceSection',
    'RiskSection',
    'RiskSourceSection',
    'RunSection',
    'SFTSection',
    'ServeSection',
    'SoupSection',
    'SourceSection',
]
