"""The shipped examples stay valid: files parse, and every gitmirror option they use exists."""

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from gitmirror.cli import cli
from gitmirror.mirrors_file import load_mirrors

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_mirrors_files_parse():
    assert len(load_mirrors(EXAMPLES / "mirrors.toml")) == 3
    assert len(load_mirrors(EXAMPLES / "mirrors.txt")) == 2


def test_yaml_examples_parse():
    workflow = yaml.safe_load((EXAMPLES / "github-actions" / "mirror.yml").read_text())
    assert workflow["jobs"]["sync"]["strategy"]["matrix"]["shard"] == [0, 1, 2, 3]
    cronjob = yaml.safe_load((EXAMPLES / "kubernetes" / "cronjob.yaml").read_text())
    assert cronjob["spec"]["jobTemplate"]["spec"]["completionMode"] == "Indexed"


def test_every_option_used_in_examples_exists():
    sync_help = CliRunner().invoke(cli, ["sync", "--help"]).output
    used = set()
    for path in EXAMPLES.rglob("*"):
        if path.is_file():
            for match in re.finditer(r"gitmirror sync [^\n\"'&|>]*", path.read_text()):
                used |= {w.split("=")[0] for w in shlex.split(match.group(0)) if w.startswith("--")}
    assert used >= {"--shard", "--report", "--metrics"}
    for option in used:
        assert option in sync_help, option
