"""Rendering: the summary (and its figures) to HTML, Markdown and JSON.

HTML and Markdown come from the same templates (package data in ``templates/``):

* ``report.html.j2`` / ``report.md.j2``: the page around the sections;
* ``sections/<id>.j2``: one template per section, written with the building blocks of
* ``macros.html.j2`` / ``macros.md.j2``: cards, tables, figures, notes, lists, the glossary; the two files have
  the same macros, so a section template renders to either format.

Templates see ``summary`` (the dict of :mod:`.summary`), ``s`` (the section's entry), ``sec`` (its id and
title), ``figures`` (:class:`.figures.Figure` by key), ``fmt`` (:class:`.format.Formatter` for the currency)
and ``meta`` (title, subtitle, version, time of generation). JSON is the summary itself.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from typing import Any

import jinja2

from .figures import Figure
from .format import Formatter


@cache
def environment(fmt: str) -> jinja2.Environment:
    """The Jinja environment for ``"html"`` (autoescaped, block whitespace trimmed) or ``"md"``."""
    html = fmt == "html"
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("clvforecast.report", "templates"),
        autoescape=html,
        trim_blocks=html,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.do"],
    )
    env.filters["mdcell"] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    return env


def _context(summary: dict[str, Any], figures: dict[str, Figure], meta: dict[str, Any], fmt: str,
             **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "figures": figures, "meta": meta, "fmt": Formatter(
        summary["settings"]["currency"]), "macros": f"macros.{fmt}.j2", **extra}


def meta(summary: dict[str, Any]) -> dict[str, Any]:
    """Title, subtitle (what the report covers), version and time of generation."""
    from .. import __version__

    st = summary["settings"]
    subtitle = f"Forecast over the {st['horizon_words']} after {st['observation_end'] or 'the end of the data'}"
    if st["calibration_end"]:
        subtitle += f"; checked on a holdout from {st['calibration_end']}"
    return {"title": st["title"], "subtitle": subtitle, "version": __version__,
            "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M")}


def to_html(summary: dict[str, Any], figures: dict[str, Figure]) -> str:
    """One self-contained HTML document (figures embedded as PNG data, styles inline, nothing external)."""
    return environment("html").get_template("report.html.j2").render(
        _context(summary, figures, meta(summary), "html"))


def to_markdown(summary: dict[str, Any], figures: dict[str, Figure], *, embed_figures: bool = False) -> str:
    """Markdown; with ``embed_figures`` the figures are PNG data URIs, else a line names each."""
    text = environment("md").get_template("report.md.j2").render(
        _context(summary, figures, meta(summary), "md", embed_figures=embed_figures))
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def to_json(summary: dict[str, Any], *, indent: int | None = 2) -> str:
    """The summary as JSON (it is JSON-able as it is; NaN never appears: it is null)."""
    return json.dumps(summary, indent=indent, allow_nan=False)
