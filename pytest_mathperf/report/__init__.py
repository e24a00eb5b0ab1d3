"""The HTML trend report: a data model built in Python (``html.build_report``) and its jinja2 renderer."""
