"""``batchform show NAME``: one spec's equations and how each was proved, in the terminal."""

from __future__ import annotations
