"""The bot's web pages on its own aiohttp server: the browser voice playground
(:mod:`bot.web.playground`) and the admin console."""
