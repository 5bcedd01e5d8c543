"""MkDocs hooks for funcnn's documentation (named in mkdocs.yml under ``hooks:``).

Pages that list what the code defines are generated from the code, so they cannot drift:
the marker ``<!-- funcnn-cli-reference -->`` becomes one section per sub-command holding its
``--help`` text, and ``<!-- funcnn-top-level -->`` the table of ``funcnn``'s top-level
functions, each linked to its reference entry.
"""
from __future__ import annotations

import argparse
import os

MARKER = "<!-- funcnn-cli-reference -->"
_BLAS_LIMIT = []  # keeps the threadpool limiter alive for the whole build
TOP_LEVEL_MARKER = "<!-- funcnn-top-level -->"


def _help_text(parser: argparse.ArgumentParser) -> str:
    """``parser.format_help()`` at a fixed width (argparse reads $COLUMNS), for stable pages."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "96"
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def cli_reference() -> str:
    """Markdown: ``funcnn --help`` and, for each sub-command, a section with its ``--help``."""
    from funcnn.cli import build_parser

    parser = build_parser()
    sections = ["```text\n$ funcnn --help\n" + _help_text(parser) + "\n```"]
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sections.append(f"### funcnn {name}\n\n```text\n$ funcnn {name} --help\n"
                                + _help_text(sub) + "\n```")
    return "\n\n".join(sections)


def _summary(obj) -> str:
    """The first sentence-paragraph of a docstring, on one line."""
    import inspect

    import re

    doc = inspect.getdoc(obj) or ""
    text = " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)  # reST roles, as plain code here


def top_level_table() -> str:
    """Markdown: every function in ``funcnn.__all__``, linked to its home module's reference."""
    import inspect

    import funcnn

    rows = ["| name | home | what it does |", "|---|---|---|"]
    for name in funcnn.__all__:
        obj = getattr(funcnn, name)
        if inspect.ismodule(obj):
            continue
        home = obj.__module__
        rows.append(f"| [`{name}`][{home}.{name}] | `{home}` | {_summary(obj)} |")
    return "\n".join(rows)


def on_startup(command, dirty) -> None:
    """Limit BLAS to one thread while the tutorials run. Their networks are tiny, and on a
    busy machine OpenBLAS's spinning threads make tiny matrix products an order of magnitude
    slower (see the performance page); one thread keeps the build fast and its timing stable.
    Nothing a tutorial prints depends on it."""
    import numpy  # noqa: F401  (threadpoolctl limits the BLAS libraries loaded so far: load it first)
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT.append(threadpool_limits(1, user_api="blas"))


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri.startswith("tutorials/") and page.file.src_uri != "tutorials/index.md":
        # A tutorial is code first: its width goes to the code, not to a table of contents.
        page.meta.setdefault("hide", []).append("toc")
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    if TOP_LEVEL_MARKER in markdown:
        markdown = markdown.replace(TOP_LEVEL_MARKER, top_level_table())
    return markdown
