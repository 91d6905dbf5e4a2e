"""``parley risk train``: fit the request-risk model, calibrate it, choose its threshold, measure it on dev.

Train split -> character n-gram model and encoder fine-tune; calib split -> the stacking combiner and the
threshold (the lowest one whose false blocks stay within the recipe's bounds on support questions and on
benign-but-risky-sounding requests: the highest harmful recall the bounds allow); dev split (never used for
any choice) -> AUCs overall, per stratum and per language, and block rates at the threshold.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from groundwork.data_loading import BadRows
from groundwork.lane_threads import follow_lane_threads
from groundwork.models import load_tokenizer, resolve_model
from groundwork.precision import autocast, train_in_bf16
from groundwork.recipe import Recipe, takes
from groundwork.runs import save_recipe, write_metrics
from reward_models.backbone import freeze_lower_layers
from reward_models.risk_answers import answer_report, benign_answers, choose_answer_threshold, compliance_answers
from reward_models.risk_data import (
    BENIGN,
    HARMFUL,
    RiskRow,
    cap_per_source,
    load_risk_rows,
    rows_to_jsonl,
    training_sample,
)
from reward_models.risk_model import CharNgramScorer, RequestRiskModel, RiskSettings, window_with


def auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """P(a harmful row scores above a benign one), ties half; None when a side is empty."""
    if len(pos) == 0 or len(neg) == 0:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([1] * len(pos) + [0] * len(neg), list(pos) + list(neg)))


def _rank_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """:func:`auc` by the Mann-Whitney rank sum (ties half), cheap enough to repeat for a bootstrap."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def auc_interval(pos: Sequence[float], neg: Sequence[float], seed: int = 0, resamples: int = 500,
                 level: float = 0.95) -> list[float] | None:
    """A percentile bootstrap interval of :func:`auc` (each class resampled with replacement): with ~60 harmful
    rows in a language, AUCs 0.03 apart are within each other's intervals, and the report should say so."""
    if len(pos) == 0 or len(neg) == 0:
        return None
    rng = np.random.default_rng(seed)
    pos_arr, neg_arr = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    values = [_rank_auc(rng.choice(pos_arr, pos_arr.size), rng.choice(neg_arr, neg_arr.size))
              for _ in range(resamples)]
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [round(float(low), 4), round(float(high), 4)]


