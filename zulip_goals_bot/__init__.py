"""zulip-goals-bot: progress updates for a program of tracked goals, on Zulip."""

__version__ = "0.1.0"
