"""Slack files as :class:`~bot.engine.ports.AudioSource`: choosing them and downloading them.

A file is a candidate when its labels say audio (Slack clips have ``subtype`` ``slack_audio``;
uploads carry ``mimetype``/``filetype``); the audio pipeline then decides from the bytes.
Downloads use ``url_private_download`` with the bot token. Without a valid token Slack
answers 200 with its sign-in page, so an HTML body is an error, never audio.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog

from bot import texts
from bot.errors import AudioError, AudioTooLarge

log = structlog.get_logger(__name__)

# Filetypes Slack assigns to audio and video uploads the pipeline can usually read.
AUDIO_FILETYPES = frozenset(
    {
        "aac",
        "aiff",
        "amr",
        "flac",
        "m4a",
        "mp3",
        "mp4",
        "mpg",
        "mpeg",
        "m4v",
        "mov",
        "oga",
        "ogg",
        "opus",
        "wav",
        "weba",
        "webm",
        "wma",
        "3gp",
        "avi",
        "mkv",
    }
)
_HTML_PREFIXES = (b"<!doctype html", b"<html", b"<!--", b"<head")


class SlackDownloadError(AudioError):
    """Slack did not hand over the file (sign-in page, HTTP error, deleted file)."""

    default_user_message = texts.SLACK_FILE_DOWNLOAD_FAILED


def is_audio_file(file: dict[str, Any]) -> bool:
    """Whether a file object's labels say audio or video (clips, voice memos, uploads)."""
    if file.get("subtype") in ("slack_audio", "slack_video"):
        return True
    mimetype = str(file.get("mimetype") or "").lower()
    if mimetype.startswith(("audio/", "video/")):
        return True
    return str(file.get("filetype") or "").lower() in AUDIO_FILETYPES


def needs_file_info(file: dict[str, Any]) -> bool:
    """Event file objects can be stubs (Slack Connect ``check_file_info``, hidden files)."""
    return (
        file.get("file_access") == "check_file_info"
        or not file.get("url_private_download")
        or file.get("size") is None
    )


class SlackAudioFile:
    """One Slack file the engine may fetch (implements ``AudioSource``)."""

    def __init__(
        self, *, file: dict[str, Any], session: aiohttp.ClientSession, token: str, max_bytes: int
    ) -> None:
        self._file = file
        self._session = session
        self._token = token
        self._max_bytes = max_bytes

    @property
    def file_id(self) -> str:
        return str(self._file.get("id") or "")

    @property
    def declared_size(self) -> int | None:
        size = self._file.get("size")
        return int(size) if isinstance(size, int | float) else None

    @property
    def mime_type(self) -> str | None:
        value = self._file.get("mimetype")
        return str(value) if value else None

    @property
    def file_name(self) -> str | None:
        value = self._file.get("name")
        return str(value) if value else None

    @property
    def source_key(self) -> str | None:
        return f"slack:{self.file_id}" if self.file_id else None

    async def fetch(self) -> bytes:
        """GET ``url_private_download`` with the bot token, capped at ``max_bytes``."""
        url = self._file.get("url_private_download") or self._file.get("url_private")
        if not url:
            raise SlackDownloadError("file has no download URL", user_message=texts.SLACK_FILE_GONE)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.get(str(url), headers=headers) as resp:
                if resp.status == 404:
                    raise SlackDownloadError("file not found", user_message=texts.SLACK_FILE_GONE)
                if resp.status != 200:
                    raise SlackDownloadError(f"download status {resp.status}")
                if resp.content_type == "text/html":
                    raise _login_page()
                data = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data.extend(chunk)
                    if len(data) > self._max_bytes:
                        raise AudioTooLarge(size=None, limit=self._max_bytes)
        except aiohttp.ClientError as exc:
            raise SlackDownloadError(f"download failed: {type(exc).__name__}") from exc
        # Slack sometimes labels the sign-in page loosely; look at the bytes as well.
        if bytes(data[:64]).lstrip().lower().startswith(_HTML_PREFIXES):
            raise _login_page()
        log.info("slack.file.downloaded", file_id=self.file_id, size=len(data))
        return bytes(data)


def _login_page() -> SlackDownloadError:
    return SlackDownloadError(
        "got an HTML page instead of the file", user_message=texts.SLACK_FILE_LOGIN_PAGE
    )
