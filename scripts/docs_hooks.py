"""MkDocs hooks for funcnn's documentation (named in mkdocs.yml under ``hooks:``).

The command-line page is generated from the argument parser itself, so it cannot drift
from the code: the marker ``<!-- funcnn-cli-reference -->`` in a page becomes one section
per sub-command holding its ``--help`` text.
"""
from __future__ import annotations

import argparse
import os

MARKER = "<!-- funcnn-cli-reference -->"


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


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
