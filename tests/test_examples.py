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


# --- each deployment example, run or checked as far as this machine allows --------------------------------------------

import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

from gitmirror.sandbox.seed import seed_sample_model  # noqa: E402

from installer import dockerfile_stages  # noqa: E402
from judges import auth_env, modelscope_view, remote_refs  # noqa: E402

#: Where README "Install" and the Dockerfile put gitmirror for cron, systemd and the image.
INSTALL_PREFIX = "/opt/gitmirror"
CRON_PATH = "/usr/bin:/bin"  # what cron gives a job
#: `pip install gitmirror` (or pipx, uv): from the package index, where no such package exists.
INDEX_INSTALL = r"(pip[x]?|uv tool|uv pip) install (-\S+ )*[\"']?gitmirror\b(?![@/.-])"


def assert_runs_gitmirror(argv: list[str]) -> None:
    """``argv`` (after the executable) names a gitmirror subcommand and only options it has, none hidden."""
    assert argv and argv[0] in cli.commands, argv
    command = cli.commands[argv[0]]
    visible = {opt for p in command.params if not getattr(p, "hidden", False) for opt in (*p.opts, *p.secondary_opts)}
    for word in argv[1:]:
        if word.startswith("-"):
            assert word.split("=")[0] in visible, f"{argv[0]} has no option {word}"


def test_install_prefix_is_the_one_readme_and_dockerfile_use():
    assert f"{INSTALL_PREFIX}/bin/gitmirror" in (EXAMPLES.parent / "README.md").read_text()
    _, stages = dockerfile_stages()
    assert any(f"install-venv.sh {INSTALL_PREFIX} " in run for run in stages[-1].all("RUN"))


def crontab_command() -> str:
    lines = [line for line in (EXAMPLES / "crontab").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 5)
    assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5]), fields
    return fields[5]


def test_crontab_line_runs_under_crons_empty_environment(installed_gitmirror, hub_pair, git_env, tmp_path, unique_name):
    """The crontab line itself, as cron runs it: /bin/sh -c, PATH=/usr/bin:/bin, no other variable but
    HOME, LOGNAME and SHELL; its paths moved under tmp_path and to the installed wheel. The source is
    private, so the mirror happens only if the env file's tokens reach gitmirror."""
    hf, ms = hub_pair()
    hf_token, ms_token = hf.issue_token("alice"), ms.issue_token("alice")
    name = unique_name("cron")
    seeded = seed_sample_model(hf, f"org/{name}", private=True)

    places = {"/etc/gitmirror/": tmp_path / "etc", "/var/lib/gitmirror/": tmp_path / "lib",
              "/var/lib/node_exporter/textfile/": tmp_path / "textfile", "/var/log/gitmirror/": tmp_path / "log"}
    command = crontab_command().replace(f"{INSTALL_PREFIX}/", installed_gitmirror["prefix"] + "/")
    for old, new in places.items():
        new.mkdir()
        command = command.replace(old, f"{new}/")
    assert not re.search(r"(^|[\s=])/(etc|opt|var|usr)/", command), command
    words = shlex.split(command.split(">>")[0].split(";")[-1])
    assert words[0] == installed_gitmirror["gitmirror"]
    assert_runs_gitmirror(words[1:])

    # The env file as examples/env has it (same names, KEY=value), with this sandbox's values.
    values = {"HF_TOKEN": hf_token, "MODELSCOPE_API_TOKEN": ms_token, "HF_TOKEN_MY_ORG": "unused",
              "GITMIRROR_CACHE": str(tmp_path / "cache")}
    template = [line.split("=", 1)[0] for line in (EXAMPLES / "env").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert template == list(values), template
    (tmp_path / "etc" / "env").write_text("".join(f"{k}={v}\n" for k, v in values.items())
                                          + f"HF_ENDPOINT={hf.endpoint}\nMODELSCOPE_ENDPOINT={ms.endpoint}\n")
    (tmp_path / "etc" / "env").chmod(0o600)
    (tmp_path / "etc" / "mirrors.toml").write_text(f'[[mirror]]\nsrc = "hf://org/{name}"\ndst = "ms://org/{name}"\n')
    cron_env = {"PATH": CRON_PATH, "SHELL": "/bin/sh", "HOME": git_env["HOME"], "LOGNAME": "gitmirror"}

    def cron(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in cron_env.items()), "/bin/sh", "-c", line],
                              capture_output=True, text=True, timeout=240, cwd=tmp_path)

    # The old line, sourcing the file without exporting: the tokens stay in the shell, the mirror fails.
    unexported = cron(command.replace("set -a;", "").replace("set +a;", ""))
    assert unexported.returncode == 11, (tmp_path / "log" / "sync.log").read_text()

    done = cron(command)
    log = (tmp_path / "log" / "sync.log").read_text()
    assert done.returncode == 0, log
    judge_env = auth_env(ms.endpoint, "oauth2", ms.git_token_for(ms_token), git_env)
    assert remote_refs(ms.git_url(f"org/{name}"), judge_env) == modelscope_view(seeded.refs)
    assert json.loads((tmp_path / "lib" / "report.json").read_text())["counts"] == {"updated": 1}
    assert "gitmirror_last_success_timestamp_seconds{" in (tmp_path / "textfile" / "gitmirror.prom").read_text()
    assert "1 mirror: 1 updated" in log
    for secret in (hf_token, ms_token):
        assert secret not in log and secret not in command


