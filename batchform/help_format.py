"""Help text for every ``batchform`` command: each option's help ends with its default.

A default that is a value is appended as ``(default: …)``; an option whose default is "not given" (None)
or a flag (off) must say in its own help what happens without it — tests/test_cli_help.py checks that
every option of every command mentions its default.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's defaults formatter, without the noise of ``(default: None)`` and ``(default: False)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "(default" in text or unset or not action.option_strings:
            if isinstance(action, argparse._StoreTrueAction) and "(default" not in text:
                return f"{text} (default: off)"
            return text
        return f"{text} (default: %(default)s)"


def subcommand(sub, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` shows ``description`` (or the summary) and every option's default."""
    return sub.add_parser(name, help=summary, description=description or summary, formatter_class=HelpFormatter)
