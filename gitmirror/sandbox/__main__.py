"""``python -m gitmirror.sandbox`` (and ``gitmirror sandbox``): run local hubs in the foreground.

Starts one hub of each kind, creates a user with tokens, seeds a sample model on the Hugging
Face hub, prints endpoints, tokens and the environment to export, and serves until
interrupted. ``--state-file`` writes the same facts as JSON (written once everything is up,
so a script can wait for the file to appear).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import click

from gitmirror.sandbox.hub import Hub
from gitmirror.sandbox.sandbox import Sandbox
from gitmirror.sandbox.seed import seed_sample_model


def _hub_facts(hub: Hub, user: str) -> dict[str, Any]:
    token = hub.issue_token(user, "write")
    return {
        "kind": hub.kind.name,
        "endpoint": hub.endpoint,
        "storage_endpoint": hub.storage_endpoint,
        "default_branch": hub.kind.default_branch,
        "user": user,
        "token": token,
        "read_token": hub.issue_token(user, "read"),
        "git_token": hub.git_token_for(token),
    }


def start_demo_sandbox(root: Path | None, host: str, user: str, sample: str, *, tls: bool = False,
                       rtt: float = 0.0) -> tuple[Sandbox, dict[str, Any]]:
    """Start the sandbox the command runs; returns it with the facts it prints. ``tls``: HTTPS
    only, from a local CA (needs ``trustme``); ``rtt``: every hub's round-trip time, seconds."""
    sandbox = Sandbox(root=root, host=host, tls=tls).start()
    facts: dict[str, Any] = {"hubs": {}}
    for kind in ("huggingface", "modelscope", "git"):
        hub = sandbox.add_hub(kind, rtt=rtt)
        hub.add_user(user)
        facts["hubs"][hub.name] = _hub_facts(hub, user)
    hf = sandbox.hub("huggingface")
    repo_id = f"{user}/{sample}"
    seeded = seed_sample_model(hf, repo_id)
    facts["sample"] = {"hub": hf.name, "repo_id": repo_id, "repo_type": "model",
                       "git_url": hf.git_url(repo_id), "refs": seeded.refs}
    ms = facts["hubs"]["modelscope"]
    facts["env"] = {
        "HF_ENDPOINT": hf.endpoint,
        "HF_TOKEN": facts["hubs"]["huggingface"]["token"],
        "MODELSCOPE_ENDPOINT": ms["endpoint"],
        "MODELSCOPE_API_TOKEN": ms["token"],
        **sandbox.tls_env(),  # the CA for git, git-lfs, gitmirror and the SDKs
    }
    facts["root"] = str(sandbox.root)
    return sandbox, facts


def _print_facts(facts: dict[str, Any]) -> None:
    for name, hub in facts["hubs"].items():
        click.echo(f"{name:12} {hub['endpoint']}  (storage {hub['storage_endpoint']}, "
                   f"default branch {hub['default_branch']})")
        click.echo(f"{'':12} user {hub['user']}  write token {hub['token']}  read token {hub['read_token']}")
        if hub["git_token"] != hub["token"]:
            click.echo(f"{'':12} git token (login) {hub['git_token']}")
    sample = facts["sample"]
    click.echo(f"\nSample model: {sample['git_url']}")
    for ref, sha in sorted(sample["refs"].items()):
        click.echo(f"  {sha}  {ref}")
    click.echo("\nUse it with:")
    for key, value in facts["env"].items():
        click.echo(f"  export {key}={value}")
    click.echo("\nServing until interrupted (Ctrl-C).", err=True)


def _write_state(path: Path, facts: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(facts, indent=2, ensure_ascii=False), encoding="utf-8")
    os.chmod(tmp, 0o600)  # it holds tokens
    os.replace(tmp, path)


@click.command("sandbox", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the hubs' repositories (default: a temporary one, removed on exit).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--user", default="demo", show_default=True, help="User created on every hub.")
@click.option("--sample", default="sample-model", show_default=True, help="Name of the seeded sample model.")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write endpoints, tokens and env as JSON here once ready.")
@click.option("--tls", is_flag=True, help="Serve HTTPS only, with certificates from a local CA (needs trustme).")
@click.option("--rtt", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Round-trip time of every hub's link, in seconds (a new connection costs one more, two with --tls).")
def sandbox_command(root: Path | None, host: str, user: str, sample: str, state_file: Path | None, tls: bool,
                    rtt: float) -> None:
    """Run local Hugging Face, ModelScope and git+LFS hubs in the foreground."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox, facts = start_demo_sandbox(root, host, user, sample, tls=tls, rtt=rtt)
    try:
        _print_facts(facts)
        if state_file is not None:
            _write_state(state_file, facts)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        if state_file is not None:
            state_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sandbox_command()
