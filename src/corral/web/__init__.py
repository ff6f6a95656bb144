"""Server-rendered pages (Jinja2 templates, autoescaped) and their routes."""
