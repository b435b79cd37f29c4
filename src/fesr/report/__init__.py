"""Tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) of SPEC 4, built from the tidy metrics."""
