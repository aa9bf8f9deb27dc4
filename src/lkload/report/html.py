"""report.html: one self-contained file (inline CSS, images as data URIs, no script).

Every string from outside (room and participant names, errors, versions, the command)
goes through Jinja's autoescaping; the page's Content-Security-Policy forbids scripts
and network loads besides.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from lkload.analysis.result import Analysis
from lkload.report.plots import Plot
from lkload.report.view import View, css_class

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(analysis: Analysis, view: View, plots: list[Plot]) -> str:
    view.plots = [
        {
            "name": p.name,
            "title": p.title,
            "file": f"{p.name}.png",
            "uri": "data:image/png;base64," + base64.b64encode(p.png).decode("ascii"),
        }
        for p in plots
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(v=view, tiers=analysis.tiers, cls=css_class)
