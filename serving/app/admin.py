"""The operator console's Feedback view: counts, like ratio per day, recent feedback, and the preference export.

The console is its own Gradio app behind the operator login (``--admin-auth``); these handlers also refuse a
request without a logged-in operator, so the data stays closed even if a handler were reached some other way.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from serving.feedback.export import export_preferences

RECENT_ROWS = 20
RECENT_COLUMNS = ["when", "mode", "like", "rating", "answer", "correction"]
# Export files carry this prefix; the server refuses to hand such a file out anywhere but the operator app.
EXPORT_PREFIX = "parley-operator-export-"


def _short(text: str | None, n: int = 120) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def operator_of(request: gr.Request | None, operators: frozenset[str]) -> str:
    """The logged-in operator's name; refuses a request without one (or with a name that is not an operator)."""
    username = getattr(request, "username", None) if request is not None else None
    if not username or str(username) not in operators:
        raise gr.Error("Log in as an operator to use the operator console.")
    return str(username)


class Admin:
    """Reads the store for the Feedback view; exports preference pairs to a temporary file for download."""

    def __init__(self, store: Any, db_url: str, operators: frozenset[str]) -> None:
        if not operators:
            raise ValueError("the operator console needs at least one operator login")
        self.store = store
        self.db_url = db_url
        self.operators = operators

    def _check(self, request: gr.Request | None) -> str:
        return operator_of(request, self.operators)

    @staticmethod
    def counts_markdown(stats: dict[str, Any]) -> str:
        votes = stats["likes"] + stats["dislikes"]
        ratio = "n/a" if not votes else f"{stats['likes'] / votes:.0%}"
        mean = "n/a" if stats["mean_rating"] is None else f"{stats['mean_rating']:.2f}"
        lines = [[("Conversations", stats["conversations"]), ("Messages", stats["messages"]),
                  ("Feedback", stats["feedback"])],
                 [("Likes", stats["likes"]), ("Dislikes", stats["dislikes"]), ("Like ratio", ratio)],
                 [("Ratings", f"{stats['ratings']} (mean {mean})"), ("Corrections", stats["corrections"]),
                  ("Open handoffs", stats["handoffs_open"])]]
        return "  \n".join(" · ".join(f"**{name}:** {value}" for name, value in line) for line in lines)

    @staticmethod
    def ratio_figure(stats: dict[str, Any]):
        """Like ratio per UTC day (markers, so a single day is visible too), with the vote count per point."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        days = [d for d in stats["per_day"] if d["like_ratio"] is not None]
        fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100)
        if days:
            xs = [d["day"] for d in days]
            ax.plot(xs, [d["like_ratio"] for d in days], marker="o", color="#f97316")
            for x, d in zip(xs, days, strict=True):
                ax.annotate(str(d["likes"] + d["dislikes"]), (x, d["like_ratio"]), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no likes or dislikes yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("like ratio")
        ax.set_title("Like ratio per day (labels: votes)", fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        plt.close(fig)
        return fig

    def recent_frame(self) -> pd.DataFrame:
        rows = []
        for r in self.store.recent(RECENT_ROWS):
            like = "" if r["like"] is None else ("like" if r["like"] else "dislike")
            rows.append({"when": r["updated_at"].strftime("%Y-%m-%d %H:%M"), "mode": r["mode"], "like": like,
                         "rating": "" if r["rating"] is None else str(r["rating"]), "answer": _short(r["content"]),
                         "correction": _short(r["correction"])})
        return pd.DataFrame(rows, columns=RECENT_COLUMNS)

    def refresh(self, request: gr.Request) -> tuple[str, Any, pd.DataFrame]:
        self._check(request)
        stats = self.store.stats()
        return self.counts_markdown(stats), self.ratio_figure(stats), self.recent_frame()

    def export(self, request: gr.Request) -> tuple[str, str]:
        """Write preference JSONL (the ``parley feedback export`` format) and hand it to the download widget."""
        self._check(request)
        folder = Path(tempfile.mkdtemp(prefix="parley-export-"))
        out = folder / f"{EXPORT_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        n = export_preferences(self.db_url, out)
        return str(out), f"Exported {n} preference pairs."