def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_service_and_timer(tmp_path):
    service = unit_file(EXAMPLES / "systemd" / "gitmirror-sync.service")["Service"]
    timer = unit_file(EXAMPLES / "systemd" / "gitmirror-sync.timer")
    assert service["Type"] == ["oneshot"] and service["User"] != ["root"]
    # Tokens from the same env file cron uses; the executable by the installed absolute path.
    assert service["EnvironmentFile"] == ["/etc/gitmirror/env"] and ". /etc/gitmirror/env" in crontab_command()
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0] == f"{INSTALL_PREFIX}/bin/gitmirror"
    assert_runs_gitmirror(argv[1:])
    assert "OnUnitInactiveSec" in timer["Timer"] and timer["Install"]["WantedBy"] == ["timers.target"]
    if shutil.which("systemd-analyze") is None:
        return
    # With the executable moved to one that exists here (verify checks it), systemd itself reads both units.
    for unit in ("gitmirror-sync.service", "gitmirror-sync.timer"):
        text = (EXAMPLES / "systemd" / unit).read_text().replace(f"{INSTALL_PREFIX}/bin/gitmirror", shutil.which("true"))
        (tmp_path / unit).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "gitmirror-sync.service"),
                           str(tmp_path / "gitmirror-sync.timer")], capture_output=True, text=True, timeout=60)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "gitmirror-sync" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_kubernetes_cronjob_runs_the_image_as_non_root():
    cronjob = yaml.safe_load((EXAMPLES / "kubernetes" / "cronjob.yaml").read_text())
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob" and cronjob["spec"]["schedule"]
    job = cronjob["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    _, stages = dockerfile_stages()
    assert pod["securityContext"]["runAsUser"] == int(re.search(r"--uid (\d+)", " ".join(stages[-1].all("RUN"))).group(1))
    (container,) = pod["containers"]
    # The image built from the Dockerfile: its ENTRYPOINT is gitmirror, so args start with the subcommand.
    assert "gitmirror" in container["image"].rsplit("/", 1)[-1] and not container["image"].startswith("python:")
    assert "command" not in container
    args = container["args"]
    assert_runs_gitmirror(args)
    assert args[args.index("--shard") + 1] == f"auto/{job['completions']}" and job["completionMode"] == "Indexed"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args[args.index("--cache-dir") + 1].startswith(mounts["cache"] + "/")
    assert args[1].startswith(mounts["config"] + "/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == set(mounts) and "persistentVolumeClaim" in volumes["cache"]
    assert container["envFrom"][0]["secretRef"]["name"]  # tokens as environment, never in args


def test_github_actions_workflow_installs_gitmirror_from_its_repository():
    workflow = yaml.safe_load((EXAMPLES / "github-actions" / "mirror.yml").read_text())
    steps = workflow["jobs"]["sync"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    install = next(run for run in runs if "pip install" in run or "pipx install" in run)
    # Not `pip install gitmirror`: no such package on the index. A git URL (or a checkout) instead.
    assert not re.search(INDEX_INSTALL, install), install
    assert workflow["env"]["GITMIRROR_SOURCE"].startswith("git+https://") and "$GITMIRROR_SOURCE" in install
    sync = next(step for step in steps if "run" in step and step["run"].startswith("gitmirror sync"))
    assert_runs_gitmirror(shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "0", sync["run"]))[1:])
    assert set(sync["env"]) == {"HF_TOKEN", "MODELSCOPE_API_TOKEN"}
    assert all("${{ secrets." in value for value in sync["env"].values())


def test_no_example_puts_a_token_on_a_command_line_or_installs_from_the_index():
    for path in EXAMPLES.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "--src-token" not in text and "--dst-token" not in text, path
            assert not re.search(INDEX_INSTALL, text), path
