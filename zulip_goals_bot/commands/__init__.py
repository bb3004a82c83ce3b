"""Chat commands: what people can ask the bot, by mentioning it in a stream or by DM.

The command language (``grammar``) turns a message into a ``Command``; ``dispatch.handle`` runs
it in one database transaction and returns a ``Reply``. Handlers are grouped by who may use
them (``readers``, ``owners``, ``admins``); ``answers`` renders what they say; ``bot_handler``
is the zulip_bots handler the running bot calls.
"""
