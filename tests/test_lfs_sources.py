"""Sources that git-lfs handles, mirrored whole (issue 13, section 4), judged by git and git-lfs.

- a committed ``.lfsconfig`` whose ``lfs.url`` sends git-lfs to another server, and
  ``--src-lfs-url`` overriding it; a wrong one named in the error with where it came from;
- a shallow clone as the source: a usage error saying what to do, never "rerun"; a ref deleted
  between listing and fetching: a transient race;
- pointers in git-lfs's older forms (the "hawser" and "git-media" version lines, CRLF): their
  objects move, and a fresh clone of the copy checks the files out.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from gitmirror import api
from gitmirror.errors import EXIT_TRANSIENT, EXIT_USAGE, GitMirrorError, TransientError, UsageError
from gitmirror.hubs import open_hub
from gitmirror.hubs.base import LfsEndpoint
from gitmirror.planner import PlanContext, fetch_source
from gitmirror.remote import RemoteRefs
from gitmirror.retry import FAST
from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs, random_bytes
from gitmirror.specs import parse_spec

from judges import auth_env, git, remote_refs

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hubs(sandbox):
    """Three plain git hubs: the source's git host, the separate server its LFS objects live on,
    and the destination; user "alice" in org "org" on each, with a write token."""
    names = ("src", "store", "dst")
    found = {name: sandbox.add_hub("git") for name in names}
    tokens = {}
    for name, hub in found.items():
        hub.add_user("alice", orgs=("org",))
        tokens[name] = hub.issue_token("alice", scope="write")
    return {**found, "tokens": tokens}


def lfsconfig_history(lfs_url: str, lfsconfig: str | None = None) -> RepoBuilder:
    """Two commits of LFS files and a committed ``.lfsconfig`` whose ``lfs.url`` is ``lfs_url``
    (or whose text is ``lfsconfig``)."""
    b = RepoBuilder()
    text = lfsconfig if lfsconfig is not None else f'[lfs]\n\turl = "{lfs_url}"\n'
    b.commit({".gitattributes": LFS_ATTRIBUTES, ".lfsconfig": text,
              "weights.bin": lfs(random_bytes(30_000, "lfsconfig-v1"))})
    b.commit({"weights.bin": lfs(random_bytes(31_000, "lfsconfig-v2")), "extra.safetensors": lfs(random_bytes(9_000, "x"))})
    return b


def objects_of(builder: RepoBuilder) -> dict[str, bytes]:
    return {oid: f.data for oid, f in builder.lfs_files().items()}


def seed_split(hubs, name: str, builder: RepoBuilder) -> dict[str, str]:
    """The history on the source hub without its LFS objects; the objects on the store hub only."""
    refs = builder.push_to_hub(hubs["src"], f"org/{name}", skip_lfs=list(objects_of(builder)))
    hubs["store"].create_repo(f"org/{name}")
    for data in objects_of(builder).values():
        hubs["store"].put_lfs_object(f"org/{name}", data)
    assert not hubs["src"].lfs_objects(f"org/{name}")
    return refs


def mirror(hubs, git_env, tmp_path, src: str, name: str, **kwargs):
    hubs["dst"].create_repo(f"org/{name}")
    return api.mirror(src, hubs["dst"].git_url(f"org/{name}"), src_token=hubs["tokens"]["src"],
                      dst_token=hubs["tokens"]["dst"], env=git_env, cache_dir=tmp_path / "cache", policy=FAST,
                      **kwargs)


def judge_destination(hubs, git_env, tmp_path, name: str, expected: dict[str, bytes], src_refs: dict[str, str]) -> None:
    """The destination's refs are the source's, its store holds every object, and git-lfs fetches
    them all *from the destination* (lfs.url set in the clone's git config, which overrides the
    mirrored .lfsconfig that still names the original server)."""
    dst = hubs["dst"]
    url = dst.git_url(f"org/{name}")
    env = auth_env(dst.endpoint, "alice", hubs["tokens"]["dst"], git_env)
    refs = remote_refs(url, env)
    assert refs["refs/heads/main"] == src_refs["refs/heads/main"]
    assert {oid for oid in expected if not dst.has_lfs_object(f"org/{name}", oid)} == set()
    clone = tmp_path / "judge"
    git({**env, "GIT_LFS_SKIP_SMUDGE": "1"}, "clone", "--quiet", url, str(clone))
    git(env, "config", "lfs.url", dst.lfs_url(f"org/{name}"), cwd=clone)
    git(env, "lfs", "fetch", "--all", cwd=clone)
    assert "fsck OK" in git(env, "lfs", "fsck", cwd=clone)
    for oid, data in expected.items():
        stored = clone / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        assert stored.read_bytes() == data


# --- .lfsconfig and --src-lfs-url ----------------------------------------------------------------


def test_objects_on_the_server_lfsconfig_names_are_mirrored(hubs, git_env, tmp_path, unique_name, caplog):
    name = unique_name("lfsconfig")
    builder = lfsconfig_history(hubs["store"].lfs_url(f"org/{name}"))
    src_refs = seed_split(hubs, name, builder)

    with caplog.at_level("INFO", logger="gitmirror"):
        result = mirror(hubs, git_env, tmp_path, hubs["src"].git_url(f"org/{name}"), name)

    assert result.verified and result.objects_moved == 3
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert hubs["store"].lfs_url(f"org/{name}") in said and "lfs.url in .lfsconfig at refs/heads/main" in said


def test_remote_origin_lfsurl_in_lfsconfig_and_lfs_url_before_it(hubs, git_env, tmp_path, unique_name):
    """git-lfs reads lfs.url first, then remote.<remote>.lfsurl ("origin" in a clone)."""
    name = unique_name("lfsurl")
    right = hubs["store"].lfs_url(f"org/{name}")
    builder = lfsconfig_history(right, f'[remote "origin"]\n\tlfsurl = {right}\n[remote "other"]\n\tlfsurl = http://127.0.0.1:9/x\n')
    src_refs = seed_split(hubs, name, builder)
    assert mirror(hubs, git_env, tmp_path, hubs["src"].git_url(f"org/{name}"), name).verified
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)

    name = unique_name("lfsurl-order")
    right = hubs["store"].lfs_url(f"org/{name}")
    builder = lfsconfig_history(right, f'[remote "origin"]\n\tlfsurl = http://127.0.0.1:9/x\n[lfs]\n\turl = {right}\n')
    src_refs = seed_split(hubs, name, builder)
    assert mirror(hubs, git_env, tmp_path / "second", hubs["src"].git_url(f"org/{name}"), name).verified
    judge_destination(hubs, git_env, tmp_path / "second", name, objects_of(builder), src_refs)


def test_src_lfs_url_overrides_a_wrong_lfsconfig(hubs, git_env, tmp_path, unique_name):
    name = unique_name("override")
    builder = lfsconfig_history(hubs["store"].lfs_url("org/not-here"))
    src_refs = seed_split(hubs, name, builder)

    result = mirror(hubs, git_env, tmp_path, hubs["src"].git_url(f"org/{name}"), name,
                    src_lfs_url=hubs["store"].lfs_url(f"org/{name}"))

    assert result.verified
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)


def test_a_wrong_lfsconfig_is_named_with_where_it_came_from(hubs, git_env, tmp_path, unique_name):
    name = unique_name("wrong")
    wrong = hubs["store"].lfs_url("org/not-here")
    seed_split(hubs, name, lfsconfig_history(wrong))

    with pytest.raises(GitMirrorError) as caught:
        mirror(hubs, git_env, tmp_path, hubs["src"].git_url(f"org/{name}"), name)

    message = str(caught.value)
    assert wrong in message and ".lfsconfig at refs/heads/main" in message and "without credentials" in message
    assert caught.value.exit_code not in (0, 1)
    assert hubs["dst"].refs(f"org/{name}") == {}  # nothing pushed without its objects


def test_a_local_source_with_every_object_reads_its_own_store(hubs, git_env, tmp_path):
    """A working copy whose .lfsconfig names a server no longer there still mirrors: its own
    lfs/objects hold everything, and no request goes to the .lfsconfig URL."""
    builder = lfsconfig_history("http://127.0.0.1:9/gone.git/info/lfs")
    src = tmp_path / "src.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(src)], check=True, env=git_env)
    src_refs = builder.write(src, src / "lfs" / "objects")
    dst = tmp_path / "dst.git"

    result = api.mirror(str(src), str(dst), env=git_env, cache_dir=tmp_path / "cache", policy=FAST)

    assert result.verified and remote_refs(str(dst), git_env)["refs/heads/main"] == src_refs["refs/heads/main"]
    for oid, data in objects_of(builder).items():
        assert (dst / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).read_bytes() == data


def test_a_local_source_lacking_objects_follows_its_lfsconfig(hubs, git_env, tmp_path, unique_name):
    name = unique_name("local-split")
    builder = lfsconfig_history(hubs["store"].lfs_url(f"org/{name}"))
    seed_split(hubs, name, builder)
    src = tmp_path / "src.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(src)], check=True, env=git_env)
    src_refs = builder.write(src)  # history only: the objects are on the store hub

    result = mirror(hubs, git_env, tmp_path, str(src), name)

    assert result.verified
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)


def test_a_local_source_git_config_lfs_url_beats_lfsconfig(hubs, git_env, tmp_path, unique_name):
    """git-lfs: "Settings from Git configuration files override the .lfsconfig file"."""
    name = unique_name("local-config")
    builder = lfsconfig_history("http://127.0.0.1:9/gone.git/info/lfs")
    seed_split(hubs, name, builder)
    src = tmp_path / "src.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(src)], check=True, env=git_env)
    src_refs = builder.write(src)
    subprocess.run(["git", "-C", str(src), "config", "lfs.url", hubs["store"].lfs_url(f"org/{name}")],
                   check=True, env=git_env)

    assert mirror(hubs, git_env, tmp_path, str(src), name).verified
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)


def test_hugging_face_credentials_never_go_to_another_origin():
    hub = open_hub(parse_spec("hf://org/m", "src", {"HF_ENDPOINT": "https://hf.example"}), token="hf_" + "t" * 30,
                   env={"HF_ENDPOINT": "https://hf.example"})
    hub.use_lfs_endpoint(LfsEndpoint("https://lfs.other.example/x", "lfs.url in .lfsconfig at refs/heads/main"))
    assert hub.lfs_store()._auth == {}
    hub.use_lfs_endpoint(LfsEndpoint("https://hf.example/org/other.git/info/lfs", "given with --src-lfs-url"))
    assert hub.lfs_store()._auth


def test_hub_credentials_never_go_to_another_origin(tmp_path):
    token = "tok-" + "s" * 20
    hub = open_hub(parse_spec("https://git.example.org/o/n.git", "src", {}), token=token,
                   env={"HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(tmp_path / "none")})
    assert hub.lfs_store()._auth  # its own endpoint gets the token

    hub.use_lfs_endpoint(LfsEndpoint("https://lfs.other.example/o/n/info/lfs", "lfs.url in .lfsconfig at refs/heads/main"))
    store = hub.lfs_store()
    assert store.endpoint == "https://lfs.other.example/o/n/info/lfs" and store._auth == {}
    assert "lfs.other.example" in store.label and ".lfsconfig" in store.label

    hub.use_lfs_endpoint(LfsEndpoint("https://git.example.org/other/repo.git/info/lfs", "given with --src-lfs-url"))
    assert hub.lfs_store()._auth  # the same origin as the hub's own endpoint: its credentials


def test_src_lfs_url_must_be_http(tmp_path):
    with pytest.raises(UsageError) as caught:
        api.mirror(str(tmp_path / "a.git"), str(tmp_path / "b.git"), src_lfs_url="ssh://host/x")
    assert caught.value.exit_code == EXIT_USAGE and "--src-lfs-url" in str(caught.value)


def test_src_lfs_url_in_a_mirrors_file_reaches_the_run(hubs, git_env, tmp_path, unique_name):
    from gitmirror.mirrors_file import load_mirrors

    name = unique_name("sync-override")
    builder = lfsconfig_history(hubs["store"].lfs_url("org/not-here"))
    src_refs = seed_split(hubs, name, builder)
    hubs["dst"].create_repo(f"org/{name}")
    path = tmp_path / "mirrors.toml"
    path.write_text(f'[[mirror]]\nsrc = "{hubs["src"].git_url(f"org/{name}")}"\n'
                    f'dst = "{hubs["dst"].git_url(f"org/{name}")}"\nsrc_lfs_url = "{hubs["store"].lfs_url(f"org/{name}")}"\n'
                    'src_token_env = "SRC_T"\ndst_token_env = "DST_T"\n')
    assert load_mirrors(path)[0].src_lfs_url == hubs["store"].lfs_url(f"org/{name}")

    report = api.sync(path, cache_dir=tmp_path / "cache", policy=FAST,
                      env={**git_env, "SRC_T": hubs["tokens"]["src"], "DST_T": hubs["tokens"]["dst"]})

    assert report.exit_code == 0, [o.reason for o in report.outcomes]
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)


def test_clone_push_src_lfs_url_reaches_the_run(hubs, git_env, tmp_path, unique_name, monkeypatch):
    from click.testing import CliRunner

    from gitmirror.cli import cli

    name = unique_name("cli-override")
    builder = lfsconfig_history(hubs["store"].lfs_url("org/not-here"))
    src_refs = seed_split(hubs, name, builder)
    hubs["dst"].create_repo(f"org/{name}")
    monkeypatch.setenv("GITMIRROR_SRC_TOKEN", hubs["tokens"]["src"])
    monkeypatch.setenv("GITMIRROR_DST_TOKEN", hubs["tokens"]["dst"])

    done = CliRunner().invoke(cli, ["clone-push", "--quiet", "--cache-dir", str(tmp_path / "cache"),
                                    "--src-lfs-url", hubs["store"].lfs_url(f"org/{name}"),
                                    hubs["src"].git_url(f"org/{name}"), hubs["dst"].git_url(f"org/{name}")])

    assert done.exit_code == 0, done.output
    judge_destination(hubs, git_env, tmp_path, name, objects_of(builder), src_refs)
    bad = CliRunner().invoke(cli, ["clone-push", "--src-lfs-url", "ssh://host/x", str(tmp_path / "a"), str(tmp_path / "b")])
    assert bad.exit_code == EXIT_USAGE and "--src-lfs-url" in bad.output


# --- shallow sources and refs that vanish -------------------------------------------------------------


def small_history() -> RepoBuilder:
    b = RepoBuilder()
    for i in range(3):
        b.commit({".gitattributes": LFS_ATTRIBUTES, "w.bin": lfs(random_bytes(2_000, f"shallow-{i}")),
                  "n.txt": f"{i}\n"})
    return b


def test_a_shallow_clone_as_source_is_a_usage_error_saying_what_to_do(git_env, tmp_path):
    full = tmp_path / "full.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(full)], check=True, env=git_env)
    small_history().write(full, full / "lfs" / "objects")
    shallow = tmp_path / "shallow"
    git(git_env, "clone", "--quiet", "--depth", "1", f"file://{full}", str(shallow))
    dst = tmp_path / "dst.git"

    for _run in range(2):  # the same answer every time: nothing a rerun changes
        with pytest.raises(UsageError) as caught:
            api.mirror(str(shallow), str(dst), env=git_env, cache_dir=tmp_path / "cache", policy=FAST)
        text = str(caught.value)
        assert caught.value.exit_code == EXIT_USAGE
        assert "shallow" in text and "git fetch --unshallow" in text and "rerun" not in text
    assert not dst.exists() or remote_refs(str(dst), git_env) == {}


def test_a_shallow_remote_source_is_a_usage_error(hubs, git_env, tmp_path, unique_name):
    """Served over HTTP, a shallow repository makes git warn ("shallow roots are not allowed to
    be updated") and exit 0 without the ref: that warning is the signal."""
    name = unique_name("shallow-remote")
    refs = small_history().push_to_hub(hubs["src"], f"org/{name}")
    repo = hubs["src"].repo_path(f"org/{name}")
    (repo / "shallow").write_text(refs["refs/heads/main"] + "\n")  # what `clone --depth 1` leaves

    with pytest.raises(UsageError) as caught:
        api.mirror(hubs["src"].git_url(f"org/{name}"), str(tmp_path / "dst.git"), src_token=hubs["tokens"]["src"],
                   env=git_env, cache_dir=tmp_path / "cache", policy=FAST)
    assert "git fetch --unshallow" in str(caught.value) and "rerun" not in str(caught.value)


def test_a_ref_deleted_between_listing_and_fetching_is_a_transient_race(git_env, tmp_path):
    src = tmp_path / "src.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(src)], check=True, env=git_env)
    refs = small_history().write(src)
    hub = open_hub(parse_spec(str(src), "src", git_env), env=git_env)
    listed = RemoteRefs(refs={**refs, "refs/heads/gone": refs["refs/heads/main"]}, head="refs/heads/main")
    ctx = PlanContext(hub, hub, tmp_path / "cache", listed, RemoteRefs(refs={}))

    with pytest.raises(TransientError) as caught:
        fetch_source(ctx, ["refs/heads/gone", "refs/heads/main"])
    assert caught.value.exit_code == EXIT_TRANSIENT and "refs/heads/gone" in str(caught.value)

    # A ref the source still lists is fetched as usual.
    fetched = fetch_source(ctx, ["refs/heads/main"])
    assert fetched.refs["refs/heads/main"] == refs["refs/heads/main"]


# --- pointers in git-lfs's older forms ------------------------------------------------------------------


def old_form_history() -> tuple[RepoBuilder, dict[str, bytes]]:
    """Files whose pointers use the pre-release ("hawser") and alpha ("git-media") version lines,
    and a canonical one beside them; returns the builder and each file's bytes by path."""
    data = {"hawser.bin": random_bytes(20_000, "hawser"), "media.bin": random_bytes(7_000, "git-media"),
            "canonical.bin": random_bytes(5_000, "canonical")}
    oids = {path: hashlib.sha256(d).hexdigest() for path, d in data.items()}

    def pointer(version: str, path: str) -> bytes:
        return f"version {version}\noid sha256:{oids[path]}\nsize {len(data[path])}\n".encode()

    b = RepoBuilder()
    b.commit({".gitattributes": LFS_ATTRIBUTES,
              "hawser.bin": pointer("https://hawser.github.com/spec/v1", "hawser.bin"),
              "media.bin": pointer("http://git-media.io/v/2", "media.bin"),
              "canonical.bin": lfs(data["canonical.bin"])})
    return b, data


def test_hawser_and_git_media_pointers_are_mirrored_with_their_objects(hubs, git_env, tmp_path, unique_name):
    name = unique_name("hawser")
    builder, files = old_form_history()
    expected = {hashlib.sha256(content).hexdigest() for content in files.values()}
    src_hub = hubs["src"]
    src_refs = builder.push_to_hub(src_hub, f"org/{name}")
    for content in files.values():  # the builder places only the objects of canonical pointers
        src_hub.put_lfs_object(f"org/{name}", content)

    result = mirror(hubs, git_env, tmp_path, src_hub.git_url(f"org/{name}"), name)

    assert result.verified and result.objects_moved == 3
    dst = hubs["dst"]
    assert {oid for oid in expected if not dst.has_lfs_object(f"org/{name}", oid)} == set()
    url = dst.git_url(f"org/{name}")
    env = auth_env(dst.endpoint, "alice", hubs["tokens"]["dst"], git_env)
    assert remote_refs(url, env)["refs/heads/main"] == src_refs["refs/heads/main"]
    clone = tmp_path / "judge"
    git(env, "clone", "--quiet", url, str(clone))  # git-lfs smudges each file on checkout
    git(env, "lfs", "fetch", "--all", cwd=clone)
    # --objects: the old version lines are valid pointers, merely not canonical ones (which the
    # pointer half of a plain fsck reports, in the source as much as in the copy).
    assert "fsck OK" in git(env, "lfs", "fsck", "--objects", cwd=clone)
    for path, content in files.items():
        assert (clone / path).read_bytes() == content, path


def test_a_snapshot_of_a_shallow_clone_works(git_env, tmp_path):
    """A snapshot needs only the tip's tree, which a shallow clone has: it is not refused."""
    full = tmp_path / "full.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(full)], check=True, env=git_env)
    builder = small_history()
    builder.write(full, full / "lfs" / "objects")
    shallow = tmp_path / "shallow"
    git(git_env, "clone", "--quiet", "--depth", "1", f"file://{full}", str(shallow))
    git(git_env, "lfs", "fetch", cwd=shallow)
    dst = tmp_path / "dst.git"

    result = api.snapshot(str(shallow), str(dst), env=git_env, cache_dir=tmp_path / "cache", policy=FAST)

    assert result.verified
    tip = builder.tip().sha
    assert git(git_env, "--git-dir", str(dst), "rev-parse", "main^{tree}").strip() == \
        git(git_env, "--git-dir", str(full), "rev-parse", f"{tip}^{{tree}}").strip()
    last = builder.tip().files["w.bin"]
    assert (dst / "lfs" / "objects" / last.oid[:2] / last.oid[2:4] / last.oid).read_bytes() == last.data
