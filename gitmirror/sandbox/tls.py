"""HTTPS for the sandbox: a local certificate authority made by ``trustme``, certificates for the
hubs' host names, and the environment that makes each client trust that authority.

``trustme`` is imported only when a sandbox asks for TLS: it is a test library (the ``test``
extra), and neither ``gitmirror`` itself nor the plain-HTTP sandbox of the demo needs it.

What trusts the CA through what (each client's own setting; certificate checks stay on):

* git (libcurl): ``GIT_SSL_CAINFO`` (git-config(1) ``http.sslCAInfo``);
* git-lfs: the same ``GIT_SSL_CAINFO`` / ``http.sslCAInfo`` (git-lfs-config(5)), added to the
  system's roots;
* gitmirror's own HTTP client: ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``
  (:func:`gitmirror.httpclient._ca_bundle`);
* ModelScope's SDK (``requests``): ``REQUESTS_CA_BUNDLE``;
* Hugging Face's SDK (httpx2 / httpcore2 ``default_ssl_context``): ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The variables :func:`tls_env` sets, all to the CA's PEM file.
CA_VARIABLES = ("GIT_SSL_CAINFO", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def _trustme() -> Any:
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("a sandbox with TLS needs the 'trustme' package "
                           "(pip install 'gitmirror[test]' or pip install trustme)") from exc
    return trustme


@dataclass
class SandboxCA:
    """A certificate authority for one sandbox; ``ca_file`` is its certificate (PEM)."""

    authority: Any  # trustme.CA
    ca_file: Path

    def server_context(self, names: list[str]) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for every host name or IP in ``names``."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.authority.issue_cert(*dict.fromkeys(names)).configure_cert(context)
        return context


def make_ca(ca_dir: Path) -> SandboxCA:
    """The CA kept in ``ca_dir``: ``sandbox-ca.pem`` (its certificate, what clients trust) and
    ``sandbox-ca.key`` (its private key, mode 0600). Reused when both exist, so that hubs in
    several processes (the benchmark's) share one CA; else made (ECDSA: fast) and written."""
    trustme = _trustme()
    cert_file, key_file = ca_dir / "sandbox-ca.pem", ca_dir / "sandbox-ca.key"
    if cert_file.is_file() and key_file.is_file():
        return SandboxCA(trustme.CA.from_pem(cert_file.read_bytes(), key_file.read_bytes()), cert_file)
    authority = trustme.CA(key_type=trustme.KeyType.ECDSA)
    ca_dir.mkdir(parents=True, exist_ok=True)
    key_file.touch(mode=0o600)
    key_file.write_bytes(authority.private_key_pem.bytes())
    authority.cert_pem.write_to_path(str(cert_file))
    return SandboxCA(authority, cert_file)


def tls_env(ca_file: str | Path) -> dict[str, str]:
    """Environment additions that make git, git-lfs, gitmirror and both hub SDKs trust the CA
    whose certificate is ``ca_file`` (and only it: the variables replace the default roots for
    Python clients)."""
    return {name: str(ca_file) for name in CA_VARIABLES}
