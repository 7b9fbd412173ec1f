"""Gradio only: one module per tab, each with build(studio)."""
