"""The four Hugging Face REST calls a mirror needs, with timeouts.

huggingface_hub 2.x sends every request through one process-wide httpx client created with
``timeout=None``, and only ``repo_info`` takes a per-call timeout: a stalled connection would
hang a cron job for ever, and changing that client (``set_client_factory``) would change it
for every other user of the library in the process. These calls are small and documented
(docs/hubs.md), so they are made here with ``requests`` and the run's timeouts, and answers
are classified the way huggingface_hub does it (``X-Error-Code``, ``X-Error-Message``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from gitmirror.retry import RetryPolicy

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
DISABLED = "Access to this resource is disabled."
_TYPE_PATH = {"model": "models", "dataset": "datasets", "space": "spaces"}


class HfHttpError(Exception):
    """A non-2xx answer: status, X-Error-Code / X-Error-Message, Retry-After and the server's words."""

    def __init__(self, status: int, code: str | None, message: str | None, retry_after: str | None, text: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.text = text

    @property
    def invalid_token(self) -> bool:
        return self.status == 401 and self.message == INVALID_CREDENTIALS

    @property
    def disabled(self) -> bool:
        return self.message == DISABLED


class HfNotJson(Exception):
    """A 2xx answer that is not the JSON object expected (an HTML page from a proxy, say)."""


@dataclass(frozen=True)
class HfRest:
    endpoint: str
    token: str | None = field(repr=False)
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def whoami(self) -> dict[str, Any]:
        return self._json("GET", "/api/whoami-v2")

    def repo_info(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/{_TYPE_PATH[repo_type]}/{repo_id}")

    def auth_check(self, repo_type: str, repo_id: str, write: bool = False) -> None:
        self._send("GET", f"/api/{_TYPE_PATH[repo_type]}/{repo_id}/auth-check" + ("/write" if write else ""))

    def create_repo(self, repo_type: str, repo_id: str, private: bool | None, space_sdk: str | None) -> None:
        owner, name = repo_id.split("/", 1)
        body: dict[str, Any] = {"name": name, "organization": owner, "type": repo_type}
        if private is not None:
            body["private"] = private
            body["visibility"] = "private" if private else "public"
        if space_sdk:
            body["sdk"] = space_sdk
        self._send("POST", "/api/repos/create", json=body)

    # -- transport --------------------------------------------------------------------------------

    def _json(self, method: str, path: str) -> dict[str, Any]:
        response = self._send(method, path)
        try:
            doc = response.json()
        except ValueError:
            raise HfNotJson(f"{method} {path} answered {response.headers.get('Content-Type', 'no content type')}") from None
        if not isinstance(doc, dict):
            raise HfNotJson(f"{method} {path} answered JSON that is not an object")
        return doc

    def _send(self, method: str, path: str, json: Any = None) -> requests.Response:
        headers = {"Accept": "application/json", "User-Agent": "gitmirror"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with requests.Session() as session:
            session.trust_env = True  # proxies from the environment, as huggingface_hub does
            response = session.request(
                method,
                self.endpoint + path,
                headers=headers,
                json=json,
                timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                allow_redirects=True,  # renamed repositories redirect; requests drops the token on a host change
            )
        if response.status_code >= 300:
            raise HfHttpError(
                response.status_code,
                response.headers.get("X-Error-Code"),
                response.headers.get("X-Error-Message"),
                response.headers.get("Retry-After"),
                _error_text(response),
            )
        return response


def _error_text(response: requests.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"]
    return ""
