"""A griffe extension for funcnn's API reference (named in mkdocs.yml under mkdocstrings'
``extensions``): the docstrings use a few reStructuredText habits, which it turns into the
Markdown that mkdocstrings renders.

* ``:func:`name``` (and ``:class:``, ``:mod:``, ``:data:``, ``:meth:``, ``:attr:``) becomes a
  link to ``name``'s entry in the reference when the reference renders it, else inline code;
  a name is looked up as written, then in the docstring's own module (and class).
* A paragraph ending in ``::`` (reST's marker of the literal block that follows) ends in ``:``;
  the indented block after it is a Markdown code block already.
"""
from __future__ import annotations

import re
from typing import Any, Dict

from griffe import Extension

ROLE = re.compile(r":(?:func|class|mod|data|meth|attr|obj|exc):`(~?)([^`]+)`")
LITERAL = re.compile(r"(\S)::(?=\n\s*\n)")


def _targets(pkg: Any) -> Dict[str, str]:
    """Every public object the reference renders: its path, and each public alias's target."""
    found: Dict[str, str] = {}

    def collect(obj: Any) -> None:
        for member in obj.members.values():
            try:
                public = member.is_public
            except Exception:  # an alias whose target is outside the package
                continue
            if not public:
                continue
            if member.is_alias:
                try:
                    found.setdefault(member.path, member.final_target.path)
                except Exception:
                    pass
                continue
            found[member.path] = member.path
            if member.is_module or member.is_class:
                collect(member)

    found[pkg.path] = pkg.path
    collect(pkg)
    return found


class RstToMarkdown(Extension):
    def on_package(self, *, pkg: Any, loader: Any, **kwargs: Any) -> None:
        if pkg.path != "funcnn":
            return
        targets = _targets(pkg)

        def convert(text: str, obj: Any) -> str:
            module = obj if obj.is_module else obj.module
            scopes = [obj.path] if obj.is_class else ([obj.parent.path] if obj.parent is not None and obj.parent.is_class else [])
            scopes += [module.path, pkg.path]

            def link(match: "re.Match[str]") -> str:
                short, name = match.group(1) == "~", match.group(2).strip()
                shown = name.rsplit(".", 1)[-1] if short else name
                for candidate in [name] + [f"{scope}.{name}" for scope in scopes]:
                    if candidate in targets:
                        return f"[`{shown}`][{targets[candidate]}]"
                return f"`{shown}`"

            return LITERAL.sub(r"\1:", ROLE.sub(link, text))

        def visit(obj: Any) -> None:
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)
            for member in obj.members.values():
                if not member.is_alias:
                    visit(member)

        visit(pkg)
