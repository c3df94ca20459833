"""Docs that tests keep true: every command and rule code appears in the README, every
command's help ends with an example, and the Quick start holds exactly two commands."""

from __future__ import annotations

import re
from pathlib import Path

import click

from checks.catalogue import RULES
from pipeline.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


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


def test_every_rule_is_in_the_catalogue_table():
    for code, spec in RULES.items():
        assert re.search(rf"^\| `{code}` \| {spec.severity} \| {spec.category} \|", README, re.M), code


def test_quick_start_has_exactly_two_commands():
    block = re.search(r"^## Quick start.*?```\w*\n(.*?)```", README, re.S | re.M).group(1)
    assert [l for l in block.splitlines() if l.strip() and not l.startswith("#")] == ["make demo", "make test"]


def test_exit_codes_are_documented():
    for code in ("0", "1", "2"):
        assert re.search(rf"^\| {code} \|", README, re.M)
