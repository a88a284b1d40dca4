"""Spoken replies: the model's PCM → an OGG/Opus voice note (:mod:`bot.voice.encode`),
Markdown → speakable text (:mod:`bot.voice.speakable`), and the spoken part's cap and
collection during a turn (:mod:`bot.voice.reply`)."""
