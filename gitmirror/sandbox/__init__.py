"""Local Hugging Face, ModelScope and plain git+LFS hubs for tests and the demo.

One process hosts any number of hubs on 127.0.0.1; each hub has two ports: the hub port
(git smart HTTP through ``git http-backend``, the LFS batch API, the kind's REST API, and a
control endpoint under ``/_sandbox/``) and a storage port for LFS object hrefs (signed,
expiring, refusing hub tokens). Python API::

    from gitmirror.sandbox import Sandbox
    with Sandbox(root=tmp_path) as sb:                     # root=None: a temp dir, removed on stop
        hub = sb.add_hub("huggingface" | "modelscope" | "git", name=None, **options)
        hub.endpoint, hub.storage_endpoint                 # "http://127.0.0.1:PORT" (https with tls=True)
        hub.add_user("alice", orgs=("acme",))
        token = hub.issue_token("alice", scope="write")    # "read" | "write"; ModelScope: SDK token
        git_token = hub.git_token_for(token)               # what git/LFS must use (same, except ModelScope)
        hub.create_repo("alice/m", repo_type="model", private=False, gated=False, initial_commit=None)
        hub.git_url("alice/m"), hub.lfs_url("alice/m"), hub.repo_path("alice/m"), hub.refs("alice/m")
        hub.has_lfs_object("alice/m", oid), hub.lfs_objects("alice/m"), hub.put_lfs_object("alice/m", data)
        hub.faults.fail(...) / cut(...) / stall(...) / redirect(...) / bandwidth(down=, up=) / clear()
        hub.counters.snapshot() / reset()                  # requests, statuses, bytes per route class
        hub.token_leaks                                    # storage requests refused for carrying a hub token

Options (``add_hub`` keywords): ``href_ttl`` (seconds, float ok), ``max_batch_objects`` (100),
``multipart_enabled``, ``multipart_threshold``, ``multipart_chunk_size``, ``storage_host``
(e.g. ``"localhost"``: object hrefs on another host name), ``rtt`` (seconds of round-trip time:
each request waits one, a new connection one more, two with TLS; 0), plus the kind's own.
HTTPS: ``Sandbox(tls=True)`` serves every port over TLS from a local CA (``sb.ca_file``; needs
``trustme``); ``sb.tls_env()`` gives the variables git, git-lfs, gitmirror and the SDKs trust it by.
Histories for tests: :mod:`gitmirror.sandbox.seed`. Run in the foreground: ``python -m gitmirror.sandbox``.
"""

from gitmirror.sandbox.hub import Hub
from gitmirror.sandbox.kinds import HubKind, PushPolicy
from gitmirror.sandbox.sandbox import Sandbox
from gitmirror.sandbox.state import Principal, RepoKey

__all__ = ["Hub", "HubKind", "Principal", "PushPolicy", "RepoKey", "Sandbox"]
