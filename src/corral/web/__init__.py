"""Server-rendered pages (Jinja2 templates, autoescaped)."""
