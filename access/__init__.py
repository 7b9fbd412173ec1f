"""Who may do what, and which files they may name: users, roles, path roots, secrets. No Gradio, no torch."""
