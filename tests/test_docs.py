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
