"""The labels: import, store, review and snapshot them. No Gradio, no torch."""
