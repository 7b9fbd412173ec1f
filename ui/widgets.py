"""Components every tab builds the same way."""

import gradio as gr


def text_table(label: str | None = None, **options) -> gr.Dataframe:
    """A read-only table of plain-text cells. Dataset text is hostile (prompt injections, HTML, markdown), so a
    cell is never rendered as markdown or LaTeX; ``options`` add headers, wrap, max_height, elem_id..."""
    return gr.Dataframe(label=label, datatype="str", interactive=False, latex_delimiters=[], **options)
