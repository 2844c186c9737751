"""``mps-agent identity`` against the emulated modem in every vendor dialect, the eUICC
reached through the modem, over real pseudo-terminals.

One ``mps-emu modem --manifest`` process serves the five modems (as a test rig does).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lpa_emulator.modem import DIALECTS
from mps_testbed.stack.procs import ProcessGroup, console_script
from mps_wire.identifiers import make_iccid, validate_eid, validate_imei

pytestmark = pytest.mark.timeout(90)


@dataclass(frozen=True)
class Board:
    dialect: str
    link: Path
    profile: Path
    eid: str
    iccid: str


PROFILE = """
name = "emulated-{dialect}"
[modem]
port = "{link}"
dialect = "{dialect}"
[card]
url = "at://"
[device]
capabilities = ["lte"]
network_timeout = 20
state_dir = "{workdir}/agent"
"""


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Board]]:
    root = tmp_path_factory.mktemp("dialects")
    manifest, boards = [], {}
    for n, dialect in enumerate(sorted(DIALECTS)):
        workdir = root / dialect
        workdir.mkdir()
        iccid = make_iccid(f"8949020000000000{n:02d}")
        out = subprocess.run([*console_script("mps-emu"), "euicc", "--state",
                              str(workdir / "euicc.json"), "--iccid", iccid,
                              "--imsi", f"26202000000000{n}"],
                             capture_output=True, text=True, check=True)
        link, profile = workdir / "modem", workdir / "profile.toml"
        profile.write_text(PROFILE.format(dialect=dialect, link=link, workdir=workdir))
        manifest += ["[[modem]]", f'link = "{link}"', f'state = "{workdir}/modem.json"',
                     f'card_state = "{workdir}/euicc.json"', f'dialect = "{dialect}"', ""]
        boards[dialect] = Board(dialect, link, profile, json.loads(out.stdout)["eid"], iccid)
    (root / "modems.toml").write_text("\n".join(manifest))
    with ProcessGroup(root / "logs") as procs:
        svc = procs.start("modems", [*console_script("mps-emu"), "modem",
                                     "--manifest", str(root / "modems.toml")])
        svc.wait_for_line(f"{len(boards)} modems ready", 20)
        yield boards


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_identity_through_the_modem_in_every_dialect(boards: dict[str, Board],
                                                     dialect: str) -> None:
    board = boards[dialect]
    done = subprocess.run([*console_script("mps-agent"), "identity",
                           "--profile", str(board.profile)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert validate_eid(data["eid"]) == board.eid
    assert data["iccid"] == board.iccid
    assert validate_imei(data["imei"]) == data["imei"]
    assert data["imsi"].startswith("26202")
    assert data["ip"], "registered, so the data context has an address"
    manufacturer, model, revision = DIALECTS[dialect].identity
    assert data["model"] == {"manufacturer": manufacturer, "model": model,
                             "revision": revision}
    assert data["profile"] == f"emulated-{dialect}"
