"""The docs hold what the code holds: files they name exist, commands name experiment files that
resolve, the generated configuration reference matches the code, and the two front pages keep
their size."""

from __future__ import annotations

import ast
import dataclasses
import glob
import inspect
import itertools
import re

import pytest

from ganpipe import config, reference, settings, shipped
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


def slug(heading: str) -> str:
    """The anchor a Markdown heading gets on GitHub: lower case, punctuation dropped, spaces to
    hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def missing_anchors(page) -> list[str]:
    """Links ``page.md#anchor`` (or ``#anchor``) whose page has no heading with that anchor."""
    missing = []
    for target in LINK.findall(page.read_text()):
        path, _, anchor = target.partition("#")
        if not anchor or re.match(r"[a-z]+:", path) or not (path or "x.md").endswith(".md"):
            continue
        linked = (page.parent / path) if path else page
        if not linked.is_file():
            continue  # reported by the file check
        anchors = {slug(line.lstrip("#")) for line in _prose(linked.read_text()).splitlines()
                   if line.startswith("#")}  # fmt: skip
        if anchor not in anchors:
            missing.append(target)
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_anchor_a_page_links_exists(page):
    missing = missing_anchors(page)
    assert not missing, f"{page.name} links headings that do not exist: {missing}"


def test_the_anchor_check_can_fail(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## On a GPU (JAX, one H200)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Where JAX's time goes\n\n[a](other.md#on-a-gpu-jax-one-h200) "
        "[b](other.md#nope) [c](#where-jaxs-time-goes) [d](#gone) [e](https://x.org/#y)\n"
    )
    assert missing_anchors(page) == ["other.md#nope", "#gone"]


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


# A gin comment that points into the docs: `README ("Title")`, `docs/results.md ("Title")` or
# `docs/results.md, "Title"`.
SECTION_POINTER = re.compile(r"(README|docs/\w+\.md)(?: \(|, )\"([^\"]+)\"")


def section_pointers(gin_text: str) -> list[tuple[str, str]]:
    """(page, heading) of every pointer in a gin file's comments, comment lines joined."""
    comments = " ".join(
        line.split("#", 1)[1].strip() for line in gin_text.splitlines() if "#" in line
    )
    return SECTION_POINTER.findall(comments)


def headings(page) -> set[str]:
    return {line.lstrip("#").strip() for line in _prose(page.read_text()).splitlines()
            if line.startswith("#")}  # fmt: skip


def test_gin_comments_point_at_sections_that_exist():
    missing = []
    for path in sorted((REPO / "gin").rglob("*.gin")):
        for page, heading in section_pointers(path.read_text()):
            target = README if page == "README" else REPO / page
            if not target.is_file() or heading not in headings(target):
                missing.append(f"{path.relative_to(REPO)}: {page} ({heading!r})")
    assert not missing, f"gin comments name sections that do not exist: {missing}"


def test_section_pointers_are_found_across_comment_lines():
    text = '# see README ("What the\n# recipe reaches") and\nx = 1  # (docs/results.md, "Speed")\n'
    assert section_pointers(text) == [
        ("README", "What the recipe reaches"),
        ("docs/results.md", "Speed"),
    ]


