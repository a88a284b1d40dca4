"""The buttons commands offer: model choice, group policy, forget confirmation, and the
Transcript button under replies to voice."""

from __future__ import annotations

from collections.abc import Sequence

from bot import texts
from bot.catalog import ModelSpec
from bot.commands.ports import (
    FORGET_ACTION,
    FORGET_NO,
    FORGET_YES,
    MODEL_ACTION,
    POLICY_ACTION,
    TRANSCRIPT_ACTION,
    Button,
    ButtonRows,
)
from bot.engine.domain import GroupPolicy
from bot.i18n import tr

_POLICY_LABELS = (
    (GroupPolicy.MENTION, texts.POLICY_BUTTON_MENTION),
    (GroupPolicy.ALL_VOICE, texts.POLICY_BUTTON_ALL_VOICE),
)


def _mark(label: str, selected: bool) -> str:
    return f"{tr(texts.BUTTON_SELECTED_MARK)}{label}" if selected else label


def model_buttons(models: Sequence[ModelSpec], *, current: str) -> ButtonRows:
    """One row per model given (the handler passes the choosable ones), the current one
    marked."""
    return tuple(
        (
            Button(
                label=_mark(spec.name, spec.name == current), action=MODEL_ACTION, value=spec.name
            ),
        )
        for spec in models
    )


def policy_buttons(current: GroupPolicy) -> ButtonRows:
    """When the bot answers in a group: one row per policy, the current one marked."""
    return tuple(
        (
            Button(
                label=_mark(tr(label), policy == current), action=POLICY_ACTION, value=policy.value
            ),
        )
        for policy, label in _POLICY_LABELS
    )


def forget_buttons() -> ButtonRows:
    """Delete, or cancel, on one row."""
    return (
        (
            Button(label=tr(texts.FORGET_YES), action=FORGET_ACTION, value=FORGET_YES, danger=True),
            Button(label=tr(texts.FORGET_NO), action=FORGET_ACTION, value=FORGET_NO),
        ),
    )


def transcript_buttons(assistant_turn_id: int) -> ButtonRows:
    """The Transcript button of a reply (its value names the reply's turn: it fits
    Telegram's 64 bytes of callback data and Slack's action value)."""
    return (
        (
            Button(
                label=tr(texts.TRANSCRIPT_BUTTON),
                action=TRANSCRIPT_ACTION,
                value=str(assistant_turn_id),
            ),
        ),
    )
