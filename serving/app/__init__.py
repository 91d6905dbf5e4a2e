"""The Gradio front end (support chat, translation, feedback, admin) and the chat service it shares with the API."""
