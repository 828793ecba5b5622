"""How a command fails, whatever it ran: one scrubbed line on stderr and the documented exit code
(JSON on stdout too under ``--json``), Ctrl-C ending every git child and exiting 130 at once, and
the habits of the old scripts (a token as a third argument, ``--hf-model``, ``transfer``) answered
with a pointer to the new form, never by echoing an argument that may be a token.

The click command classes and the decorator here are what :mod:`gitmirror.cli` builds its commands on.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

# --- people arriving from the old scripts ------------------------------------------------------------
# They took `<hf_model> <ms_model> [hf_token]` positionally, or --hf-model/--ms-model/--hf-token, and
# had actions `transfer`, `setup` and `test`. Each habit gets a one-line pointer to the new form, and
# no argument is ever echoed: any of them may be a token.

EXTRA_ARGUMENT = ("unexpected extra argument (not shown: it may be a token); "
                  "pass tokens with GITMIRROR_SRC_TOKEN / HF_TOKEN (GITMIRROR_DST_TOKEN / MODELSCOPE_API_TOKEN for DST)")
_MODEL_FLAGS = ("--hf-model and --ms-model are gone: name both repositories as arguments, "
                "`gitmirror clone-push hf://ORG/MODEL ms://ORG/MODEL`")
OLD_FLAGS: dict[str, str] = {
    "--hf-model": _MODEL_FLAGS,
    "--ms-model": _MODEL_FLAGS,
    "--hf-token": "--hf-token is gone (its value is not shown): set HF_TOKEN or GITMIRROR_SRC_TOKEN "
                  "(or pass --src-token)",
    "--verify-only": "--verify-only is now a command of its own: `gitmirror verify SRC DST`",
}
OLD_ACTIONS: dict[str, str] = {
    "transfer": "`transfer` is now `gitmirror clone-push SRC DST` (e.g. hf://ORG/MODEL ms://ORG/MODEL)",
    "setup": "`setup` and `test` are now `gitmirror doctor` (git, git-lfs, tokens, endpoints, cache)",
    "test": "`setup` and `test` are now `gitmirror doctor` (git, git-lfs, tokens, endpoints, cache)",
}


def old_habits(args: list[str]) -> str | None:
    """One line pointing each old-script habit in ``args`` to its new form, or None when none is there.

    Looks only for the old flag names (``--hf-token`` or ``--hf-token=...``) and an old action as the
    command; never copies an argument into the line.
    """
    pointers: list[str] = []
    positional = [a for a in args if not a.startswith("-")]
    if positional and positional[0] in OLD_ACTIONS:
        pointers.append(OLD_ACTIONS[positional[0]])
    for arg in args:
        name = arg.split("=", 1)[0]
        pointer = OLD_FLAGS.get(name)
        if pointer and pointer not in pointers:
            pointers.append(pointer)
    return "; ".join(pointers) or None


class Command(click.Command):
    """A command that never echoes an unexpected extra argument (click's message shows it whole)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.allow_extra_args:  # e.g. `sandbox`, which hands its arguments on
            return super().parse_args(ctx, args)
        ctx.allow_extra_args = True
        try:
            rest = super().parse_args(ctx, args)
        finally:
            ctx.allow_extra_args = False
        if rest and not ctx.resilient_parsing:
            raise click.UsageError(EXTRA_ARGUMENT, ctx)
        return rest


class CliGroup(click.Group):
    """The command group: old-script habits get their pointer before click parses anything."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        pointer = None if ctx.resilient_parsing or args[:1] == ["sandbox"] else old_habits(args)
        if pointer:
            click.echo(f"gitmirror: error: {pointer}", err=True)
            ctx.exit(2)
        return super().parse_args(ctx, args)


def fail(message: str, code: int, exc: BaseException | None = None, as_json: bool = False) -> None:
    """One line on stderr and exit ``code``; with ``as_json``, also one JSON object on stdout
    (``{"error": {...}}``, see :func:`gitmirror.report.error_dict`)."""
    if as_json and exc is not None:
        from gitmirror.report import error_dict

        click.echo(json.dumps({"error": error_dict(exc, code, message)}, indent=2))
    click.echo(f"gitmirror: error: {message}", err=True)
    sys.exit(code)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one line on stderr and their documented exit code; a command run
    with ``--json`` (its ``as_json`` argument) also prints the failure as JSON on stdout."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gitmirror.errors import EXIT_INTERNAL, GitMirrorError, scrub

        as_json = bool(kwargs.get("as_json"))
        previous = _on_ctrl_c()
        try:
            return func(*args, **kwargs)
        except GitMirrorError as exc:
            message = str(exc)
            if exc.transient and not exc.hint:
                message += " (a network or server fault outlasted the retries; run the same command again to resume)"
            fail(message, exc.exit_code, exc, as_json)
        except KeyboardInterrupt as exc:
            _interrupted(exc, as_json)
        except click.exceptions.Exit:
            raise
        except Exception as exc:  # a bug: still one scrubbed line, traceback only when debugging
            logging.getLogger("gitmirror").debug("unexpected error", exc_info=True)
            fail(scrub(f"unexpected {type(exc).__name__}: {exc}").replace("\n", " "), EXIT_INTERNAL, exc, as_json)
        finally:
            if previous is not None:  # in-process callers (tests, embedding) get their handler back
                import signal

                signal.signal(signal.SIGINT, previous)

    return wrapper


class JsonCommand(Command):
    """A command with ``--json`` whose bad command lines (click's usage errors, exit 2) also
    print the failure as JSON on stdout when ``--json`` is among the arguments. Like every
    command, it never echoes an unexpected extra argument (:class:`Command`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        as_json = "--json" in args  # before parsing, which consumes ``args``
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            if as_json:
                from gitmirror.report import error_dict

                click.echo(json.dumps({"error": error_dict(exc, exc.exit_code, exc.format_message())}, indent=2))
            raise


def _on_ctrl_c() -> Any:
    """Ctrl-C (SIGINT) ends every git this run started, then raises KeyboardInterrupt; a second
    one is ignored, so that it cannot break the cleanup with a traceback. Returns the handler it
    replaced (None outside the main thread, where none can be set)."""
    import signal

    def interrupt(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from gitmirror.gitrepo import kill_git_children

        # git runs in process groups of its own (gitrepo.run_git): ended here, so that threads
        # waiting for one (the source's listing, the early fetch) finish at once.
        kill_git_children()
        raise KeyboardInterrupt

    import threading

    if threading.current_thread() is not threading.main_thread():  # only there may a handler be set
        return None
    return signal.signal(signal.SIGINT, interrupt)


def _interrupted(exc: BaseException, as_json: bool) -> None:
    """Exit 130 now, whatever threads are still busy. Everything the run leaves is safe to leave:
    refs move only after their objects (a rerun resumes), the cache lock dies with the process,
    and LFS workers in the middle of a request are not worth waiting for. With ``as_json`` the
    failure is printed as JSON on stdout too."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from gitmirror.gitrepo import kill_git_children

    kill_git_children()
    message = "interrupted; run the same command again to resume"
    if as_json:
        from gitmirror.report import error_dict

        click.echo(json.dumps({"error": error_dict(exc, 130, message)}, indent=2))
    click.echo(f"gitmirror: error: {message}", err=True)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)