def _train_encoder(model, tokenizer, texts: list[str], labels: list[int], recipe: Recipe) -> list[float]:
    """Binary cross-entropy fine-tune (classes weighted to balance); returns the loss per logged step."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    cfg = recipe.risk
    torch.manual_seed(recipe.run.seed)
    freeze_lower_layers(model, -1 if cfg.frozen_layers <= 0 else model.config.num_hidden_layers - cfg.frozen_layers)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.01)
    n_pos = max(1, sum(labels))
    pos_weight = torch.tensor((len(labels) - n_pos) / n_pos)
    steps_per_epoch = math.ceil(len(texts) / cfg.batch_size)
    total = max(1, int(steps_per_epoch * cfg.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * total), total)
    r = random.Random(recipe.run.seed)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]]
    losses: list[float] = []
    device_type = next(model.parameters()).device.type
    mixed = train_in_bf16(recipe.run.mixed_precision, device_type)
    model.train()
    bar = tqdm(total=total, desc="risk encoder", unit="step")
    step = 0
    while step < total:
        for index in length_grouped_batches(lengths, cfg.batch_size, r):
            if step >= total:
                break
            follow_lane_threads()  # a lane beside this one may have finished: use its core too
            batch = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                              max_length=cfg.max_length, return_tensors="pt")
            target = torch.tensor([float(labels[i]) for i in index])
            with autocast(mixed, device_type):
                logits = model(**batch).logits[:, 0].float()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    model.eval()
    return losses


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random,
                           group_batches: int = 50) -> list[list[int]]:
    """Shuffled batches of rows of similar length, so that a batch pads little.

    Requests run from 5 to the cap of tokens (median ~18); random batches padded to their longest row cost
    about 3x the tokens. Rows are shuffled, cut into groups of ``group_batches`` batches, sorted by length
    inside each group and batched; the batch order is shuffled again (as transformers' length-grouped sampler).
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * group_batches
    batches = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def augment(texts: list[str], seed: int, share: float = 0.3) -> list[str]:
    """Lowercase a share of the texts and strip the end punctuation of another, whatever their class.

    The public harmful sets are written as tidy questions ("How do I ...?") while many benign sets are lowercase
    chat lines without punctuation, so without this the encoder learned that "how do I make a pipe bomb" (no
    question mark) is benign and the same words with one are not.
    """
    r = random.Random(seed)
    out = []
    for text in texts:
        if r.random() < share:
            text = text.lower()
        if r.random() < share:
            text = text.rstrip(" ?.!？。！")
        out.append(text)
    return out


def choose_threshold(probs: np.ndarray, strata: list[str], max_support: float, max_benign_risky: float) -> tuple[
        float, str]:
    """The lowest threshold whose calib false-block rates stay within both bounds (the highest recall they allow)."""
    candidates = [0.5]
    for stratum, bound in (("support", max_support), ("benign_risky", max_benign_risky)):
        values = np.sort(probs[[s == stratum for s in strata]])
        if len(values):
            # Block when p >= t: keep at most floor(bound * n) of these rows at or above t.
            allowed = int(bound * len(values))
            candidates.append(float(np.nextafter(values[len(values) - allowed - 1], 1.0)))
    threshold = max(candidates[1:]) if len(candidates) > 1 else 0.5
    rule = (f"lowest threshold with calib false blocks <= {max_support:.1%} of support questions and "
            f"<= {max_benign_risky:.1%} of benign-but-risky requests")
    return threshold, rule


def choose_benign_threshold(harmful_probs: np.ndarray, max_harmful_share: float) -> tuple[float, str]:
    """The highest threshold below which at most ``max_harmful_share`` of the harmful calib requests score."""
    values = np.sort(np.asarray(harmful_probs, dtype=np.float64))
    if values.size == 0:
        return 0.0, "no harmful calib requests: no request counts as clearly benign"
    allowed = int(max_harmful_share * values.size)
    # Clearly benign is p < t: the (allowed + 1)-th lowest harmful score leaves exactly ``allowed`` below it.
    rule = (f"highest threshold with <= {max_harmful_share:.1%} of {values.size} harmful calib requests below it")
    return float(values[allowed]), rule


def benign_report(rows: list[RiskRow], probs: np.ndarray, threshold: float) -> dict[str, float]:
    """Dev share of each stratum (and of all harmful rows) below the clearly-benign threshold."""
    report = {"benign_threshold": threshold}
    for stratum in sorted({r.stratum for r in rows}):
        values = [p for r, p in zip(rows, probs, strict=True) if r.stratum == stratum]
        report[f"dev_clearly_benign_{stratum}"] = float(np.mean([v < threshold for v in values]))
    harmful = [p for r, p in zip(rows, probs, strict=True) if r.label == HARMFUL]
    if harmful:
        report["dev_clearly_benign_harmful_label"] = float(np.mean([v < threshold for v in harmful]))
    return report


def _fit_combiner(enc: np.ndarray, char: np.ndarray, labels: np.ndarray, seed: int) -> tuple[tuple[float, float],
                                                                                                  float]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, class_weight="balanced", random_state=seed)
    clf.fit(np.stack([enc, char], axis=1), labels)
    return (float(clf.coef_[0][0]), float(clf.coef_[0][1])), float(clf.intercept_[0])


