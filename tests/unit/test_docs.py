"""The documentation: the site builds with `mkdocs build --strict` (a broken link or anchor fails), the README's methods
table lists exactly the registered methods, and the README's links point at files that exist."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

DOC_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing_doc_packages() -> list[str]:
    missing = []
    for name in DOC_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def test_mkdocs_build_strict_has_no_warning(tmp_path):
    missing = _missing_doc_packages()
    if missing:
        pytest.skip(f"the docs tooling is not installed ({', '.join(missing)}): pip install -e .[dev]")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "attempt_advantages" in api, "the API page rendered no docstrings"


def _readme_methods_rows() -> list[str]:
    """The rows of the README's methods table (those starting with a `method` name, in the '## Methods' section)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Methods\n") :]
    section = section[: section.index("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith("| `")]


def _readme_methods_table() -> list[str]:
    """The `method` column of the README's methods table."""
    return [re.match(r"\| `([^`]+)`", line).group(1) for line in _readme_methods_rows()]


def test_readme_methods_table_lists_exactly_the_registered_methods():
    from selfcorrect.trainers import METHODS, import_families

    import_families()  # every method file of selfcorrect/trainers/, each registering its own
    # the package's own methods (a test may register one of its own, e.g. the README's "Adding a method" example)
    shipped = {name for name, m in METHODS.items() if m.trainer.__module__.split(".")[0] in ("selfcorrect", "trl")}
    listed = _readme_methods_table()
    assert len(listed) == len(set(listed)), f"a method is listed twice: {listed}"
    assert set(listed) == shipped, (
        f"README's methods table and selfcorrect.trainers.METHODS differ: missing from the README "
        f"{sorted(shipped - set(listed))}, not registered {sorted(set(listed) - shipped)}"
    )


def test_readme_methods_table_links_a_docs_page_per_method():
    rows = _readme_methods_rows()
    assert rows, "the README has no methods table under '## Methods'"
    for line in rows:
        pages = re.findall(r"\]\((docs/[^)#]+)\)", line)
        assert pages, f"no docs page linked: {line}"
        assert all((ROOT / page).is_file() for page in pages), line


def test_readme_links_point_at_existing_files():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)]+)\)", readme):
        if target.startswith(("http://", "https://", "#")):
            continue
        assert (ROOT / target.split("#")[0]).exists(), f"README links to a missing file: {target}"


def test_readme_and_docs_speak_to_users_not_to_the_project_log():
    """No process words: the README and the docs describe the library, not who worked on it when."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text()
        for pattern in (r"\bsessions?\b", r"\bissues? \d+", r"\(issues? #?\d+"):
            hit = re.search(pattern, text, re.I)
            assert hit is None, f"{page.relative_to(ROOT)}: {hit.group(0)!r}"
