"""ES10 answers from a hostile or broken card into the LPA's ES10 client: real answers
with flipped bits, cut short or extended, random TLV trees and noise, under every status
word. Only Es10Error comes out (``mps-bench fuzz`` runs 10,000)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mps_bench.fuzz import (
    ScriptedChannel,
    check_lpa_input,
    lpa_calls,
    lpa_inputs,
    real_es10_answers,
)
from mps_esim.lpa.es10 import Es10Client, Es10Error

with tempfile.TemporaryDirectory(prefix="mps-der-") as _card_dir:
    # What a real software eUICC answers; the strategies mutate these.
    ANSWERS = real_es10_answers(Path(_card_dir))


def test_every_call_has_a_real_answer_to_mutate() -> None:
    assert set(ANSWERS) == set(lpa_calls())
    assert all(ANSWERS[name] for name in ("get_eid", "get_euicc_info2", "list_profiles"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=lpa_inputs(ANSWERS))
def test_broken_answers_only_raise_es10_errors(case: tuple[str, bytes, int]) -> None:
    check_lpa_input(case)


def test_the_real_answers_still_decode() -> None:
    client = Es10Client(ScriptedChannel(ANSWERS["get_eid"], 0x9000))
    assert len(client.get_eid()) == 32
    with pytest.raises(Es10Error):
        Es10Client(ScriptedChannel(ANSWERS["get_eid"][:-1], 0x9000)).get_eid()
