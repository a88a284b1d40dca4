"""Slack files as :class:`~bot.engine.ports.AudioSource`: choosing them and downloading them.

A file is a candidate when its labels say audio (Slack clips have ``subtype`` ``slack_audio``;
uploads carry ``mimetype``/``filetype``); the audio pipeline then decides from the bytes.
Downloads use ``url_private_download`` with the bot token. Without a valid token Slack
answers 200 with its sign-in page, so an HTML body is an error, never audio.

The token goes only where :class:`~bot.net.hosts.TokenHosts` allows (Slack's file hosts):
a file URL anywhere else is refused before any request, since events and ``files.info``
answers are input, and redirects are followed by hand so that a hop elsewhere (Slack's
CDN hands out signed URLs) is requested without the token.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog
from yarl import URL

from bot import texts
from bot.errors import AudioError, AudioTooLarge, ForeignFileHost
from bot.net.hosts import MAX_REDIRECTS, REDIRECT_STATUSES, TokenHosts, parse_url, redirect_target

log = structlog.get_logger(__name__)

# Where Slack serves private files; SLACK_API_BASE's own origin is allowed as well.
SLACK_FILE_HOSTS = ("files.slack.com",)


def slack_file_hosts(api_base: str) -> TokenHosts:
    """The origins a Slack bot token may be sent to for file downloads."""
    return TokenHosts.for_api(api_base, https_hosts=SLACK_FILE_HOSTS)


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
        self,
        *,
        file: dict[str, Any],
        session: aiohttp.ClientSession,
        token: str,
        hosts: TokenHosts,
        max_bytes: int,
    ) -> None:
        self._file = file
        self._session = session
        self._token = token
        self._hosts = hosts
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
        """GET ``url_private_download``, capped at ``max_bytes``; the bot token only goes
        to Slack's file hosts, the file's own URL must be one of them."""
        raw = self._file.get("url_private_download") or self._file.get("url_private")
        if not raw:
            raise SlackDownloadError("file has no download URL", user_message=texts.SLACK_FILE_GONE)
        url = parse_url(str(raw))
        if url is None or not self._hosts.allows(url):
            host = url.raw_host if url is not None else None
            log.warning("slack.file.foreign_host", file_id=self.file_id, host=host)
            raise ForeignFileHost(host=host, user_message=texts.SLACK_FILE_FOREIGN_HOST)
        try:
            data = await self._download(url)
        except aiohttp.ClientError as exc:
            raise SlackDownloadError(f"download failed: {type(exc).__name__}") from exc
        # Slack sometimes labels the sign-in page loosely; look at the bytes as well.
        if bytes(data[:64]).lstrip().lower().startswith(_HTML_PREFIXES):
            raise _login_page()
        log.info("slack.file.downloaded", file_id=self.file_id, size=len(data))
        return bytes(data)

    async def _download(self, url: URL) -> bytearray:
        """Follow up to ``MAX_REDIRECTS`` redirects by hand, the token on allowed hops only."""
        for _hop in range(MAX_REDIRECTS + 1):
            with_token = self._hosts.allows(url)
            headers = {"Authorization": f"Bearer {self._token}"} if with_token else {}
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status in REDIRECT_STATUSES:
                    target = redirect_target(url, resp.headers.get("Location"))
                    if target is None:
                        log.warning("slack.file.bad_redirect", file_id=self.file_id)
                        raise SlackDownloadError("redirect to a missing or non-http(s) URL")
                    log.debug(
                        "slack.file.redirect",
                        file_id=self.file_id,
                        host=target.raw_host,
                        with_token=self._hosts.allows(target),
                    )
                    url = target
                    continue
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
                return data
        log.warning("slack.file.too_many_redirects", file_id=self.file_id)
        raise SlackDownloadError(f"more than {MAX_REDIRECTS} redirects")


def _login_page() -> SlackDownloadError:
    return SlackDownloadError(
        "got an HTML page instead of the file", user_message=texts.SLACK_FILE_LOGIN_PAGE
    )
