"""The operator console: a second Gradio app, mounted at ``/operator`` only when operator logins are configured.

Views: **Tickets** (open handoff tickets with their redacted conversation; close one with a note) and
**Feedback** (counts, like ratio per day, recent feedback, preference export). The customer chat at ``/``
has none of these endpoints. Gradio keeps a separate login (its own cookie name and token table) per mounted
app, so a chat login does not open the console and an operator login does not open the chat. Every handler
checks the logged-in operator again (:func:`~serving.app.admin.operator_of`).

Named endpoints for ``gradio_client`` (``Client(f"{url}/operator", auth=(user, password))``):
``/admin_refresh``, ``/admin_export``, ``/tickets_refresh``, ``/ticket_show``, ``/ticket_close``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import gradio as gr
import pandas as pd

from serving.app.admin import EXPORT_PREFIX, Admin, _short, operator_of
from serving.feedback import tickets
from serving.feedback.store import FeedbackValueError, UnknownRecordError

OPERATOR_PATH = "/operator"
TITLE = "Parley operator console"
TICKET_COLUMNS = ["ticket", "opened (UTC)", "mode", "reason", "messages", "last customer message"]


class TicketDesk:
    """Handlers of the Tickets view; ``on_close`` is told about each closed ticket (for /metrics)."""

    def __init__(self, store: Any, operators: frozenset[str], on_close: Any = None) -> None:
        self.store = store
        self.operators = operators
        self.on_close = on_close

    @staticmethod
    def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
        out = []
        for t in rows:
            customer = [m["content"] for m in t["transcript"] if m.get("role") == "user"]
            out.append({"ticket": t["id"], "opened (UTC)": t["created_at"].strftime("%Y-%m-%d %H:%M"),
                        "mode": t["mode"], "reason": _short(t["reason"], 80), "messages": len(t["transcript"]),
                        "last customer message": _short(customer[-1] if customer else "")})
        return pd.DataFrame(out, columns=TICKET_COLUMNS)

    @staticmethod
    def conversation(ticket: dict[str, Any]) -> list[dict[str, str]]:
        """The transcript as chat bubbles (a system prompt shows as a marked assistant bubble)."""
        bubbles = []
        for m in ticket["transcript"]:
            role, content = m.get("role"), str(m.get("content", ""))
            if role == "user":
                bubbles.append({"role": "user", "content": content})
            else:
                bubbles.append({"role": "assistant", "content": f"(system) {content}" if role == "system"
                                else content})
        return bubbles

    @staticmethod
    def header(ticket: dict[str, Any]) -> str:
        line = (f"**Ticket #{ticket['id']}** · {ticket['status']} · {ticket['mode']} · opened "
                f"{ticket['created_at'].strftime('%Y-%m-%d %H:%M')} UTC · reason: {ticket['reason']}")
        if ticket["status"] == "closed" and ticket["closed_by"]:
            line += f"  \nClosed by {ticket['closed_by']}: {ticket['note']}"
        return line

    def _open(self) -> tuple[pd.DataFrame, str]:
        rows = tickets.list_handoffs(self.store)
        return self.frame(rows), f"{len(rows)} open ticket{'s' if len(rows) != 1 else ''}."

    def refresh(self, request: gr.Request) -> tuple[pd.DataFrame, str]:
        operator_of(request, self.operators)
        return self._open()

    def show(self, ticket_id: float | None, request: gr.Request) -> tuple[list[dict[str, str]], str]:
        operator_of(request, self.operators)
        try:
            ticket = tickets.get_handoff(self.store, _ticket_number(ticket_id))
        except (FeedbackValueError, UnknownRecordError) as exc:
            raise gr.Error(str(exc)) from None
        return self.conversation(ticket), self.header(ticket)

    def pick(self, table: pd.DataFrame, event: gr.SelectData,
             request: gr.Request) -> tuple[int, list[dict[str, str]], str]:
        """A click on a row of the open-ticket table selects that ticket."""
        operator_of(request, self.operators)
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        ticket_id = int(table.iloc[int(row)]["ticket"])
        chat, header = self.show(ticket_id, request)
        return ticket_id, chat, header

    def close(self, ticket_id: float | None, note: str,
              request: gr.Request) -> tuple[str, pd.DataFrame, str, list[dict[str, str]], str]:
        operator = operator_of(request, self.operators)
        try:
            closed = tickets.close_handoff(self.store, _ticket_number(ticket_id), note, operator)
        except (FeedbackValueError, UnknownRecordError) as exc:
            raise gr.Error(str(exc)) from None
        if self.on_close is not None:
            self.on_close()
        table, summary = self._open()
        return f"Ticket #{closed['id']} closed. {summary}", table, summary, [], ""


def _ticket_number(value: Any) -> int:
    if value is None or value == "":
        raise FeedbackValueError("choose a ticket (click a row or type its number)")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FeedbackValueError(f"ticket id must be a number, got {value!r}") from None
    if not number.is_integer():
        raise FeedbackValueError(f"ticket id must be a whole number, got {value!r}")
    return int(number)


def _tickets_tab(desk: TicketDesk) -> tuple[gr.Tab, Any]:
    with gr.Tab("Tickets", id="tickets", elem_id="tab-tickets") as tab:
        with gr.Row():
            refresh = gr.Button("Refresh", elem_id="tickets-refresh", scale=0)
            summary = gr.Markdown(elem_id="tickets-summary")
        table = gr.Dataframe(headers=TICKET_COLUMNS, label="Open handoff tickets (click a row)", interactive=False,
                             wrap=True, elem_id="tickets-table",
                             column_widths=["7%", "14%", "8%", "25%", "8%", "38%"])
        with gr.Row():
            ticket_id = gr.Number(label="Ticket #", precision=0, minimum=1, elem_id="ticket-id", scale=1)
            show = gr.Button("Show conversation", elem_id="ticket-show", scale=0)
        header = gr.Markdown(elem_id="ticket-header")
        chat = gr.Chatbot(label="Conversation (personal data redacted)", elem_id="ticket-chat", height=320)
        note = gr.Textbox(label="Resolution note", lines=2, elem_id="ticket-note",
                          placeholder="What was done for the customer")
        close = gr.Button("Close ticket", variant="primary", elem_id="ticket-close")
        status = gr.Markdown(elem_id="ticket-status")
    refresh.click(desk.refresh, None, [table, summary], api_name="tickets_refresh")
    tab.select(desk.refresh, None, [table, summary], api_visibility="private")
    show.click(desk.show, [ticket_id], [chat, header], api_name="ticket_show")
    table.select(desk.pick, [table], [ticket_id, chat, header], api_visibility="private")
    close.click(desk.close, [ticket_id, note], [status, table, summary, chat, note], api_name="ticket_close")
    return tab, (table, summary)


def _feedback_tab(admin: Admin) -> tuple[gr.Tab, Any]:
    with gr.Tab("Feedback", id="feedback", elem_id="tab-feedback") as tab:
        refresh = gr.Button("Refresh", elem_id="admin-refresh")
        counts = gr.Markdown(elem_id="admin-counts")
        plot = gr.Plot(label="Like ratio over time", elem_id="admin-plot")
        recent = gr.Dataframe(label="Recent feedback", interactive=False, wrap=True, elem_id="admin-recent",
                              column_widths=["15%", "9%", "9%", "8%", "35%", "24%"])
        with gr.Row():
            export = gr.Button("Export preference pairs (JSONL)", elem_id="admin-export")
            exported = gr.File(label="Download", elem_id="admin-file", interactive=False)
        export_status = gr.Markdown(elem_id="admin-export-status")
    refresh.click(admin.refresh, None, [counts, plot, recent], api_name="admin_refresh")
    tab.select(admin.refresh, None, [counts, plot, recent], api_visibility="private")
    export.click(admin.export, None, [exported, export_status], api_name="admin_export")
    return tab, (counts, plot, recent)


def build_operator_blocks(admin: Admin, desk: TicketDesk) -> gr.Blocks:
    """The console; the caller queues it and mounts it behind the operator login."""
    # delete_cache: export files copied into Gradio's cache are deleted after an hour (checked every 10 min).
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(600, 3600)) as blocks:
        with gr.Row():
            gr.Markdown(f"## {TITLE}")
            gr.Markdown("[Log out](logout)", elem_id="operator-logout")
        with gr.Tabs():
            _, ticket_outputs = _tickets_tab(desk)
            _feedback_tab(admin)
        blocks.load(desk.refresh, None, list(ticket_outputs), api_visibility="private")
    return blocks


class OperatorFilesOnly:
    """ASGI middleware: an operator export file is served by the operator app only, never by the customer app.

    Every Gradio app in the process serves files from the shared Gradio cache folder, so without this the
    customer app at ``/`` (open without ``--auth``) would hand out an export to anyone holding its URL.
    """

    def __init__(self, app: Any, operator_path: str = OPERATOR_PATH) -> None:
        self.app = app
        self.operator_path = operator_path.rstrip("/") + "/"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            if "/file=" in path and EXPORT_PREFIX in unquote(unquote(path)) and not path.startswith(
                    self.operator_path):
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"detail": "Not Found"}'})
                return
        await self.app(scope, receive, send)
