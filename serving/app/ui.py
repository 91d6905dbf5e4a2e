"""The customer's Gradio Blocks: Support and Translate tabs (layout and wiring only; logic is in handlers).

Endpoints are named (``api_name``) so ``gradio_client`` can drive the same code paths as the browser:
``/support``, ``/human``, ``/translate``, ``/vote``, ``/rate``, ``/suggest`` (per tab: ``/translate_vote``...).
The operator views (feedback, export, handoff tickets) are a separate app: :mod:`serving.app.operator`.
"""

from __future__ import annotations

import gradio as gr

from serving.app.handlers import Handlers
from serving.app.service import ChatService, language_choices
from serving.app.state import ChatState
from serving.feedback.reasons import choices as reason_choices

TITLE = "Parley: customer service and translation"


def _feedback_row(handlers: Handlers, state: gr.State, chatbot: gr.Chatbot, prefix: str) -> None:
    """Rating, "suggest a better answer", dislike reasons, "another answer" and a hidden vote endpoint for the
    newest answer of one tab (endpoints ``/vote``, ``/rate``, ``/suggest``, ``/dislike_reason``,
    ``/another_answer``, ``/choose_answer``; ``/translate_...`` on the Translate tab)."""
    with gr.Accordion("Rate or improve the last answer", open=False, elem_id=f"{prefix}feedback"):
        with gr.Row():
            rating = gr.Radio([1, 2, 3, 4, 5], label="Rating (1 = poor, 5 = great)", elem_id=f"{prefix}rating")
            rate = gr.Button("Send rating", elem_id=f"{prefix}rate-btn", scale=0)
        with gr.Row():
            correction = gr.Textbox(label="Suggest a better answer", lines=2, elem_id=f"{prefix}correction")
            suggest = gr.Button("Send suggestion", elem_id=f"{prefix}suggest-btn", scale=0)
    status = gr.Markdown(elem_id=f"{prefix}feedback-status")  # outside the accordion: thumbs report here too
    with gr.Group(visible=False, elem_id=f"{prefix}reason-box") as reason_box:  # shown by a thumbs-down
        with gr.Row():
            reason = gr.Radio(reason_choices(), label="What was wrong?", elem_id=f"{prefix}reason")
            send_reason = gr.Button("Send reason", elem_id=f"{prefix}reason-btn", scale=0)
    another = gr.Button("Another answer", elem_id=f"{prefix}another-btn", size="sm")
    with gr.Group(visible=False, elem_id=f"{prefix}compare") as compare_box:
        with gr.Row():
            first = gr.Markdown(label="First answer", container=True, elem_id=f"{prefix}answer-first")
            second = gr.Markdown(label="Second answer", container=True, elem_id=f"{prefix}answer-second")
        with gr.Row():
            choice = gr.Radio([("The first answer", "first"), ("The second answer", "second")],
                              label="Which answer is better?", elem_id=f"{prefix}choice")
            send_choice = gr.Button("Send choice", elem_id=f"{prefix}choice-btn", scale=0)
    liked = gr.Checkbox(visible=False)
    vote = gr.Button(visible=False)
    api = prefix.replace("-", "_")
    chatbot.like(handlers.like, [state], [status, state, chatbot, reason_box, reason], api_visibility="private")
    vote.click(handlers.vote, [liked, state], [status, state, chatbot, reason_box], api_name=f"{api}vote")
    rate.click(handlers.rate, [rating, state], [status, state], api_name=f"{api}rate")
    suggest.click(handlers.suggest, [correction, state], [status, state, correction, chatbot],
                  api_name=f"{api}suggest")
    send_reason.click(handlers.dislike_reason, [reason, state], [status, state, reason_box],
                      api_name=f"{api}dislike_reason")
    another.click(handlers.another_answer, [state], [status, state, first, second, compare_box],
                  api_name=f"{api}another_answer", concurrency_id="generate")
    send_choice.click(handlers.choose_answer, [choice, state], [status, state, compare_box],
                      api_name=f"{api}choose_answer")


def _support_tab(handlers: Handlers) -> None:
    state = gr.State(ChatState("support"))
    chatbot = gr.Chatbot(label="Support", elem_id="support-chat", height=380, buttons=["copy"])
    citations = gr.Markdown(elem_id="support-citations")
    with gr.Row():
        message = gr.Textbox(placeholder="Ask about orders, shipping, returns, your account...", show_label=False,
                             elem_id="support-input", scale=6, max_lines=6)
        send = gr.Button("Send", variant="primary", elem_id="support-send", scale=1)
    with gr.Row():
        human = gr.Button("Talk to a human", elem_id="handoff-btn")
        new = gr.Button("New conversation", elem_id="support-reset")
    status = gr.Markdown(elem_id="support-status")
    outputs = [chatbot, citations, state, message, status]
    send.click(handlers.support, [message, state], outputs, api_name="support", concurrency_id="generate")
    message.submit(handlers.support, [message, state], outputs, api_visibility="private", concurrency_id="generate")
    human.click(handlers.human, [state], [chatbot, state, status], api_name="human")
    new.click(handlers.reset, [state], [chatbot, citations, state, status], api_name="reset")
    _feedback_row(handlers, state, chatbot, "")


def _translate_tab(handlers: Handlers) -> None:
    state = gr.State(ChatState("translate"))
    choices = language_choices()
    with gr.Row():
        source = gr.Dropdown([("Auto-detect", "auto"), *choices], value="auto", label="From",
                             allow_custom_value=True, elem_id="translate-source")
        target = gr.Dropdown(choices, value="en", label="To", allow_custom_value=True, elem_id="translate-target")
    text = gr.Textbox(label="Text to translate", lines=3, elem_id="translate-input")
    go = gr.Button("Translate", variant="primary", elem_id="translate-btn")
    detected = gr.Markdown(elem_id="translate-detected")
    chatbot = gr.Chatbot(label="Translations", elem_id="translate-chat", height=300, buttons=["copy"])
    go.click(handlers.translate, [text, source, target, state], [chatbot, state, detected], api_name="translate",
             concurrency_id="generate")
    _feedback_row(handlers, state, chatbot, "translate-")


def build_blocks(service: ChatService) -> gr.Blocks:
    """The customer UI; the queue is configured by the caller (server), which knows the limits."""
    handlers = Handlers(service)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as blocks:
        gr.Markdown(f"## {TITLE}")
        with gr.Tabs():
            with gr.Tab("Support", id="support", elem_id="tab-support"):
                _support_tab(handlers)
            with gr.Tab("Translate", id="translate", elem_id="tab-translate"):
                _translate_tab(handlers)
        gr.Markdown(f"<small>{service.guard.note()} Model: {service.model_name}</small>", elem_id="guard-note")
    return blocks
