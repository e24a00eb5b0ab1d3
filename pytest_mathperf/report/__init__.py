"""The HTML trend report: a view model (``model``) with SVG charts placed in Python (``charts``), drawn by jinja2 (``html``)."""
