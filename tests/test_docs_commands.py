"""Every ``prunepose`` / ``make`` command shown in README.md and docs/*.md must stay true.

Each command in a fenced shell block is parsed by the real CLI parser (stale flags or subcommands fail),
the experiment configs it names must load with its ``--set`` overrides and build their model, and the
cheap read-only commands (``models``, ``profile``) are executed. Commands that train or evaluate for
hours are exercised in tiny form by the CLI tests (tests/test_cli_*.py); here they are checked for
syntax, config and model validity, which is what goes stale when code changes.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from prunepose.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SHELL = {"", "bash", "sh", "shell", "console"}


def _shell_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, body) of each fenced block whose language is a shell (or none)."""
    blocks: list[tuple[int, str]] = []
    lang: str | None = None
    body: list[str] = []
    start = 0
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if lang is None:
                lang, body, start = line.strip()[3:].strip().lower(), [], i
            else:
                if lang in _SHELL:
                    blocks.append((start, "\n".join(body)))
                lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def _doc_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every prunepose/make command in a fenced shell block; continuation lines joined."""
    found: list[tuple[str, list[str]]] = []
    for doc in DOC_FILES:
        for lineno, body in _shell_blocks(doc.read_text()):
            for line in re.sub(r"\\\n\s*", " ", body).splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith(("prunepose ", "make ")):
                    argv = shlex.split(line, comments=True)
                    found.append((f"{doc.relative_to(ROOT)} (block at line {lineno}): {line}", argv))
    return found


COMMANDS = _doc_commands()


def test_docs_show_commands() -> None:
    assert len(COMMANDS) >= 10, "the docs lost their command examples"


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w.split(": ", 1)[1][:60] for w, _ in COMMANDS])
def test_doc_command_parses_and_its_config_loads(where: str, argv: list[str]) -> None:
    if argv[0] == "make":
        targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert argv[1] in targets, f"{where}: no Makefile target {argv[1]!r}"
        return
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse's way of rejecting a command line
        pytest.fail(f"{where}: the CLI rejects this command (exit {exc.code})")
    config = getattr(args, "config", None)
    if isinstance(config, str) and config.endswith(".yaml"):
        from prunepose.config import load_config
        from prunepose.registry import get_config

        cfg = load_config(ROOT / config, getattr(args, "set", []) or [])
        get_config(cfg["model"], **cfg["model_overrides"])


CHEAP = [(w, a) for w, a in COMMANDS if a[:2] in (["prunepose", "models"], ["prunepose", "profile"])]


@pytest.mark.parametrize("where,argv", CHEAP, ids=[w.split(": ", 1)[1][:60] for w, _ in CHEAP])
def test_cheap_doc_commands_run(where: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv[1:]) == 0, where
    assert capsys.readouterr().out.strip(), f"{where}: printed nothing"
