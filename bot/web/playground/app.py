"""The playground's composition: the platform (jobs, sinks) and its routes on the bot's
HTTP server. Kept apart from both so that neither imports the other."""

from __future__ import annotations

from bot.core import Core
from bot.http.server import HttpServer
from bot.queue.port import Handler
from bot.web.playground.platform import PLATFORM, PlaygroundPlatform
from bot.web.playground.routes import PlaygroundRoutes


def build_playground(*, core: Core, http: HttpServer) -> PlaygroundPlatform:
    """The playground platform, its job handler registered and its routes added."""
    platform = PlaygroundPlatform(core=core)
    core.queue.register(PLATFORM, Handler(run=platform.run_job, give_up=platform.give_up))
    PlaygroundRoutes(platform=platform).register(http)
    return platform
