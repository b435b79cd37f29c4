"""The documentation pages: docs/configuration.md is what the schema renders to, every schema key
has a description, the README stays short and without history, and every number the README's
results section and docs/reading.md quote is one of the generated study files they name.

Number check: a page is cut into blocks (paragraphs, bullets, table rows). A block's numbers are
looked up in the generated files it names in backticks (``table1.md``, ``table1_paired.md``, ...,
found under docs/study/); a block naming none uses the files of the block before it, up to the
next heading. A number matches a value of those files when it equals the value rounded to the
digits written (0.0104 matches 0.01043). Exempt: scale factors (``16x``), units (``x1e-3``),
``95%`` intervals, inline code, figure and equation numbers, and parentheses that start with
``paper:`` (the paper's own values, which no generated file holds).
"""

import re
from pathlib import Path

import pytest

from fesr.report import config_doc

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "study"
NUMBER = re.compile(r"(?<![\w.\-])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
EXEMPT = [
    r"`[^`]*`",  # inline code: file names, commands, keys
    r"\(paper:[^)]*\)",
    r"\b\d+x\b",  # scale factors
    r"x1e-3",
    r"\b95%",
    r"\b(?:Fig|eq|Eq|Table|table)s?\.? ?\(?\d+\)?",
    r"\]\([^)]*\)",  # link targets
]


def generated_values(names: list[str]) -> list[float]:
    values = []
    for name in names:
        hits = sorted(STUDY.rglob(name))
        assert hits, f"'{name}' is named as a source but no such file is under {STUDY}"
        for path in hits:
            values += [abs(float(v)) for v in NUMBER.findall(path.read_text())]
    return values


def matches(written: str, values: list[float]) -> bool:
    mantissa, _, exponent = written.lstrip("-").partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    step = 10.0 ** (int(exponent or 0) - decimals)
    w = abs(float(written))
    return any(abs(v - w) <= 0.5 * step * (1 + 1e-9) for v in values)


def blocks(text: str):
    """Paragraphs, bullets and table rows, each with the heading level it follows."""
    out, current = [], []
    for line in text.splitlines() + [""]:
        starts = line.startswith(("* ", "|", "#")) or not line.strip()
        if starts and current:
            out.append(" ".join(current))
            current = []
        if line.startswith("#"):
            out.append(line)
        elif line.strip():
            current.append(line.strip())
    return out


def unmatched_numbers(text: str) -> list[str]:
    problems, sources = [], []
    for block in blocks(text):
        if block.startswith("#"):
            sources = []
            continue
        named = re.findall(r"`([\w.-]+\.(?:md|csv))`", block)
        if named:
            sources = named
        stripped = block
        for pattern in EXEMPT:
            stripped = re.sub(pattern, " ", stripped)
        numbers = NUMBER.findall(stripped)
        if not numbers:
            continue
        if not sources:
            problems.append(f"no source file named for: {block[:100]}")
            continue
        values = generated_values(sources)
        wrong = [n for n in numbers if not matches(n, values)]
        problems += [f"{n} (in {sources}): {block[:100]}" for n in wrong]
    return problems


def results_section(readme: str) -> str:
    return readme.split("\n## Results at a glance", 1)[1].split("\n## ", 1)[0]


def test_configuration_page_is_current():
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == config_doc.render(), (
        "docs/configuration.md is not what the schema renders to: run "
        "`python -m fesr.report.config_doc`"
    )


def test_every_schema_key_has_a_description():
    assert config_doc.missing_descriptions() == []


def test_configuration_page_lists_every_key_with_its_default():
    text = config_doc.render()
    assert "| `training.iterations` | integer, >= 1 | 100000 |" in text
    assert "| `methods.nhcsr.pe` | one of plain, sinusoid, ipe, lte, gabor | gabor |" in text
    assert "`splits.{train,val,test_random,test_deterministic}.shard_size`" in text


def test_readme_is_short_and_without_history():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert not re.search(r"issue \d+|before this change|at commit", readme, re.IGNORECASE)


@pytest.mark.parametrize("page", ["README.md", "docs/reading.md"])
def test_quoted_numbers_come_from_the_study_files(page):
    text = (ROOT / page).read_text()
    if page == "README.md":
        text = results_section(text)
    assert unmatched_numbers(text) == []


def test_number_check_can_fail():
    good = "At 2x NH-CSR has 0.0116 (`table1.md`)."
    assert unmatched_numbers(good) == []
    assert unmatched_numbers("At 2x NH-CSR has 0.0119 (`table1.md`).") != []
    assert unmatched_numbers("A number 0.0116 with no source.") != []
    assert unmatched_numbers("Exempt (paper: 0.571) at 64x (`table1.md`).") == []
