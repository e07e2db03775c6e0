"""The README and docs/ stay true to the code: the set-up commands CI runs, one table of every
environment variable the code reads, and links that lead somewhere."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
#: Where the apps, the CLI and the test set-up read the environment (other tests only set it).
CODE = [*sorted((ROOT / "seg_core").glob("*.py")), *sorted((ROOT / "ui").glob("*.py")),
        *sorted((ROOT / "app_pages").glob("*.py")), *sorted(ROOT.glob("*.py")), ROOT / "tests" / "conftest.py"]
VARIABLE = re.compile(r"\b(SEG_[A-Z_]+[A-Z]|GRADIO_SERVER_[A-Z]+)\b")


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    ci_pytest = re.search(r"^(python -m pytest[^\n]*)$", ci, re.M).group(1)
    blocks = re.findall(r"```bash\n(.*?)```", section(README, "Set up"), re.S)
    assert len(blocks) == 2  # one to run the app, one to run the tests
    assert blocks[0].strip().endswith("streamlit run app.py")
    assert blocks[1].strip().endswith("&& " + ci_pytest)


def test_the_readme_test_command_installs_what_ci_installs():
    # Without the Ray extra, tests/test_ray_engine.py errors in a fresh venv.
    ci = (ROOT / ".ci" / "run").read_text()
    ci_installs = {" ".join(w for w in line.split("#")[0].split() if w != "-q")
                   for line in re.findall(r"^(pip install [^\n]*)$", ci, re.M)}
    block = re.findall(r"```bash\n(.*?)```", section(README, "Set up"), re.S)[1]
    readme_installs = {step.strip() for step in block.split("&&") if step.strip().startswith("pip install")}
    assert ci_installs and ci_installs == readme_installs


def test_the_readme_is_a_guide_not_a_diary():
    lines = README.count("\n")
    assert lines <= 300, f"README.md has {lines} lines: move measurements and details to docs/"
    layout = section(README, "Layout")
    packages = sorted({p.parent.name for p in ROOT.glob("*/*.py") if not p.parent.name.startswith(".")})
    assert "seg_core" in packages
    assert [p for p in packages if f"`{p}/" not in layout] == [], "name each layer in README's Layout"


def test_the_configuration_table_names_every_variable_the_code_reads():
    read = {name for path in CODE for name in VARIABLE.findall(path.read_text())}
    assert {"SEG_WEIGHTS_DIR", "SEG_PUBLIC", "GRADIO_SERVER_PORT"} <= read  # the scan finds them
    table = section(README, "Configuration")
    listed = set(re.findall(r"`([A-Z][A-Z_]+)`", table))
    assert read - listed == set(), "add these to README's Configuration table"
    assert {n for n in listed if VARIABLE.fullmatch(n)} - read == set(), "the code no longer reads these"


def test_links_of_the_readme_and_docs_lead_to_files():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "weights" / "README.md"]
    for page in pages:
        text = page.read_text()
        for target in [*re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text), *re.findall(r'<img src="([^"]+)"', text)]:
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to a missing {target}"
