"""mps_common.cli.add_lazy_parser: a subcommand's parser is built only when the command
line names it, and the parser behaves as one built up front (help, errors, abbreviations)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from agent import lpa_cli
from mps_common.cli import add_lazy_parser, new_parser, parse


def _parser(built: list[str]) -> argparse.ArgumentParser:
    parser = new_parser("prog", "a test")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def make(name: str) -> Callable[[argparse.ArgumentParser], None]:
        def build(p: argparse.ArgumentParser) -> None:
            built.append(name)
            p.add_argument("--value-of-" + name)
        return build

    for name in ("alpha", "beta"):
        add_lazy_parser(sub, name, f"the {name} command", make(name))
    return parser


def test_only_the_named_command_is_built(capsys: pytest.CaptureFixture[str]) -> None:
    built: list[str] = []
    args = parse(_parser(built), ["beta", "--value-of-beta", "7"])
    assert isinstance(args, argparse.Namespace)
    assert (args.command, args.value_of_beta, built) == ("beta", "7", ["beta"])
    assert parse(_parser([]), ["--help"]) == 0
    out = capsys.readouterr().out
    assert "the alpha command" in out and "the beta command" in out


def test_errors_and_abbreviations_as_usual(capsys: pytest.CaptureFixture[str]) -> None:
    built: list[str] = []
    assert parse(_parser(built), ["gamma"]) == 2
    assert "invalid choice: 'gamma' (choose from 'alpha', 'beta')" in capsys.readouterr().err
    assert parse(_parser(built), ["alpha", "--value-of"]) == 2  # no abbreviations
    assert built == ["alpha"]
    assert parse(_parser([]), ["alpha", "--help"]) == 0
    assert "usage: prog alpha [-h] [--value-of-alpha" in capsys.readouterr().out


def test_mps_lpa_builds_the_leaf_it_runs() -> None:
    parser = lpa_cli.build_parser()
    args = parse(parser, ["chip", "info", "--json"])
    assert isinstance(args, argparse.Namespace) and args.json is True
    groups = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    built = {name for name, p in dict.items(groups.choices)
             if isinstance(p, argparse.ArgumentParser)}
    assert built == {"chip"}
