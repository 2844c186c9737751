"""No command line takes an abbreviated option: ``--ca`` must never be read as ``--card``.

argparse accepts any unambiguous prefix of a long option unless ``allow_abbrev=False``,
and subcommand parsers do not inherit that setting from their parent; the parsers of
:func:`mps_common.cli.new_parser` pass it on.
"""

from __future__ import annotations

import pytest

from agent import lpa_cli
from lpa_emulator import cli as emu_cli
from mps_common.cli import new_parser


def test_subcommands_of_new_parser_refuse_prefixes(capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    parser = new_parser("demo", "demo")
    profile = parser.add_subparsers(dest="group").add_parser("profile")
    enable = profile.add_subparsers(dest="command").add_parser("enable")
    enable.add_argument("--card")
    assert parser.parse_args(["profile", "enable", "--card", "x"]).card == "x"
    for prefix in ("--ca", "--car"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["profile", "enable", prefix, "x"])
        assert exc.value.code == 2
        assert f"unrecognized arguments: {prefix}" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "prefix"), [
    (["pki", "init", "/tmp/unused-pki", "--euicc", "1"], "--euicc"),
    (["smdp", "order", "--ic", "8949000000000000001", "--data", "/tmp/unused-smdp"], "--ic"),
    (["euicc", "--state", "/tmp/unused-card.json", "--vp", "127.0.0.1:1"], "--vp"),
])
def test_mps_emu_refuses_prefixes(argv: list[str], prefix: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert emu_cli.main(argv) == 2
    assert f"unrecognized arguments: {prefix}" in capsys.readouterr().err


def test_mps_lpa_refuses_ca_as_card(capsys: pytest.CaptureFixture[str]) -> None:
    """``--ca`` is an option of profile download, never a prefix of ``--card``."""
    code = lpa_cli.main(["--apdu", "emu", "--state", "/tmp/unused-card.json", "profile",
                         "enable", "89490000000000051512", "--ca", "/tmp/unused-ca.pem"])
    assert code == 2
    assert "unrecognized arguments: --ca" in capsys.readouterr().err
