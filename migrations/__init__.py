"""Alembic migration scripts (installed as ``zulip_goals_bot.migrations``)."""
