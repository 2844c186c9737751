"""The test bed's exceptions: one root for the rig, its process stack and the story."""

from __future__ import annotations


class TestbedError(Exception):
    """Root of every error the test bed raises."""

    __test__ = False  # a class named Test* is not a pytest test case


class StackError(TestbedError):
    """A service of the emulated stack could not be started."""


class RigError(TestbedError):
    """The emulated deployment could not be set up or did not do what it should."""
