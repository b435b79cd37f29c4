"""The caption of every table and figure, from one source: ``workflow/report/{name}.rst``.

Snakemake's HTML report needs those files (``report(..., caption=...)`` in the report rules), so
they are the single copy; the Markdown and LaTeX tables, and any page built from the results, read
the same text through ``caption(name)`` and add only what the data decide (scales, map counts).
The files are one paragraph of plain prose that reads the same as reStructuredText and as
Markdown: no substitutions (``|word|``), no trailing-underscore references, ``literal`` in double
backquotes, and no Jinja2 braces (Snakemake renders captions as Jinja2 templates).
"""

from __future__ import annotations

from pathlib import Path

CAPTION_DIR = Path(__file__).resolve().parents[3] / "workflow" / "report"


def caption_names() -> list[str]:
    """The names that have a caption (``table1``, ``table_cost``, ``fig6``, ...), sorted."""
    return sorted(p.stem for p in CAPTION_DIR.glob("*.rst"))


def caption(name: str) -> str:
    """The caption of table or figure ``name``: its ``.rst`` file's text, surrounding whitespace
    stripped."""
    path = CAPTION_DIR / f"{name}.rst"
    if not path.is_file():
        raise ValueError(
            f"no caption for '{name}': expected one of {caption_names()} ({CAPTION_DIR}/*.rst)"
        )
    return path.read_text(encoding="utf-8").strip()
