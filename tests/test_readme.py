"""The README's functional-API example runs and does what it says."""
import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_example_runs(capsys):
    blocks = _python_blocks()
    assert blocks, "README has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["accuracy"] > 0.95
    assert "test accuracy" in capsys.readouterr().out


def test_readme_names_the_quick_start_commands():
    text = open(README, encoding="utf-8").read()
    assert "funcnn train" in text and "python -m pytest" in text


def test_getting_started_shows_the_readme_example():
    # The docs' getting-started page repeats the README's functional example; they must not drift.
    path = os.path.join(os.path.dirname(README), "docs", "getting-started.md")
    with open(path, encoding="utf-8") as f:
        page = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert _python_blocks()[0] in page
