"""gitmirror: mirror Git repositories with their LFS content between hubs, with the whole history."""

__version__ = "0.1.0"
