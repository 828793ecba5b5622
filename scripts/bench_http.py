"""Compare two gitmirror trees' HTTP clients: CPU per request on loopback, and first mirrors on a
modelled link (TLS, a round-trip time per hub).

    python scripts/bench_http.py compare --tree before=/path/to/tree-a --tree after=/path/to/tree-b \
        [--trials 3] [--small 500] [--large 4] [--large-mb 50] [--rtt 0.05] [--requests 1000]

The sandbox hubs (a Hugging Face kind and a ModelScope kind, in one helper process of their own so
that their CPU is not the client's) are started once; every trial then runs each tree in a fresh
interpreter (``PYTHONPATH=<tree>``), one tree after the other, so that "before" and "after" are
measured in the same minute (the mirrors alternate which tree goes first). What is printed: per trial and tree, the client's CPU per request
(ms; one thread, sequential PUTs then GETs of 1 KiB objects against the hub's LFS storage,
``time.process_time``, over http and https), and the wall time of ``gitmirror.api.mirror`` for a first mirror of
``--small`` objects of 1 to 32 KiB and of ``--large`` objects of ``--large-mb`` MB, from the
Hugging Face hub to the ModelScope hub (every request waits ``--rtt`` seconds; HTTPS everywhere).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


# -- the hub process ------------------------------------------------------------------------------


def serve(root: Path, tls: bool, rtt: float, small: int, large: int, large_mb: int) -> None:
    """Start both hubs, seed the sources, print what clients need as one JSON line, wait for EOF."""
    from gitmirror.sandbox import Sandbox
    from gitmirror.sandbox.seed import LFS_ATTRIBUTES, RepoBuilder, lfs

    sandbox = Sandbox(root=root / "hubs", tls=tls).start()
    hf, ms = sandbox.add_hub("huggingface", rtt=rtt), sandbox.add_hub("modelscope", rtt=rtt)
    for hub in (hf, ms):
        hub.add_user("bench", orgs=("org",))
    rng = random.Random(15)
    if small:
        b = RepoBuilder()
        files = {f"data/{i:04}.bin": lfs(rng.randbytes(rng.randint(1024, 32 * 1024))) for i in range(small)}
        b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# small\n", **files})
        b.push_to_hub(hf, "org/small")
    if large:
        b = RepoBuilder()
        files = {f"model-{i}.safetensors": lfs(rng.randbytes(large_mb * 1_000_000)) for i in range(large)}
        b.commit({".gitattributes": LFS_ATTRIBUTES, "README.md": "# large\n", **files})
        b.push_to_hub(hf, "org/large")
    hf.create_repo("org/cpu")
    hf_token, ms_token = hf.issue_token("bench", scope="write"), ms.issue_token("bench", scope="write")
    print(json.dumps({"hf": hf.endpoint, "ms": ms.endpoint, "hf_token": hf_token, "ms_token": ms_token,
                      "cpu_lfs": hf.lfs_url("org/cpu"), "tls_env": sandbox.tls_env()}), flush=True)
    sys.stdin.read()
    sandbox.stop()


# -- the client runs (one interpreter each, on the tree under test) ---------------------------------


def _batch(http, lfs_url: str, auth: str, operation: str, objects: list[dict]) -> list[dict]:
    answers = []
    for start in range(0, len(objects), 100):
        body = json.dumps({"operation": operation, "transfers": ["basic"],
                           "objects": objects[start:start + 100]}).encode()
        resp = http.request("POST", lfs_url + "/objects/batch", body=body, headers={
            "Authorization": auth, "Accept": "application/vnd.git-lfs+json",
            "Content-Type": "application/vnd.git-lfs+json"})
        assert resp.status == 200, (resp.status, resp.data[:200])
        answers += json.loads(resp.data)["objects"]
    return answers


def cpu(info: dict, count: int, tag: str) -> dict:
    """Client CPU per request (ms): ``count`` sequential PUTs of 1 KiB objects, then GETs of them."""
    import hashlib

    from gitmirror.httpclient import HttpClient

    auth = "Basic " + base64.b64encode(f"bench:{info['hf_token']}".encode()).decode()
    blobs = [f"{tag}-{time.time_ns()}-{i}".encode().ljust(1024, b".") for i in range(count)]
    objects = [{"oid": hashlib.sha256(b).hexdigest(), "size": len(b)} for b in blobs]
    with HttpClient(pool_size=1) as http:
        ups = _batch(http, info["cpu_lfs"], auth, "upload", objects)
        puts = [(a["actions"]["upload"], b) for a, b in zip(ups, blobs, strict=True)]
        started, wall = time.process_time(), time.perf_counter()
        for action, blob in puts:
            resp = http.request("PUT", action["href"], body=blob, headers=action.get("header", {}))
            assert resp.status in (200, 201), resp.status
        put_cpu, put_wall = time.process_time() - started, time.perf_counter() - wall
        downs = _batch(http, info["cpu_lfs"], auth, "download", objects)
        started, wall = time.process_time(), time.perf_counter()
        for answer in downs:
            action = answer["actions"]["download"]
            assert len(http.request("GET", action["href"], headers=action.get("header", {})).data) == 1024
        get_cpu, get_wall = time.process_time() - started, time.perf_counter() - wall
    return {"put_cpu_ms": 1000 * put_cpu / count, "get_cpu_ms": 1000 * get_cpu / count,
            "put_wall_ms": 1000 * put_wall / count, "get_wall_ms": 1000 * get_wall / count}


def mirror(info: dict, src: str, dst: str, home: Path) -> dict:
    """A first mirror ``hf://org/<src>`` -> ``ms://org/<dst>`` through gitmirror.api; wall and CPU seconds."""
    import resource

    from gitmirror import api

    env = {**_git_env(home), **info["tls_env"], "HF_ENDPOINT": info["hf"], "MODELSCOPE_ENDPOINT": info["ms"]}
    connects = _count_connects()
    started = time.perf_counter()
    retried: list[str] = []
    result = api.mirror(f"hf://org/{src}", f"ms://org/{dst}", src_token=info["hf_token"],
                        dst_token=info["ms_token"], env=env, cache_dir=home / "cache",
                        on_retry=lambda what, exc: retried.append(f"{what}: {type(exc).__name__}: {exc}"[:300]))
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    assert result.verified, result
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "objects": result.objects_moved,
            "connections": connects[0], "retries": retried, "lfs_s": result.lfs_seconds}


