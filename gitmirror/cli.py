"""The command line: a thin shell over :mod:`gitmirror.api`.

Only click is imported at start-up; everything else is imported inside the command that needs
it, so that ``gitmirror --help`` answers at once.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gitmirror import __version__
from gitmirror.cli_failures import CliGroup, JsonCommand, fail, handles_errors

EPILOG = "Exit codes: 0 ok, 2 bad input, 3 not found, 4 auth, 5 permission, 6 diverged, 7 integrity, 8 network, 9 environment, 10 not in sync, 11 some mirrors failed, 12 locked. See docs/exit-codes.md."


def _first_line(argv: list[str]) -> str | None:
    """The first line a tool prints, or None when it is missing or fails."""
    import subprocess

    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def version_text() -> str:
    """What ``gitmirror --version`` prints: gitmirror's version and the git and git-lfs it will run."""
    import platform

    git = _first_line(["git", "--version"])  # "git version 2.39.5"
    lfs = _first_line(["git", "lfs", "version"])  # "git-lfs/3.3.0 (GitHub; linux amd64; go 1.19.8)"
    return "\n".join([
        f"gitmirror {__version__} (Python {platform.python_version()})",
        "git " + (git.removeprefix("git version ").split()[0] if git else "not installed"),
        "git-lfs " + (lfs.split()[0].removeprefix("git-lfs/") if lfs else "not installed"),
    ])


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit()


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the versions of gitmirror, git and git-lfs, and exit.")
def cli() -> None:
    """Mirror Git repositories with their Git LFS content, with the whole history.

    \b
    gitmirror clone-push hf://Qwen/Qwen3-0.6B ms://my-org/Qwen3-0.6B
    gitmirror verify hf://Qwen/Qwen3-0.6B ms://my-org/Qwen3-0.6B
    """


