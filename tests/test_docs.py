"""The docs hold what the code holds: files they name exist, commands name experiment files that
resolve, the generated configuration reference matches the code, and the two front pages keep
their size."""

from __future__ import annotations

import dataclasses
import glob
import itertools
import re

import pytest

from ganpipe import config, reference, shipped
from tests.conftest import REPO

README = REPO / "README.md"
WORKSPACE = REPO / "WORKSPACE.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# A code span names a file of the repository when it starts with one of these.
TOP_LEVEL = ("ganpipe/", "gin/", "docs/", "tests/", "benchmarks/", ".ci/")
TOP_FILES = ("README.md", "WORKSPACE.md", "pyproject.toml")
TRAIN_LINE = (
    "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist python3-venv && "
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && "
    "python -m ganpipe.main --gin_file=gin/recommended.gin "
    "--gin_param=train.max_train_seconds=600"
)
TEST_LINE = (
    "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist python3-venv && "
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && "
    "python -m pytest -q"
)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")


def _prose(text: str) -> str:
    return FENCE.sub("", text)


def _expand(pattern: str) -> list[str]:
    """``a{1,2}.json`` -> [``a1.json``, ``a2.json``]."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return list(
        itertools.chain.from_iterable(_expand(head + c + tail) for c in match[1].split(","))
    )


def named_paths(page_text: str) -> list[str]:
    """Repository paths a page names in prose: code spans that start with a top-level folder or
    file of the repository. ``::name`` suffixes are dropped; placeholders (``<...>``) skipped."""
    found = []
    for span in SPAN.findall(_prose(page_text)):
        for token in span.split():
            token = token.strip(",.;:()'\"").split("::")[0]
            if "<" in token or not token.startswith(TOP_LEVEL + TOP_FILES):
                continue
            found.extend(_expand(token))
    return found


def linked_paths(page_text: str) -> list[str]:
    """Relative link targets of a page (anchors dropped; web links skipped)."""
    targets = [t.split("#")[0] for t in LINK.findall(page_text)]
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


def missing_files(page) -> list[str]:
    text = page.read_text()
    missing = [t for t in linked_paths(text) if not (page.parent / t).exists()]
    missing += [p for p in named_paths(text) if not glob.glob(str(REPO / p))]
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_file_a_page_links_or_names_exists(page):
    assert not missing_files(page), f"{page.name} names files that do not exist"


def test_the_file_check_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [a](no_such.md), `docs/results/no_such.png` and `ganpipe/x{1,2}.py`; "
        "`runs/x/metrics.jsonl` is a run's file, not the repository's.\n"
    )
    assert missing_files(page) == [
        "no_such.md",
        "docs/results/no_such.png",
        "ganpipe/x1.py",
        "ganpipe/x2.py",
    ]


def gin_files_in_commands(page_text: str) -> list[str]:
    """Every ``--gin_file=`` and ``--sweep=`` value in a page's fenced blocks."""
    found = []
    for block in FENCE.findall(page_text):
        for value in re.findall(r"--(?:gin_file|sweep)=(\S+)", block):
            value = value.strip("'\"")
            if "<" not in value:
                found.append(value)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_experiment_file_in_a_command_resolves(page, monkeypatch):
    monkeypatch.chdir(REPO)
    for name in gin_files_in_commands(page.read_text()):
        shipped.resolve(name)  # raises FileNotFoundError, naming the file


def test_commands_are_found_in_fenced_blocks():
    text = "```\npython -m ganpipe.main --gin_file=gin/nope.gin --sweep='gin/s.gin'\n```\n"
    assert gin_files_in_commands(text) == ["gin/nope.gin", "gin/s.gin"]
    with pytest.raises(FileNotFoundError, match="nope.gin"):
        shipped.resolve("gin/nope.gin")


def test_the_readme_holds_the_two_commands_exactly():
    lines = README.read_text().splitlines()
    assert TRAIN_LINE in lines and TEST_LINE in lines


@pytest.mark.parametrize(("page", "limit"), [(README, 20_000), (WORKSPACE, 30_000)])
def test_the_front_pages_keep_their_size(page, limit):
    size = len(page.read_bytes())
    assert size <= limit, f"{page.name} is {size:,} bytes; keep it within {limit:,}"


@pytest.mark.parametrize("page", [README, WORKSPACE], ids=lambda p: p.name)
def test_prose_lines_stay_within_100_columns(page):
    long = [line for line in _prose(page.read_text()).splitlines() if len(line) > 100]
    assert not long, f"{page.name}: {len(long)} lines over 100 columns, e.g. {long[0]!r}"


def test_the_docs_index_lists_every_page():
    index = (DOCS / "index.md").read_text()
    listed = set(linked_paths(index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= listed, f"docs/index.md does not link {sorted(pages - listed)}"


def test_the_generated_configuration_reference_matches_the_code():
    page = DOCS / "configuration.md"
    assert reference.generated_block(page.read_text()) == reference.markdown(), (
        "docs/configuration.md's generated reference differs from the code; run "
        "`python -m ganpipe.reference --write` and commit the result"
    )


def test_the_generated_block_is_replaced_whole_and_its_markers_are_required():
    text = f"intro\n{reference.BEGIN}\nstale\n{reference.END}\noutro\n"
    fresh = reference.with_block(text, "fresh\n")
    assert reference.generated_block(fresh) == "fresh\n"
    assert fresh.startswith("intro\n") and fresh.endswith("\noutro\n")
    with pytest.raises(ValueError, match="generated reference"):
        reference.generated_block("no markers here")


def test_the_reference_lists_every_train_parameter_and_registry():
    text = reference.markdown()
    params, _ = reference.parameters(config.configurables()["train"][0])
    assert all(f"| `{name}` |" in text for name, _ in params)
    for concept in ("loss", "penalty", "constraint", "block", "data source", "pinned evaluator"):
        assert f"### {concept}: " in text, concept


def covered_files(pages) -> set[str]:
    """Repository files (relative paths) that the pages link or name, globs expanded."""
    covered = set()
    for page in pages:
        text = page.read_text()
        for pattern in named_paths(text):
            covered |= {str(p.relative_to(REPO)) for p in REPO.glob(pattern)}
        for target in linked_paths(text):
            path = (page.parent / target).resolve()
            if path.is_relative_to(REPO):
                covered.add(str(path.relative_to(REPO)))
    return covered


def test_every_measured_result_file_is_linked_or_named():
    results = {str(p.relative_to(REPO)) for p in (DOCS / "results").iterdir()}
    unnamed = sorted(results - covered_files(PAGES))
    assert not unnamed, f"docs/results.md should link or name {unnamed}"


@dataclasses.dataclass
class _Probe:
    size: int = 1


def test_the_reference_lists_ganpipes_configurables_not_ones_a_program_registers():
    # A configurable registered in this process (tests/test_config.py registers one) is not part
    # of what ganpipe ships, whichever test ran first.
    before = reference.markdown()
    config.register_configurable("DocsProbe", _Probe)
    assert reference.markdown() == before
    assert "DocsProbe" not in before and "### `train`" in before


def test_the_evaluation_page_says_what_every_metric_of_the_metric_table_says():
    from ganpipe.eval import metric_table

    rows = [line for line in (DOCS / "evaluation.md").read_text().splitlines() if line[:3] == "| `"]
    described = {name for row in rows for name in SPAN.findall(row.split(" | ")[0])}
    scores = {m.name for m in metric_table.METRICS if m.direction}
    assert scores - described == set(), "docs/evaluation.md's metric table lacks them"
