"""What the Slack listeners share, built once by :mod:`bot.adapters.slack.app`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import texts
from bot.adapters.slack.admins import SlackAdminCheck
from bot.adapters.slack.commands import STYLE
from bot.adapters.slack.files import SlackAudioFile, SlackDownloadError, needs_file_info
from bot.adapters.slack.parents import SlackThreadParent
from bot.adapters.slack.replier import MethodPauses, SlackSurface
from bot.adapters.slack.threads import ThreadInspector
from bot.delivery.sink import DeliveryPolicy, StreamingSink
from bot.engine.intake import Arrival
from bot.engine.ports import IncomingTurn, TurnOutcome
from bot.engine.service import Engine
from bot.metrics import Metrics
from bot.net.hosts import TokenHosts
from bot.queue.port import TurnQueue

log = structlog.get_logger(__name__)


@dataclass(kw_only=True)
class SlackDeps:
    """The engine and the Slack-side helpers every listener uses."""

    engine: Engine
    queue: TurnQueue  # message events become jobs here before Slack is acknowledged
    client: AsyncWebClient
    # The same Web API without slack-sdk's retry handlers, for replies: the delivery sink
    # is their one retry layer.
    reply_client: AsyncWebClient
    delivery: DeliveryPolicy
    session: Callable[[], aiohttp.ClientSession]  # for file downloads, opened lazily
    token: str
    file_hosts: TokenHosts  # where the token may go for downloads (see files.slack_file_hosts)
    metrics: Metrics
    admins: SlackAdminCheck
    threads: ThreadInspector
    max_bytes: int
    reply_interval: float = 1.0
    # Retry-After per Web API method, shared by every reply of the workspace.
    pauses: MethodPauses = field(default_factory=MethodPauses)

    async def audio_source(self, file: dict[str, Any]) -> SlackAudioFile:
        """The engine's view of a file; stubs (Slack Connect, hidden) are completed first."""
        if needs_file_info(file) and file.get("id"):
            try:
                resp = await self.client.files_info(file=file["id"])
                file = dict(resp.get("file") or file)
            except SlackApiError as exc:
                log.warning("slack.files_info.failed", error=exc.response.get("error"))
        return SlackAudioFile(
            file=file,
            session=self.session(),
            token=self.token,
            hosts=self.file_hosts,
            max_bytes=self.max_bytes,
        )

    def thread_parent(
        self,
        *,
        channel: str,
        thread_ts: str,
        bot_user_id: str | None,
        known: dict[str, Any] | None = None,
    ) -> SlackThreadParent:
        """The message a thread replies to, read only if the engine needs it (``known``:
        already read with the thread)."""
        return SlackThreadParent(
            client=self.client,
            channel=channel,
            thread_ts=thread_ts,
            bot_user_id=bot_user_id,
            audio_source=self.audio_source,
            known=known,
        )

    def replier(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        team_id: str | None,
        user_id: str,
        listening: bool,
    ) -> StreamingSink:
        surface = SlackSurface(
            client=self.reply_client,
            channel=channel,
            thread_ts=thread_ts,
            recipient_team_id=team_id,
            recipient_user_id=user_id,
            # Rendered by the surface in the turn's language.
            status=texts.SLACK_STATUS_LISTENING if listening else texts.SLACK_STATUS_THINKING,
            interval=self.reply_interval,
            pauses=self.pauses,
        )
        return StreamingSink(
            surface=surface,
            policy=self.delivery,
            metrics=self.metrics,
            platform="slack",
            style=STYLE,
        )

    async def with_language(self, turn: IncomingTurn) -> IncomingTurn:
        """The turn with its sender's Slack locale, which the engine answers in while the
        chat's ``language`` is ``auto`` (English if Slack does not say)."""
        return dataclasses.replace(turn, user_language=await self.admins.locale(turn.user_id))

    async def run_turn(
        self,
        turn: IncomingTurn,
        arrival: Arrival,
        *,
        channel: str,
        thread_ts: str | None,
        team_id: str | None,
    ) -> TurnOutcome:
        """Answer a claimed event's turn with a replier in the right place."""
        turn = await self.with_language(turn)
        if thread_ts is not None and not turn.chat.is_private:
            self.threads.mark_joined(channel, thread_ts)
        sink = self.replier(
            channel=channel,
            thread_ts=thread_ts,
            team_id=team_id,
            user_id=turn.user_id,
            listening=turn.audio is not None,
        )
        outcome = await arrival.answer(turn, sink)
        log.info(
            "slack.turn.done",
            status=outcome.status,
            messages=len(outcome.message_ids),
            error=type(outcome.error).__name__ if outcome.error else None,
        )
        return outcome


__all__ = ["SlackDeps", "SlackDownloadError"]
