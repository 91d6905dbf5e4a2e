"""The request-risk model: p(harmful | request), calibrated, with a threshold chosen by a stated rule.

Two scorers, stacked: a fine-tuned sentence encoder (MiniLM by default: English semantics, e.g. a benign
request that merely sounds risky) and a character n-gram linear model (hashing features, so no vocabulary:
it reads Chinese, which MiniLM's vocabulary maps mostly to [UNK], and any Latin-script language). A
two-weight logistic combiner fitted on the calib split turns their logits into one probability. Long texts
are scored in overlapping word windows and the request's risk is the maximum: a jailbreak prompt puts the
harmful part anywhere, often at its end.

The encoder is either fine-tuned with a one-logit head (``encoder_mode: finetune``) or kept frozen, its
mean-pooled sentence embedding read by a linear head (``frozen``: a fraction of the training time, weaker on
benign requests that sound risky). Saved as a folder: ``encoder/`` (``save_pretrained`` model + tokenizer),
``encoder_head.npz`` (frozen mode), ``char_ngram.npz`` (idf and weights: plain arrays, no pickle) and
``risk.json`` (settings, combiner, threshold and the rule that chose it).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from groundwork.errors import ModelNotFoundError
from groundwork.lane_threads import follow_lane_threads

CONFIG_FILE = "risk.json"
CHAR_FILE = "char_ngram.npz"
ENCODER_DIR = "encoder"
HEAD_FILE = "encoder_head.npz"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def text_windows(text: str, window_words: int) -> list[str]:
    """Overlapping windows of ``window_words`` words (half overlap); CJK text is cut by characters."""
    text = text.strip()
    if len(_CJK.findall(text)) > len(text) / 3:
        size = window_words * 2
        if len(text) <= size:
            return [text]
        step = size // 2
        return [text[i:i + size] for i in range(0, len(text) - step, step)]
    words = text.split()
    if len(words) <= window_words:
        return [text]
    step = max(1, window_words // 2)
    return [" ".join(words[i:i + window_words]) for i in range(0, len(words) - step, step)]


def window_with(text: str, focus: str, window_words: int) -> str:
    """The window of ``text`` around ``focus`` (a request inside a wrapper), for training on long prompts."""
    windows = text_windows(text, window_words)
    if len(windows) == 1 or not focus:
        return windows[0]
    probe = " ".join(focus.split()[:6])
    return next((w for w in windows if probe in w), windows[-1])


@dataclass
class RiskSettings:
    """What ``risk.json`` stores besides the arrays: how to rebuild and combine the two scorers."""

    max_length: int = 128
    window_words: int = 80
    char_features: int = 2**20
    combiner_weights: tuple[float, float] = (1.0, 1.0)
    combiner_bias: float = 0.0
    threshold: float = 0.5
    threshold_rule: str = ""
    encoder_mode: str = "finetune"
    # The guard's output check: an answer whose own text scores at or above this is harmful compliance
    # (None: the request threshold; models saved before it existed).
    answer_threshold: float | None = None
    answer_threshold_rule: str = ""
    # Requests scoring below this are clearly benign: a refusal of one is a policy mistake (None: not chosen;
    # models saved before it existed).
    benign_threshold: float | None = None
    benign_threshold_rule: str = ""


class CharNgramScorer:
    """Hashed character 1-4-grams (word-bounded), TF-IDF weighted, L2-normalized, then a linear logit."""

    def __init__(self, n_features: int, idf: np.ndarray | None = None, coef: np.ndarray | None = None,
                 intercept: float = 0.0) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(1, 4), n_features=n_features,
                                            alternate_sign=False, norm=None, preprocessor=normalize)
        self.idf = idf
        self.coef = coef
        self.intercept = intercept

    def features(self, texts: Sequence[str]):
        from sklearn.preprocessing import normalize as l2

        counts = self.vectorizer.transform(list(texts))
        counts.data = np.log1p(counts.data)
        if self.idf is not None:
            counts = counts.multiply(self.idf).tocsr()
        return l2(counts)

    def fit(self, texts: Sequence[str], labels: Sequence[int], c: float, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        counts = self.vectorizer.transform(list(texts))
        df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float32)
        self.idf = (np.log((1 + counts.shape[0]) / (1 + df)) + 1.0).astype(np.float32)
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
        clf.fit(self.features(texts), np.asarray(labels))
        self.coef = clf.coef_[0].astype(np.float32)
        self.intercept = float(clf.intercept_[0])

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.features(texts) @ self.coef).ravel() + self.intercept

    def save(self, path: Path) -> None:
        np.savez_compressed(path, idf=self.idf, coef=self.coef, intercept=np.float32(self.intercept))

    @classmethod
    def load(cls, path: Path, n_features: int) -> CharNgramScorer:
        arrays = np.load(path)
        return cls(n_features, arrays["idf"], arrays["coef"], float(arrays["intercept"]))


@dataclass
class WindowScores:
    """Per-window logits of a list of texts: ``owner[j]`` is the text window ``j`` came from."""

    encoder: np.ndarray
    char: np.ndarray
    owner: np.ndarray
    texts: int


class RequestRiskModel:
    """p(harmful | request text or conversation); :meth:`is_risky` applies the stored threshold."""

    def __init__(self, encoder: Any, tokenizer: Any, char: CharNgramScorer, settings: RiskSettings,
                 head: tuple[np.ndarray, float] | None = None) -> None:
        self.encoder = encoder.eval() if encoder is not None else None
        self.tokenizer = tokenizer
        self.char = char
        self.settings = settings
        self.head = head  # frozen mode: (weights over the pooled embedding, bias)

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @classmethod
    def from_pretrained(cls, path: str | Path) -> RequestRiskModel:
        """Load a saved model folder (``runs/<run>/risk/model`` or any copy of it)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise ModelNotFoundError(f"no request-risk model at {path} (expected {CONFIG_FILE}; run "
                                     f"`parley risk train` or `parley pipeline --only risk` first)")
        raw = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        raw["combiner_weights"] = tuple(raw["combiner_weights"])
        settings = RiskSettings(**raw)
        tokenizer = AutoTokenizer.from_pretrained(path / ENCODER_DIR)
        char = CharNgramScorer.load(path / CHAR_FILE, settings.char_features)
        if settings.encoder_mode == "frozen":
            from transformers import AutoModel

            arrays = np.load(path / HEAD_FILE)
            head = (arrays["coef"], float(arrays["intercept"]))
            return cls(AutoModel.from_pretrained(path / ENCODER_DIR), tokenizer, char, settings, head)
        encoder = AutoModelForSequenceClassification.from_pretrained(path / ENCODER_DIR)
        return cls(encoder, tokenizer, char, settings)

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(path / ENCODER_DIR)
        self.tokenizer.save_pretrained(path / ENCODER_DIR)
        self.char.save(path / CHAR_FILE)
        if self.head is not None:
            np.savez_compressed(path / HEAD_FILE, coef=self.head[0], intercept=np.float32(self.head[1]))
        (path / CONFIG_FILE).write_text(json.dumps(asdict(self.settings), indent=2) + "\n", encoding="utf-8")

    @torch.no_grad()
    def embeddings(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Mean-pooled, L2-normalized sentence embeddings of the (frozen) encoder, as sentence-transformers does."""
        out = np.zeros((len(texts), self.encoder.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            follow_lane_threads()
            batch = self.tokenizer([texts[i] for i in index], padding=True, truncation=True,
                                   max_length=self.settings.max_length, return_tensors="pt")
            hidden = self.encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)
            out[index] = pooled.float().numpy()
        return out

    @torch.no_grad()
    def encoder_logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if self.head is not None:
            return self.embeddings(texts, batch_size) @ self.head[0] + self.head[1]
        out = np.zeros(len(texts), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            follow_lane_threads()
            batch = self.tokenizer([texts[i] for i in index], padding=True, truncation=True,
                                   max_length=self.settings.max_length, return_tensors="pt")
            logits = self.encoder(**batch).logits[:, 0].float().numpy()
            out[index] = logits
        return out

    def window_scores(self, texts: Sequence[str]) -> WindowScores:
        """(encoder, char) logits of every window of every text: the expensive part, computed once per text."""
        windows, owner = [], []
        for i, text in enumerate(texts):
            for window in text_windows(text or "", self.settings.window_words):
                windows.append(window)
                owner.append(i)
        return WindowScores(self.encoder_logits(windows), self.char.logits(windows), np.array(owner, dtype=np.int64),
                            len(texts))

    def riskiest(self, scores: WindowScores) -> tuple[np.ndarray, np.ndarray]:
        """(encoder, char) logits of each text's riskiest window under the current combiner weights."""
        combined = self.settings.combiner_weights[0] * scores.encoder + self.settings.combiner_weights[1] * scores.char
        best_enc = np.full(scores.texts, -np.inf, dtype=np.float32)
        best_char = np.full(scores.texts, -np.inf, dtype=np.float32)
        best = np.full(scores.texts, -np.inf, dtype=np.float32)
        for j, i in enumerate(scores.owner):
            if combined[j] > best[i]:
                best[i], best_enc[i], best_char[i] = combined[j], scores.encoder[j], scores.char[j]
        return best_enc, best_char

    def probabilities_from(self, scores: WindowScores) -> list[float]:
        """Calibrated p(harmful) per text, from its windows' logits (so refitting the combiner costs no rescoring)."""
        enc, char = self.riskiest(scores)
        w = self.settings.combiner_weights
        z = w[0] * enc + w[1] * char + self.settings.combiner_bias
        return [1.0 / (1.0 + math.exp(-float(v))) for v in z]

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """Calibrated p(harmful) per text."""
        if not texts:
            return []
        return self.probabilities_from(self.window_scores(texts))

    def probability(self, request: str | Sequence[dict[str, str]]) -> float:
        """p(harmful) of one request: a text, or a conversation (its user turns, the latest weighing most)."""
        return self.probabilities([request_text(request)])[0]

    def is_risky(self, probability: float) -> bool:
        return probability >= self.settings.threshold

    @property
    def answer_threshold(self) -> float:
        """Where an answer's own risk makes it harmful compliance (chosen on answers, see ``risk_answers``)."""
        stored = self.settings.answer_threshold
        return self.settings.threshold if stored is None else stored

    @property
    def benign_threshold(self) -> float | None:
        """Below this p(harmful) a request is clearly benign (None for models saved without one)."""
        return self.settings.benign_threshold


def request_text(request: str | Sequence[dict[str, str]]) -> str:
    """The text the risk model reads: a string as is; for a conversation, its latest user turn.

    Earlier user turns are prepended (up to two) so a request split over turns is still seen whole.
    """
    if isinstance(request, str):
        return request
    users = [m.get("content", "") for m in request if m.get("role") == "user"]
    return "\n".join(users[-3:]) if users else ""
