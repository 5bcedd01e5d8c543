"""The documentation keeps up with the code: every module has an API page in the site's
navigation, and the README's links point at files that exist. (The site's own links are
checked by ``mkdocs build --strict``, which CI runs.)"""
import os
import pkgutil
import re

import funcnn

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _modules():
    return sorted(m.name for m in pkgutil.iter_modules(funcnn.__path__) if not m.name.startswith("_"))


def test_every_module_has_an_api_reference_page_in_the_nav():
    nav = _read("mkdocs.yml")
    missing = []
    for name in _modules():
        page = os.path.join(ROOT, "docs", "reference", f"{name}.md")
        if not os.path.isfile(page) or f"::: funcnn.{name}" not in _read("docs", "reference", f"{name}.md"):
            missing.append(f"docs/reference/{name}.md (holding '::: funcnn.{name}')")
        elif f"reference/{name}.md" not in nav:
            missing.append(f"a nav entry for reference/{name}.md in mkdocs.yml")
    assert not missing, "modules without an API reference page: " + "; ".join(missing)


def test_readme_links_exist():
    text = _read("README.md")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) + re.findall(r'src="([^"]+)"', text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the README links into the docs"
    broken = [t for t in local if not os.path.exists(os.path.join(ROOT, t))]
    assert not broken, f"README links to missing files: {broken}"


def test_readme_is_a_front_page():
    assert len(_read("README.md").splitlines()) <= 250