def _setup_logging(level: str) -> None:
    from gitmirror.errors import scrub

    class ScrubbingFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return scrub(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level.upper() != "DEBUG":
        for noisy in ("urllib3", "git", "filelock", "httpx", "huggingface_hub", "modelscope", "modelscope_hub"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from gitmirror.hubs.huggingface import install_timeouts

    install_timeouts()  # every command: huggingface_hub's shared HTTP client gets the run's timeouts


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--src-token", help="Token for SRC; visible in `ps`, prefer GITMIRROR_SRC_TOKEN (default: then HF_TOKEN / MODELSCOPE_API_TOKEN / stored login)."),
        click.option("--dst-token", help="Token for DST; visible in `ps`, prefer GITMIRROR_DST_TOKEN (default: as for SRC)."),
        click.option("--refs", "refs", multiple=True, metavar="PATTERN", help="Also mirror refs matching PATTERN, e.g. 'refs/pr/*'. Repeatable."),
        click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave out refs matching PATTERN (full ref or branch/tag name). Repeatable."),
        click.option("--map", "map_", multiple=True, metavar="SRC:DST", help="Mirror branch SRC as DST. The default branch maps to the destination's default branch."),
        click.option("--cache-dir", type=click.Path(path_type=Path), envvar="GITMIRROR_CACHE", help="Where working repositories are kept between runs."),
        click.option("--no-cache", is_flag=True, help="Use a temporary working repository, removed at exit."),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result on stdout."),
        click.option("--log-level", default="WARNING", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _size(value: str | None) -> int | None:
    """--bytes-in-flight's value in bytes (see gitmirror.lfs.admission.parse_size)."""
    if value is None:
        return None
    from gitmirror.lfs.admission import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("clone-push", cls=JsonCommand)
@click.argument("src")
@click.argument("dst")
@common_options
@click.option("--force", is_flag=True, help="Overwrite diverged destination refs (with --force-with-lease).")
@click.option("--prune", is_flag=True, help="Delete destination branches and tags the source does not have.")
@click.option("--private/--public", "private", default=None, help="Visibility of a created destination (default: as the source).")
@click.option("--dry-run", is_flag=True, help="Print the plan and move nothing; exit with the code of a failure the plan foresees.")
@click.option("--repair", is_flag=True, help="Check every LFS object of the history on DST (not only the new ones) and upload what it lacks.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="LFS objects transferred at once, at most (default: as many as the two bounds below allow).")
@click.option("--requests-per-hub", type=click.IntRange(1, 256), metavar="N", help="LFS requests in flight at each hub (default 32).")
@click.option("--bytes-in-flight", metavar="SIZE", callback=lambda _ctx, _param, value: _size(value),
              help="Sizes of the LFS objects transferred at once, e.g. 512M or 2G (default 1G; a larger object moves alone).")
@click.option("--lfs-cache", type=click.Path(path_type=Path), help="Keep a local copy of LFS objects here (default: none, objects stream through).")
@click.option("--src-lfs-url", metavar="URL", help="Read the source's LFS objects from this LFS API (http(s)), whatever its .lfsconfig says.")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no table: only the one-line summary (and errors).")
@click.option("--snapshot", is_flag=True, help="Instead of the history, put the source's current files on DST as one new commit.")
@click.option("--revision", metavar="REV", help="With --snapshot: the source branch, tag or ref to take (default: its default branch).")
@click.option("--commit-message", metavar="TEXT", help="With --snapshot: the new commit's message (default: names the source and its commit).")
@click.option("--modelscope-card", is_flag=True, help="ModelScope model DST: add configuration.json and README.md's tasks from the source card, as one commit on top of the default branch.")
@click.option("--convert", is_flag=True, help="Rewrite the history the destination's rules refuse (files into LFS; toward ModelScope, metadata files out of LFS), the same way on every run.")
@handles_errors
def clone_push(src: str, dst: str, src_token, dst_token, refs, exclude, map_, cache_dir, no_cache, as_json, log_level,
               force, prune, private, dry_run, repair, jobs, requests_per_hub, bytes_in_flight, lfs_cache, src_lfs_url,
               quiet, snapshot, revision, commit_message, modelscope_card, convert) -> None:
    """Mirror SRC to DST: branches, tags, history and every LFS object.

    SRC and DST are hf://owner/name, hf://datasets/owner/name, ms://owner/name, a git URL or a
    local path. A bare owner/name means hf:// as SRC and ms:// as DST.
    """
    _setup_logging(log_level)
    from gitmirror import api

    from gitmirror.preload import preload
    from gitmirror.progress import progress_reporter

    _check_snapshot_options(snapshot, revision, commit_message, refs=refs, exclude=exclude, map=map_, prune=prune, force=force,
                            repair=repair, convert=convert, **{"modelscope-card": modelscope_card})
    if not as_json:
        preload("rich.console", "rich.table")  # for the summary at the end
    with progress_reporter(enabled=not (quiet or as_json)) as progress:
        git_progress = progress.git if progress is not None else None
        if snapshot:
            result = api.snapshot(
                src, dst, revision=revision, message=commit_message, src_token=src_token, dst_token=dst_token,
                private=private, dry_run=dry_run, jobs=jobs, requests_per_hub=requests_per_hub,
                bytes_in_flight=bytes_in_flight, cache_dir=cache_dir, no_cache=no_cache,
                lfs_cache=lfs_cache, progress=progress, src_lfs_url=src_lfs_url, git_progress=git_progress,
            )
        else:
            result = api.mirror(
                src, dst, src_token=src_token, dst_token=dst_token, refs=refs, exclude=exclude, map=map_,
                force=force, prune=prune, private=private, dry_run=dry_run, repair=repair, jobs=jobs,
                requests_per_hub=requests_per_hub, bytes_in_flight=bytes_in_flight,
                cache_dir=cache_dir, no_cache=no_cache, lfs_cache=lfs_cache, progress=progress,
                src_lfs_url=src_lfs_url, git_progress=git_progress, modelscope_card=modelscope_card,
                convert=convert,
            )
    from gitmirror import report

    first = result.plan.foreseen[0] if dry_run and result.plan.foreseen else None
    message = f"the run would fail: {first.error}" if first else ""
    if as_json:
        failure = {"error": report.error_dict(first.error, first.error.exit_code, message, first.refs)} if first else {}
        click.echo(json.dumps({**result.to_dict(), **failure}, indent=2))
    elif dry_run:
        report.print_plan(result.plan, table=not quiet)
    else:
        report.print_result(result, table=not quiet)
    if first:  # the plan printed, the dry run ends as the run would
        fail(message, first.error.exit_code)


def _check_snapshot_options(snapshot: bool, revision, commit_message, **history_options: Any) -> None:
    """--revision/--commit-message need --snapshot; the history options make no sense with it."""
    from gitmirror.errors import UsageError

    if not snapshot:
        if revision or commit_message:
            raise UsageError("--revision and --commit-message go with --snapshot")
        return
    given = [name for name, value in history_options.items() if value]
    if given:
        names = ", ".join(f"--{n}" for n in given)
        raise UsageError(f"{names} cannot be used with --snapshot", hint="a snapshot writes one commit on the destination's default branch")


@cli.command("verify", cls=JsonCommand)
@click.argument("src")
@click.argument("dst")
@common_options
@click.option("--convert", is_flag=True, help="DST was mirrored with --convert: compare it with the rewritten history.")
@handles_errors
def verify_cmd(src: str, dst: str, src_token, dst_token, refs, exclude, map_, cache_dir, no_cache, as_json, log_level,
               convert) -> None:
    """Say whether DST is an exact mirror of SRC (refs and LFS objects). Changes nothing.

    Exits 0 only when in sync, 10 when not.
    """
    _setup_logging(log_level)
    from gitmirror import api
    from gitmirror.errors import EXIT_NOT_IN_SYNC

    result = api.verify(src, dst, src_token=src_token, dst_token=dst_token, refs=refs, exclude=exclude, map=map_,
                        cache_dir=cache_dir, no_cache=no_cache, convert=convert)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from gitmirror import report

        report.print_verify(result)
    if not result.in_sync:
        sys.exit(EXIT_NOT_IN_SYNC)


def _sync_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("mirrors_file", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option("-p", "--parallel", type=click.IntRange(1, 64), help="Mirrors run at once.  [default: 4]"),
        # The old name of --parallel. Not in --help: in clone-push and in mirrors files "jobs" means LFS transfers.
        click.option("-j", "--jobs", type=click.IntRange(1, 64), hidden=True),
        click.option("--delay", default=0.0, show_default=True, type=click.FloatRange(0), help="Seconds between mirror starts on the same hub (rate limits)."),
        click.option("--shard", metavar="K/N", help="Only the K-th (0-based) of N stable, disjoint parts; auto/N reads JOB_COMPLETION_INDEX."),
        click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a JSON report here."),
        click.option("--metrics", "metrics_path", type=click.Path(dir_okay=False, path_type=Path), help="Write Prometheus textfile-collector metrics here."),
        click.option("--prune-cache", is_flag=True, help="Remove the caches of mirrors no longer listed."),
        click.option("--cache-dir", type=click.Path(path_type=Path), envvar="GITMIRROR_CACHE", help="Where working repositories are kept between runs."),
        click.option("--dry-run", is_flag=True, help="Plan every mirror and move nothing."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout."),
        click.option("--log-level", default="WARNING", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)),
    ]
    for option in reversed(options):
        func = option(func)
    return func


SYNC_JOBS_NOTE = ("gitmirror: note: `sync --jobs` is now `sync --parallel` (mirrors run at once); "
                  "`jobs` in a mirrors file and `clone-push --jobs` are LFS transfers within one mirror")


def _run_sync(mirrors_file, parallel, jobs, delay, shard, report_path, metrics_path, prune_cache, cache_dir, dry_run,
              as_json, log_level) -> None:
    _setup_logging(log_level)

    import time

    from gitmirror import api, report
    from gitmirror.mirrors_file import load_mirrors, parse_shard
    from gitmirror.sync import SyncReport, prune_cache as prune, write_json_report, write_metrics

    if jobs is not None:
        click.echo(SYNC_JOBS_NOTE, err=True)
    entries = load_mirrors(mirrors_file)
    shard_pair = parse_shard(shard) if shard else None
    cache_root = cache_dir or api.default_cache_dir()
    finished = []  # what a Ctrl-C leaves: the report still records the mirrors that completed

    def on_outcome(outcome) -> None:
        finished.append(outcome)
        if not as_json:
            report.print_outcome_line(outcome)

    started = time.time()
    try:
        result = api.sync(entries, parallel=parallel or jobs or 4, delay=delay, shard=shard_pair,
                          cache_dir=cache_root, dry_run=dry_run, on_outcome=on_outcome)
    except KeyboardInterrupt:
        cut = SyncReport(outcomes=list(finished), started_at=started, seconds=time.time() - started, interrupted=True)
        if report_path:
            write_json_report(cut, report_path)
        if metrics_path and not dry_run:
            write_metrics(cut, metrics_path, cache_root / "sync-state.json")
        raise
    if report_path:
        write_json_report(result, report_path)
    if metrics_path and not dry_run:
        write_metrics(result, metrics_path, cache_root / "sync-state.json")
    if prune_cache:
        for path in prune(cache_root, entries):
            logging.getLogger("gitmirror").info("removed the cache %s", path)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        report.print_sync(result)
    sys.exit(result.exit_code)


@cli.command("sync", cls=JsonCommand)
@_sync_options
@handles_errors
def sync_cmd(**kwargs: Any) -> None:
    """Bring every mirror in MIRRORS_FILE up to date (for cron, CI and Kubernetes).

    MIRRORS_FILE is TOML ([defaults] and [[mirror]] tables with src, dst and options) or a plain
    list of 'SRC DST' lines. A failed mirror does not stop the others; the exit code is 0 when
    all succeeded and 11 when some failed.
    """
    _run_sync(**kwargs)


@cli.command("batch", cls=JsonCommand)
@_sync_options
@handles_errors
def batch_cmd(**kwargs: Any) -> None:
    """The same as sync (the name the original scripts used for a plain list of pairs)."""
    _run_sync(**kwargs)


@cli.command("doctor", cls=JsonCommand)
@click.option("--cache-dir", type=click.Path(path_type=Path), envvar="GITMIRROR_CACHE", help="The cache directory to check (default: as for clone-push).")
@click.option("--require", multiple=True, type=click.Choice(["hf", "ms"]), help="A missing token for this hub is a failure, not a warning. Repeatable.")
@click.option("--timeout", default=8.0, show_default=True, type=click.FloatRange(0.1, 120), help="Seconds for each network check.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
@handles_errors
def doctor_cmd(cache_dir, require, timeout, as_json) -> None:
    """Check this machine: git, git-lfs, tokens (and whether they work), endpoints, cache, disk.

    Shows where each token comes from, never the token. Exits 0 when every check passes, 9 when
    something on this machine or its network fails, 4 when only a token does.
    """
    _setup_logging("ERROR")
    from gitmirror import doctor

    report = doctor.run_checks(cache_dir=cache_dir, require=require, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        doctor.print_report(report)
    sys.exit(report.exit_code)


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), required=False)
def completion_cmd(shell: str | None) -> None:
    """Print the shell completion script for SHELL (default: from $SHELL).

    \b
    bash:  eval "$(gitmirror completion bash)"      (or add it to ~/.bashrc)
    zsh:   eval "$(gitmirror completion zsh)"       (or add it to ~/.zshrc)
    fish:  gitmirror completion fish > ~/.config/fish/completions/gitmirror.fish
    """
    import os

    from click.shell_completion import get_completion_class

    shell = shell or os.path.basename(os.environ.get("SHELL", "")) or "bash"
    completer = get_completion_class(shell)
    if completer is None:
        fail(f"no completion for the shell {shell!r}; name one: bash, zsh or fish", 2)
        return
    # The same script click prints for _GITMIRROR_COMPLETE=<shell>_source gitmirror.
    click.echo(completer(cli, {}, "gitmirror", "_GITMIRROR_COMPLETE").source())


@cli.command("sandbox", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def sandbox_cmd(ctx: click.Context) -> None:
    """Run local Hugging Face, ModelScope and git+LFS hubs for trying gitmirror out (see --help)."""
    from gitmirror.sandbox.__main__ import sandbox_command

    sandbox_command.main(args=ctx.args, prog_name="gitmirror sandbox", standalone_mode=True)


def main() -> None:
    try:
        # A fixed name, so that `python -m gitmirror` answers to _GITMIRROR_COMPLETE and says "gitmirror" in usage lines.
        cli(prog_name="gitmirror")
    finally:
        # The work is done and reported. The interpreter's last garbage collections over the hub
        # SDKs' objects cost about 0.2 s per run (measured; a cron job pays it every time);
        # frozen objects are skipped by them. atexit handlers and stream flushes still run.
        gc.freeze()
