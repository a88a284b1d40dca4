"""Streaming replies into chat platforms: one sink (pacing, coalescing, the truth about what
was delivered) over each platform's surface. See :mod:`bot.delivery.sink`."""