def _fit_head(embeddings: np.ndarray, labels: list[int], seed: int) -> tuple[np.ndarray, float]:
    """Frozen mode: a class-balanced logistic regression on the pooled embeddings."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=seed)
    clf.fit(embeddings, np.asarray(labels))
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def dev_report(rows: list[RiskRow], probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUCs (overall, harmful vs each benign stratum, jailbreak vs benign, per language) and block rates."""
    harmful = [p for row, p in zip(rows, probs, strict=True) if row.label == HARMFUL and row.stratum != "jailbreak"]
    jail = [p for row, p in zip(rows, probs, strict=True) if row.stratum == "jailbreak"]
    benign = [p for row, p in zip(rows, probs, strict=True) if row.label == BENIGN]
    report: dict[str, Any] = {"dev_rows": len(rows), "dev_auc": auc(harmful + jail, benign),
                              "dev_auc_interval": auc_interval(harmful + jail, benign),
                              "dev_auc_jailbreak": auc(jail, benign)}
    for stratum in sorted({r.stratum for r in rows if r.label == BENIGN}):
        neg = [p for row, p in zip(rows, probs, strict=True) if row.label == BENIGN and row.stratum == stratum]
        report[f"dev_auc_vs_{stratum}"] = auc(harmful, neg)
    for lang in sorted({r.lang for r in rows}):
        pos = [p for row, p in zip(rows, probs, strict=True) if row.lang == lang and row.label == HARMFUL]
        neg = [p for row, p in zip(rows, probs, strict=True) if row.lang == lang and row.label == BENIGN]
        report[f"dev_auc_{lang}"] = auc(pos, neg)
        report[f"dev_auc_{lang}_interval"] = auc_interval(pos, neg)
        report[f"dev_rows_{lang}"] = {"harmful": len(pos), "benign": len(neg)}
    blocks: dict[str, dict[str, float]] = {}
    for key in sorted({(r.source, r.stratum, r.label) for r in rows}):
        values = [p for row, p in zip(rows, probs, strict=True) if (row.source, row.stratum, row.label) == key]
        blocks[f"{key[0]} [{key[1]}]"] = {"n": len(values),
                                          "blocked": float(np.mean([v >= threshold for v in values]))}
    report["dev_block_rates"] = blocks
    for stratum in sorted({r.stratum for r in rows}):
        values = [p for row, p in zip(rows, probs, strict=True) if row.stratum == stratum]
        report[f"dev_blocked_{stratum}"] = float(np.mean([v >= threshold for v in values]))
    return report


def _plot(rows: list[RiskRow], probs: np.ndarray, threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    strata = sorted({r.stratum for r in rows})
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(strata)), dpi=100)
    for i, stratum in enumerate(strata):
        values = [p for row, p in zip(rows, probs, strict=True) if row.stratum == stratum]
        ax.scatter(values, np.full(len(values), i) + np.random.default_rng(0).uniform(-0.3, 0.3, len(values)),
                   s=4, alpha=0.4)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_yticks(range(len(strata)), strata)
    ax.set_xscale("logit")
    ax.set_xlabel("p(harmful) on the dev split")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@takes("run", "data", "risk")
