"""The browser voice playground: a page at ``/`` where anyone at this machine can talk to
the bot by voice, through the same engine as the chat platforms, as the platform ``web``.

Adapter-like and translation only: :mod:`.routes` turns HTTP requests into queue jobs and
command calls, :mod:`.surface` turns the delivery sink's calls into server-sent events,
:mod:`.platform` wires both to the core. One conversation per browser session
(:mod:`.session`: a signed cookie and a per-session CSRF token).
"""