def _count_connects() -> list[int]:
    """A counter of the TCP connections this process opens from now on (git's children not counted)."""
    import socket

    count = [0]
    connect = socket.socket.connect

    def counted(self, address):  # noqa: ANN001 - socket.socket.connect's own signature
        count[0] += 1
        return connect(self, address)

    socket.socket.connect = counted  # type: ignore[method-assign]
    return count


def _git_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("GIT_", "HF_", "HUGGING", "MODELSCOPE", "SSL_", "REQUESTS_", "CURL_"))}
    env = {**keep, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_TERMINAL_PROMPT": "0", "LANG": "C.UTF-8", "HF_HOME": str(home / "hf"),
           "MODELSCOPE_HOME": str(home / "ms")}
    if not (home / ".config").exists():
        (home / ".config").mkdir(parents=True)
        for key, value in (("user.name", "Bench"), ("user.email", "bench@sandbox.invalid"),
                           ("init.defaultBranch", "main")):
            subprocess.run(["git", "config", "--global", key, value], env=env, check=True)
        subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, capture_output=True)
    return env


def client(args: argparse.Namespace) -> None:
    info = json.loads(args.info)
    for key, value in info["tls_env"].items():
        os.environ[key] = value
    if args.what == "cpu":
        out = cpu(info, args.requests, args.tag)
    else:
        out = mirror(info, args.src, args.dst, Path(args.home))
    print(json.dumps(out), flush=True)