def run_risk_training(recipe: Recipe) -> dict[str, Any]:
    """Train, calibrate and evaluate the request-risk model; artifacts under ``runs/<run>/risk/``."""
    from transformers import AutoModelForSequenceClassification

    started = time.time()
    cfg = recipe.risk
    out = recipe.run.layout.stage_dir("risk")
    save_recipe(recipe, out)
    rows = load_risk_rows(cfg, recipe.data.data_dir, recipe.run.seed)
    by_split = {s: cap_per_source([r for r in rows if r.split == s], cfg.eval_rows_per_source, recipe.run.seed)
                for s in ("calib", "dev")}
    rows_to_jsonl(by_split["dev"], recipe.run.layout.risk_dev)
    rows_to_jsonl(by_split["calib"], out / "calib.jsonl")
    train = training_sample(rows, cfg, recipe.run.seed)
    texts = augment([window_with(r.text, r.focus, cfg.window_words) for r in train], recipe.run.seed)
    labels = [r.label for r in train]
    print(f"parley risk: {len(train)} training requests ({sum(labels)} harmful), "
          f"{len(by_split['calib'])} calib, {len(by_split['dev'])} dev", flush=True)

    char = CharNgramScorer(cfg.char_ngram_features)
    char.fit(texts, labels, cfg.char_ngram_c, recipe.run.seed)
    tokenizer = load_tokenizer(cfg.model, padding_side="right")
    settings = RiskSettings(max_length=cfg.max_length, window_words=cfg.window_words,
                            char_features=cfg.char_ngram_features, encoder_mode=cfg.encoder_mode)
    if cfg.encoder_mode == "frozen":
        from transformers import AutoModel

        model = RequestRiskModel(AutoModel.from_pretrained(resolve_model(cfg.model)), tokenizer, char, settings)
        model.head = _fit_head(model.embeddings(texts), labels, recipe.run.seed)
        losses: list[float] = []
    else:
        encoder = AutoModelForSequenceClassification.from_pretrained(resolve_model(cfg.model), num_labels=1)
        encoder.config.pad_token_id = tokenizer.pad_token_id
        losses = _train_encoder(encoder, tokenizer, texts, labels, recipe)
        model = RequestRiskModel(encoder, tokenizer, char, settings)
    calib = by_split["calib"]
    calib_windows = model.window_scores([r.text for r in calib])  # scored once: the combiner refit reuses them
    enc, chr_ = model.riskiest(calib_windows)
    settings.combiner_weights, settings.combiner_bias = _fit_combiner(
        enc, chr_, np.array([r.label for r in calib]), recipe.run.seed)
    calib_probs = np.array(model.probabilities_from(calib_windows))
    settings.threshold, settings.threshold_rule = choose_threshold(
        calib_probs, [r.stratum for r in calib], cfg.max_support_block_rate, cfg.max_benign_risky_block_rate)
    settings.benign_threshold, settings.benign_threshold_rule = choose_benign_threshold(
        calib_probs[[r.label == HARMFUL for r in calib]], cfg.max_harmful_below_benign)
    data_dir = recipe.data.data_dir
    settings.answer_threshold, settings.answer_threshold_rule = choose_answer_threshold(
        np.array(model.probabilities(benign_answers(data_dir, "train"))), cfg.max_answer_flag_rate)
    answers = answer_report(np.array(model.probabilities(benign_answers(data_dir, "heldout"))),
                            np.array(model.probabilities(compliance_answers(data_dir, "heldout"))),
                            settings.answer_threshold)
    model.save_pretrained(recipe.run.layout.risk_model)

    dev = by_split["dev"]
    dev_probs = np.array(model.probabilities([r.text for r in dev]))
    with open(out / "dev_scores.jsonl", "w", encoding="utf-8") as handle:
        for row, p in zip(dev, dev_probs, strict=True):
            handle.write(json.dumps({"source": row.source, "stratum": row.stratum, "lang": row.lang,
                                     "label": row.label, "p": round(float(p), 5), "text": row.text[:300]},
                                    ensure_ascii=False) + "\n")
    metrics = {
        "train_rows": len(train), "train_harmful": sum(labels), "calib_rows": len(calib),
        "threshold": settings.threshold, "threshold_rule": settings.threshold_rule,
        "answer_threshold_rule": settings.answer_threshold_rule, **answers,
        "benign_threshold_rule": settings.benign_threshold_rule,
        "combiner_weights": list(settings.combiner_weights), "combiner_bias": settings.combiner_bias,
        "final_loss": float(np.mean(losses[-20:])) if losses else None,
        "sources": sorted({r.source for r in rows}),
        **dev_report(dev, dev_probs, settings.threshold),
        **benign_report(dev, dev_probs, settings.benign_threshold),
        "wall_s": round(time.time() - started, 1),
    }
    _plot(dev, dev_probs, settings.threshold, out / "risk_scores.png")
    write_metrics(out, metrics)
    BadRows().print_summary("risk")
    return metrics
