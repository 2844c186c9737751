from pathlib import Path

import pytest

from agent.outbox import Outbox, OutboxError
from tests.wire_samples import sample_device


def test_crash_before_ack_resumes_with_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "outbox.json"
    first = Outbox(path).load().stage(lambda seq: sample_device(seq=seq, ts=1))
    assert first.seq == 1
    # A new process after a crash: same identity -> the very same message, not seq 2.
    again = Outbox(path).load().stage(lambda seq: sample_device(seq=seq, ts=2))
    assert again == first


def test_delivery_then_change_takes_the_next_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.json"
    box = Outbox(path).load()
    info = box.stage(lambda seq: sample_device(seq=seq))
    box.mark_delivered(info)
    assert Outbox(path).load().pending is None
    assert box.is_delivered(sample_device(seq=99, ts=5))  # seq and ts do not count
    changed = Outbox(path).load().stage(lambda seq: sample_device(seq=seq, ip=("10.0.0.9",)))
    assert changed.seq == 2
    assert not box.load().is_delivered(changed)


def test_corrupt_outbox_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "outbox.json"
    path.write_text("{not json")
    with pytest.raises(OutboxError, match="unreadable"):
        Outbox(path).load()
    path.write_text('{"version": 1, "seq": -4}')
    with pytest.raises(OutboxError, match="seq"):
        Outbox(path).load()
