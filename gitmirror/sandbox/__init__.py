"""Local Hugging Face, ModelScope and plain git+LFS hubs for tests and the demo.

``from gitmirror.sandbox import Sandbox``; see :class:`Sandbox` and :class:`Hub`.
"""

from gitmirror.sandbox.hub import Hub
from gitmirror.sandbox.kinds import HubKind, Principal, PushPolicy, RepoKey
from gitmirror.sandbox.sandbox import Sandbox

__all__ = ["Hub", "HubKind", "Principal", "PushPolicy", "RepoKey", "Sandbox"]
