"""Docs that tests keep true: every command and its options appear in the README (its table is
generated from click's --help) and every rule code in the docs' rule catalogue, every command's
help ends with an example, the Quick start holds exactly two commands, the README stays a first
read, the pages generated from the code (cog) are what the code says today, and every package
pyproject.toml names is in docs/dependencies.md."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click

from checks.catalogue import RULES
from pipeline.cli import cli

from cogapp import Cog

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
RULES_PAGE = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
GENERATED = ["README.md", "docs/rules.md", "docs/configuration.md"]  # pages with cog blocks


def commands(group: click.Group, prefix: str = "custdq"):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from commands(cmd, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", cmd


def test_every_command_is_documented_with_an_example():
    for name, cmd in commands(cli):
        assert f"`{name}" in README, name
        assert "Example: custdq" in (cmd.help or ""), name


def test_every_option_of_every_command_is_in_the_readme():
    for name, cmd in commands(cli):
        ctx = click.Context(cmd, info_name=name)
        for param in cmd.get_params(ctx):
            if isinstance(param, click.Option) and param is not cmd.get_help_option(ctx):
                names = param.get_help_record(ctx)[0].replace("|", "\\|")  # as escaped in a table cell
                assert f"`{names}`" in README, (name, param.opts)


def test_every_rule_is_in_the_catalogue_table():
    for code, spec in RULES.items():
        assert re.search(rf"^\| `{code}` \| {spec.severity} \| {spec.category} \|", RULES_PAGE, re.M), code


def test_quick_start_has_exactly_two_commands():
    block = re.search(r"^## Quick start.*?```\w*\n(.*?)```", README, re.S | re.M).group(1)
    assert [l for l in block.splitlines() if l.strip() and not l.startswith("#")] == ["make demo", "make test"]


def test_exit_codes_are_documented():
    for code in ("0", "1", "2"):
        assert re.search(rf"^\| {code} \|", README, re.M)


def test_generated_pages_are_what_the_code_says(monkeypatch):
    """`cog --check` fails when a page's generated part differs from what its code produces
    today (the README's commands from click's --help, the rule table from checks/catalogue.py,
    the defaults from default_config.yaml)."""
    monkeypatch.chdir(ROOT)
    assert Cog().main(["cog", "--check", *GENERATED]) == 0, "run: cog -r " + " ".join(GENERATED)


def test_a_generated_page_that_drifted_is_caught(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    drifted = tmp_path / "rules.md"
    drifted.write_text(RULES_PAGE.replace("| `ID_FORMAT` | error |", "| `ID_FORMAT` | warning |"), encoding="utf-8")
    assert Cog().main(["cog", "--check", str(drifted)]) != 0


def test_the_readme_is_a_first_read():
    assert len(README.splitlines()) <= 250
    for page in re.findall(r"\]\((docs/[\w.-]+\.md|CHANGELOG\.md)\)", README):
        assert (ROOT / page).is_file(), page


def normalised(name: str) -> str:
    """A distribution name as PEP 503 compares them: `PyYAML` is `pyyaml`, `a_b.c` is `a-b-c`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_in_the_dependencies_page():
    """Each package of `[project] dependencies` and of every optional-dependency extra is named in
    the package column of docs/dependencies.md (its version specifiers and extras aside)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    page = (ROOT / "docs" / "dependencies.md").read_text(encoding="utf-8")
    named = normalised(" ".join(re.findall(r"^\| ([^|]+) \|", page, re.M)))
    missing = []
    for requirement in wanted:
        name = normalised(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip()).group())
        if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", named):
            missing.append(name)
    assert not missing, f"not in docs/dependencies.md: {missing}"


def _night_stages() -> list[str]:
    """The functions `_night` (pipeline/night/run.py) calls by name, in order: its stages."""
    import ast
    import builtins

    tree = ast.parse((ROOT / "pipeline" / "night" / "run.py").read_text(encoding="utf-8"))
    night = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "_night")
    calls = [c for c in ast.walk(night) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
    calls.sort(key=lambda c: (c.lineno, c.col_offset))
    names = [c.func.id for c in calls if c.func.id[0].islower() and not hasattr(builtins, c.func.id)]
    return list(dict.fromkeys(names))


def _diagram_nodes(page: str) -> list[str]:
    """The nodes of a page's first mermaid flowchart, in the order they are declared."""
    block = re.search(r"```mermaid\n(.*?)```", page, re.S)
    assert block, "no mermaid diagram"
    return re.findall(r"^\s+(\w+)\[", block.group(1), re.M)


def test_the_night_diagram_names_the_stages_the_code_runs():
    """docs/night.md's diagram is the night as `_night` reads: a stage added, removed or moved
    in the code and not in the picture fails here."""
    stages = _night_stages()
    assert stages[:3] == ["read_and_check", "take_back", "shared_contacts"], stages
    nodes = _diagram_nodes((ROOT / "docs" / "night.md").read_text(encoding="utf-8"))
    assert nodes[:2] == ["run_night", "locked"]
    assert nodes[2:] == stages


def test_a_diagram_that_left_out_a_stage_is_caught():
    page = (ROOT / "docs" / "night.md").read_text(encoding="utf-8").replace('    take_back["take_back', '    gone["gone')
    assert _diagram_nodes(page)[2:] != _night_stages()


def _tour_layers() -> list[str]:
    """The packages of docs/index.md's tour that carry a layer number, bottom up, as modules."""
    page = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    tour = page[page.index("## A tour of the code"):page.index("**Where a new rule goes**")]
    found = []
    for names, number in re.findall(r"^ {0,2}(\S[^\n]*?)\s+(\d+) ", tour, re.M):
        mods = [n.strip().rstrip("/").removesuffix(".py") for n in names.split(",")]
        found.append((int(number), " | ".join(sorted(f"pipeline.{m}" if m != "checks" else m for m in mods))))
    return [layer for _, layer in sorted(found)]


def test_the_tour_is_the_import_contract_s_order():
    """The layers `make test` holds (import-linter, pyproject.toml) are the tour's, in its order."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    layers = [" | ".join(sorted(p.strip() for p in layer.split("|"))) for layer in reversed(contract["layers"])]
    assert _tour_layers() == layers