def defined_flags(module_path) -> list[str]:
    """The names of the absl flags a command module defines (``flags.DEFINE_*("name", ...)``)."""
    names = []
    for node in ast.walk(ast.parse(module_path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("DEFINE_")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(node.args[0].value)
    return names


@pytest.mark.parametrize(
    ("command", "pages"),
    [
        ("main", ["configuration.md", "experiments.md"]),
        ("evaluate", ["evaluation.md"]),
        ("sample", ["evaluation.md"]),
    ],
)
def test_every_flag_of_a_command_is_named_in_its_docs(command, pages):
    flags = defined_flags(REPO / "ganpipe" / f"{command}.py")
    assert len(flags) >= 3, flags  # the parse finds the flags
    text = "".join((DOCS / page).read_text() for page in pages)
    unnamed = [f for f in flags if not re.search(rf"--{f}\b", text)]
    assert not unnamed, f"ganpipe.{command}'s flags {unnamed} are not named in {pages}"


# A gin binding's name: optional scopes, optional module, configurable, parameter
# (`critic/Adam.learning_rate`, `train.loss`). A name without a dot (`NUM_STEPS`) is a macro's,
# so it never matches.
BINDING_NAME = r"(?:[A-Za-z_][\w.]*/)*[A-Za-z_][\w.]*\.[A-Za-z_]\w*"
GIN_PARAM = re.compile(rf"--(?:gin_param|recipe_param)=[\"']?({BINDING_NAME})\s*=")
GIN_LINE = re.compile(rf"^\s*({BINDING_NAME})\s*=", re.M)
SPAN_BINDING = re.compile(rf"^({BINDING_NAME})(?:\s*=.*)?$")
CODE_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
# A code span `name.ext` names a file, not a binding.
FILE_SUFFIXES = {"py", "gin", "md", "json", "jsonl", "csv", "png", "log", "txt", "toml", "keras"}


def named_bindings(page_text: str) -> list[str]:
    """Every gin binding name a page gives: ``--gin_param=`` values (and the time-to-quality
    benchmark's ``--recipe_param=``) in prose and commands, lines ``X.y = ...`` in gin or plain
    fenced blocks, and code spans ``X.y = ...`` or ``X.y`` whose ``X`` is a configurable (so
    `keras.ops` or `tf.function` are not read as bindings)."""
    found = GIN_PARAM.findall(page_text)
    for lang, block in CODE_FENCE.findall(page_text):
        if lang.strip() in ("", "gin"):
            found += GIN_LINE.findall(block)
    configurables = set(config.configurables())
    for span in SPAN.findall(_prose(page_text)):
        match = SPAN_BINDING.match(span.strip())
        if not match:
            continue
        owner, _, param = match[1].split("/")[-1].rpartition(".")
        if param not in FILE_SUFFIXES and ("=" in span or owner in configurables):
            found.append(match[1])  # a bare span names a binding only as `Configurable.param`
    return found


def bindable_parameters(obj, denied) -> set[str]:
    """The parameters gin may bind on ``obj``: its signature's, and for a class those of every
    class it derives from (a Keras optimizer passes ``**kwargs`` on), less the denied ones."""
    targets = [obj.__init__] if inspect.isclass(obj) else [obj]
    if inspect.isclass(obj):
        targets += [base.__init__ for base in obj.__mro__[1:] if base is not object]
    names = set()
    for target in targets:
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            continue
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names - {"self"} - set(denied)


def unknown_bindings(page_text: str) -> list[str]:
    """The bindings a page names that the code does not have. A page's own example (extending.md
    adds a penalty, an augmentation and a setting) counts when the page's Python or diff blocks
    define the class (or the configurable exists) and the parameter."""
    from ganpipe import sweeps

    config.register_configurable("sweep", sweeps.make_sweep)  # as the reference lists it
    table = config.configurables()
    own_code = "\n".join(
        block
        for lang, block in CODE_FENCE.findall(page_text)
        if lang.strip() in ("python", "py", "diff")
    )
    unknown = []
    for name in named_bindings(page_text):
        owner, _, param = name.split("/")[-1].rpartition(".")
        owner = owner.split(".")[-1]  # a gin module before the configurable's name is left out
        if owner in table and param in bindable_parameters(table[owner][0], table[owner][2]):
            continue
        if owner == "train" and param in settings.MOVED:
            continue  # an earlier flat name, read as its new one (config.parse)
        defines_owner = owner in table or re.search(rf"^\+?\s*class {owner}\b", own_code, re.M)
        if defines_owner and re.search(rf"\b{param}\s*[:=]", own_code):
            continue
        unknown.append(name)
    return sorted(set(unknown))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_gin_binding_a_page_names_exists(page):
    unknown = unknown_bindings(page.read_text())
    assert not unknown, f"{page.name} names bindings the code does not have: {unknown}"


def test_the_binding_check_can_fail():
    page = (
        "Run `--gin_param=Intervals.eval_every=10` or `Intervals.evil_every = 10`; "
        "`NUM_STEPS = 5`, `keras.ops`, `ganpipe/sweep.py` and `critic/Adam.learning_rate` are "
        "fine, and `train.loss`, `train.log_every` (moved) and `tf.train.Checkpoint`.\n"
        "```\npython -m ganpipe.main --gin_param='critic/Adam.learnig_rate=1e-4'\n```\n"
        "```gin\nbuild_critic.blocks = []\nNoSuch.thing = 1\nEMA.deacy = 0.9\n```\n"
    )
    assert unknown_bindings(page) == [
        "EMA.deacy",
        "Intervals.evil_every",
        "NoSuch.thing",
        "critic/Adam.learnig_rate",
    ]


def test_the_evaluation_page_says_what_every_metric_of_the_metric_table_says():
    from ganpipe.eval import metric_table

    rows = [line for line in (DOCS / "evaluation.md").read_text().splitlines() if line[:3] == "| `"]
    described = {name for row in rows for name in SPAN.findall(row.split(" | ")[0])}
    scores = {m.name for m in metric_table.METRICS if m.direction}
    assert scores - described == set(), "docs/evaluation.md's metric table lacks them"
