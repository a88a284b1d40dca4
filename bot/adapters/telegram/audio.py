"""Telegram voice notes, audio files, video notes and documents as :class:`AudioSource`.

The bot token is part of every file URL (``/file/bot<token>/<path>``), so a download URL
must be on the origin of the Bot API server itself (TELEGRAM_API_BASE) and redirects are
followed by hand: a hop elsewhere whose URL still carries the token is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NoReturn
from urllib.parse import unquote

import aiohttp
import structlog
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import Audio, Document, Message, VideoNote, Voice
from yarl import URL

from bot import texts
from bot.errors import AudioTooLarge, AudioUnreadable, ForeignFileHost
from bot.net.hosts import MAX_REDIRECTS, REDIRECT_STATUSES, TokenHosts, parse_url, redirect_target

log = structlog.get_logger(__name__)

# Bots may download files up to 20 MB through the public Bot API; getFile refuses larger
# ones with 400 "file is too big" (a local Bot API server has no such limit).
DOWNLOAD_LIMIT = 20 * 1024 * 1024
_CHUNK = 64 * 1024
_TIMEOUT = aiohttp.ClientTimeout(total=60)


class TelegramAudio:
    """One recording attached to a message; downloaded only when the engine asks."""

    def __init__(
        self,
        *,
        bot: Bot,
        file_id: str,
        file_unique_id: str,
        declared_size: int | None,
        mime_type: str | None,
        file_name: str | None,
        max_bytes: int,
    ) -> None:
        self._bot = bot
        self._file_id = file_id
        self._file_unique_id = file_unique_id
        self._declared_size = declared_size
        self._mime_type = mime_type
        self._file_name = file_name
        self._max_bytes = max_bytes

    @property
    def declared_size(self) -> int | None:
        return self._declared_size

    @property
    def mime_type(self) -> str | None:
        return self._mime_type

    @property
    def file_name(self) -> str | None:
        return self._file_name

    @property
    def source_key(self) -> str | None:
        return f"telegram:{self._file_unique_id}"

    async def fetch(self) -> bytes:
        """getFile, then a streamed GET of the file URL, never reading past ``max_bytes``."""
        bot = self._bot
        # Checked here as well as by the engine: AUDIO_MAX_BYTES may be set above what the
        # public Bot API lets bots download.
        if (
            not bot.session.api.is_local
            and self._declared_size is not None
            and self._declared_size > DOWNLOAD_LIMIT
        ):
            raise AudioTooLarge(size=self._declared_size, limit=DOWNLOAD_LIMIT)
        try:
            file = await bot.get_file(self._file_id)
        except TelegramBadRequest as exc:
            if "file is too big" in exc.message.lower():
                raise AudioTooLarge(
                    "telegram getFile: file is too big", limit=DOWNLOAD_LIMIT
                ) from None
            raise AudioUnreadable(
                f"telegram getFile: {exc.message}", user_message=texts.TELEGRAM_DOWNLOAD_FAILED
            ) from None
        except TelegramAPIError as exc:
            raise AudioUnreadable(
                f"telegram getFile: {type(exc).__name__}",
                user_message=texts.TELEGRAM_DOWNLOAD_FAILED,
            ) from None
        if file.file_path is None:
            raise AudioUnreadable(
                "telegram getFile: no file_path", user_message=texts.TELEGRAM_DOWNLOAD_FAILED
            )
        if file.file_size is not None and file.file_size > self._max_bytes:
            raise AudioTooLarge(size=file.file_size, limit=self._max_bytes)
        # aiogram builds the URL from the server's ``file`` template; check it lands on the
        # API server (a local server in is_local mode hands back absolute paths: still fine).
        api = bot.session.api
        hosts = TokenHosts.same_origin(api.api_url(bot.token, "getFile"))
        url = parse_url(api.file_url(bot.token, file.file_path))
        if url is None or not hosts.allows(url):
            self._refuse(url.raw_host if url is not None else None)
        data = bytearray()
        try:
            async for chunk in self._stream(url, hosts):
                data.extend(chunk)
                if len(data) > self._max_bytes:
                    raise AudioTooLarge(size=None, limit=self._max_bytes)
        except (AudioTooLarge, AudioUnreadable, ForeignFileHost):
            raise
        except Exception as exc:  # network trouble: the user should just try again
            log.warning("telegram.download_failed", error=type(exc).__name__)
            raise AudioUnreadable(
                f"telegram download: {type(exc).__name__}",
                user_message=texts.TELEGRAM_DOWNLOAD_FAILED,
            ) from None
        return bytes(data)

    async def _stream(self, url: URL, hosts: TokenHosts) -> AsyncIterator[bytes]:
        """GET ``url``, following redirects the API server chooses, up to ``MAX_REDIRECTS``;
        never to another host with the token in the URL."""
        session = self._bot.session
        if not isinstance(session, AiohttpSession):
            raise TypeError("downloads need aiogram's AiohttpSession")
        http = await session.create_session()
        for _hop in range(MAX_REDIRECTS + 1):
            async with http.get(url, timeout=_TIMEOUT, allow_redirects=False) as resp:
                if resp.status in REDIRECT_STATUSES:
                    target = redirect_target(url, resp.headers.get("Location"))
                    if target is None:
                        log.warning(
                            "telegram.file.bad_redirect", file_unique_id=self._file_unique_id
                        )
                        raise AudioUnreadable(
                            "telegram download: redirect to a missing or non-http(s) URL",
                            user_message=texts.TELEGRAM_DOWNLOAD_FAILED,
                        )
                    if not hosts.allows(target) and self._bot.token in unquote(str(target)):
                        self._refuse(target.raw_host)
                    url = target
                    continue
                resp.raise_for_status()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    yield chunk
                return
        log.warning("telegram.file.too_many_redirects", file_unique_id=self._file_unique_id)
        raise AudioUnreadable(
            f"telegram download: more than {MAX_REDIRECTS} redirects",
            user_message=texts.TELEGRAM_DOWNLOAD_FAILED,
        )

    def _refuse(self, host: str | None) -> NoReturn:
        """Log (ids only: the URL holds the token) and refuse a download to ``host``."""
        log.warning("telegram.file.foreign_host", file_unique_id=self._file_unique_id, host=host)
        raise ForeignFileHost(host=host)


def attached_audio(message: Message, *, bot: Bot, max_bytes: int) -> TelegramAudio | None:
    """The recording a message carries: voice, audio, video note, or an audio/video document."""
    doc = message.document
    if doc is not None and not (doc.mime_type or "").startswith(("audio/", "video/")):
        doc = None
    media: Voice | Audio | VideoNote | Document | None = (
        message.voice or message.audio or message.video_note or doc
    )
    if media is None:
        return None
    # Video notes are MP4 and carry no mime_type field; only audio and documents have names.
    mime_type = "video/mp4" if isinstance(media, VideoNote) else media.mime_type
    file_name = media.file_name if isinstance(media, Audio | Document) else None
    return TelegramAudio(
        bot=bot,
        file_id=media.file_id,
        file_unique_id=media.file_unique_id,
        declared_size=media.file_size,
        mime_type=mime_type,
        file_name=file_name,
        max_bytes=max_bytes,
    )
