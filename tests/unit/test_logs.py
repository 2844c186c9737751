"""mps_common.logs: loggers that load logging only when a record is worth showing, and
otherwise behave as logging's own."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from mps_common import logs

SCRIPT = """
import sys
from mps_common import logs
log = logs.get("mps.test")
logs.configure("warning")
log.debug("hidden %s", 1)
log.info("hidden too")
assert "logging" not in sys.modules, "loaded for nothing"
assert not log.isEnabledFor(logs.INFO) and log.isEnabledFor(logs.ERROR)
log.warning("shown %s", 2)
assert "logging" in sys.modules
log.info("still hidden")
"""


def test_logging_loads_only_for_a_record_at_the_level_set() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING mps.test: shown 2")


def test_with_logging_loaded_records_go_to_the_named_logger(
        caplog: pytest.LogCaptureFixture) -> None:
    log = logs.get("mps.test.loaded")
    with caplog.at_level(logging.DEBUG, logger="mps.test.loaded"):
        log.debug("d %d", 1)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("mps.test.loaded", "DEBUG", "d 1"), ("mps.test.loaded", "ERROR", "failed")]
    assert caplog.records[1].exc_info is not None
    assert caplog.records[0].funcName == "test_with_logging_loaded_records_go_to_the_named_logger"