# -- the driver -----------------------------------------------------------------------------------


def _start_hubs(root: Path, tls: bool, rtt: float, small: int, large: int, large_mb: int,
                tree: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, str(HERE), "serve", "--root", str(root), "--rtt", str(rtt),
                             "--small", str(small), "--large", str(large), "--large-mb", str(large_mb)]
                            + (["--tls"] if tls else []),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": tree})
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the hub process did not start")
    return proc, json.loads(line)


def _run(tree: str, info: dict, *extra: str) -> dict:
    out = subprocess.run([sys.executable, str(HERE), "client", "--info", json.dumps(info), *extra],
                         env={**os.environ, "PYTHONPATH": tree}, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def drive(args: argparse.Namespace) -> None:
    trees = dict(item.split("=", 1) for item in args.tree)
    root = Path(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores; trees: {trees}")
        for tls in (False, True) if args.requests else ():
            proc, info = _start_hubs(root / f"loopback-{tls}", tls, 0.0, 0, 0, 0, next(iter(trees.values())))
            for trial in range(args.trials):
                for name, tree in trees.items():
                    out = _run(tree, info, "--what", "cpu", "--requests", str(args.requests), "--tag", f"{name}{trial}")
                    print(f"cpu    trial {trial + 1} {'https' if tls else 'http':5} {name:8} "
                          + " ".join(f"{k}={v:.3f}" for k, v in out.items()), flush=True)
            proc.stdin.close()
            proc.wait()
        proc, info = _start_hubs(root / "link", True, args.rtt, args.small, args.large, args.large_mb,
                                 next(iter(trees.values())))
        workloads = [w for w, n in (("small", args.small), ("large", args.large)) if n]
        if not workloads:
            proc.stdin.close()
            proc.wait()
            return
        for trial in range(args.trials):
            for workload in workloads:
                order = list(trees.items())
                for name, tree in order if trial % 2 == 0 else order[::-1]:  # neither always runs first
                    home = root / f"home-{name}-{workload}-{trial}"
                    out = _run(tree, info, "--what", "mirror", "--src", workload, "--dst", f"{workload}-{name}-{trial}",
                               "--home", str(home))
                    print(f"mirror trial {trial + 1} {workload:5} {name:8} wall={out['wall_s']:.2f}s "
                          f"lfs={out['lfs_s']:.2f}s cpu={out['cpu_s']:.2f}s objects={out['objects']} connections={out['connections']} "
                          f"retries={len(out['retries'])}", flush=True)
                    for line in out["retries"]:
                        print(f"  retried: {line}", flush=True)
                    shutil.rmtree(home, ignore_errors=True)
        proc.stdin.close()
        proc.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve")
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--tls", action="store_true")
    for name, kind, default in (("--rtt", float, 0.05), ("--small", int, 500), ("--large", int, 4),
                                ("--large-mb", int, 50)):
        s.add_argument(name, type=kind, default=default)
    c = sub.add_parser("client")
    c.add_argument("--info", required=True)
    c.add_argument("--what", choices=("cpu", "mirror"), required=True)
    c.add_argument("--requests", type=int, default=1000)
    c.add_argument("--tag", default="")
    c.add_argument("--src")
    c.add_argument("--dst")
    c.add_argument("--home")
    d = sub.add_parser("compare")
    d.add_argument("--tree", action="append", required=True, help="NAME=PATH of a gitmirror tree")
    d.add_argument("--trials", type=int, default=3)
    for name, kind, default in (("--rtt", float, 0.05), ("--small", int, 500), ("--large", int, 4),
                                ("--large-mb", int, 50), ("--requests", int, 1000)):
        d.add_argument(name, type=kind, default=default)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.root, args.tls, args.rtt, args.small, args.large, args.large_mb)
    elif args.command == "client":
        client(args)
    elif args.command == "compare":
        drive(args)
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
