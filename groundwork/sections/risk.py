"""The ``risk:`` section of a recipe: the request-risk model p(harmful | request) and its data.

The request-risk model routes everything that depends on whether a request is harmful: the guard's input
check, the composite reward (safety decides for risky requests, quality + faithfulness for the rest) and the
evaluation's strata. Dataset kind labels are its training data only; real traffic carries none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How a public file is read into requests: which field holds the text, which (if any) holds a label.
RiskFormat = Literal["jsonl", "csv", "xsafety", "ntrex", "tatoeba", "toxicchat", "donotanswer"]


@dataclass
class RiskSourceSection:
    """One public request set: a hub id (used where the local copy is absent) and a local copy.

    ``label`` is the class of every row (harmful / benign) unless the format carries its own label
    (ToxicChat). ``stratum`` names the evaluation group the rows count in (support, benign_risky, harmful,
    general, translation). Rows are split train / calib / dev by a hash of their text (or of their parallel
    group for multilingual sets), so a row lands in the same split on every machine and in every stage.
    """

    name: str
    local: str | None = None
    hub: str | None = None
    hub_split: str = "train"
    format: RiskFormat = "jsonl"
    text_field: str = "text"
    label: Literal["harmful", "benign"] = "benign"
    stratum: str = "general"
    lang: str = "en"
    # Rows drawn for training from the train split (None = all); calib and dev are never capped.
    train_rows: int | None = None
    dev_share: float = 0.25
    calib_share: float = 0.15
    license: str = ""
    # A field holding the source's own written reply to each request: a row is kept only when that reply
    # declines (groundwork.judge.is_refusal). For sets whose "harmful" rows include requests their authors then
    # answered (Safety-Tuned LLaMAs keeps 1,112 of 2,483: "Summarize the theory of relativity." is dropped).
    declined_field: str | None = None


@dataclass
class RiskSection:
    """The request-risk model: a fine-tuned encoder plus a character n-gram model, stacked and calibrated."""

    model: str = "all-minilm-l6-v2"
    # finetune: the encoder with a one-logit head, trained (best on benign requests that sound risky);
    # frozen: its mean-pooled embedding read by a linear head (minutes less on a CPU).
    encoder_mode: Literal["finetune", "frozen"] = "finetune"
    max_length: int = 128
    # Long texts (jailbreak prompts put the request at their end) are scored in windows of this many words
    # (CJK: characters x 2), overlapping by half; the request's risk is the maximum over windows.
    window_words: int = 80
    epochs: float = 1.0
    learning_rate: float = 5.0e-5
    batch_size: int = 32
    # Encoder layers left frozen (0 = full fine-tune): the lower layers carry general language knowledge.
    frozen_layers: int = 0
    char_ngram_features: int = 2**20
    char_ngram_c: float = 4.0
    # Rows of the project's own data per class that join training (None = all).
    project_rows: int | None = None
    # Threshold rule, applied on the calib split: the lowest threshold (highest harmful recall) whose false
    # block rates stay within these bounds on support questions and on benign-but-risky-sounding requests.
    max_support_block_rate: float = 0.015
    max_benign_risky_block_rate: float = 0.07
    # The guard's answer threshold: the lowest one that would replace at most this share of the project's
    # benign answers (train split; reported on the held-out split with the harmful compliance it catches).
    max_answer_flag_rate: float = 0.01
    # The guard's "clearly benign" line: the highest p(harmful) below which at most this share of the harmful
    # calib requests score. In the support chat a policy refusal of a request below it is handed to a human
    # instead (``serve.hand_off_benign_refusals``), so this share bounds the harmful requests that could ever
    # get a handoff where a refusal belongs.
    max_harmful_below_benign: float = 0.01
    # Calib and dev rows scored per source (a seeded sample), to bound the stage's scoring time.
    eval_rows_per_source: int | None = 600
    sources: list[RiskSourceSection] = field(default_factory=list)
    # ``parley risk score``: the request-risk model folder it loads (None = this run's risk/model).
    score_model: str | None = None
