"""Inline keyboards and their callback data (``/model``, ``/settings``, ``/forget``)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import texts
from bot.catalog import ModelSpec


class ModelChoice(CallbackData, prefix="model"):
    """An admin picked a model (callback data is ≤ 64 bytes; model names fit)."""

    name: str


class PolicyChoice(CallbackData, prefix="policy"):
    """An admin picked when the bot answers in this group."""

    value: str


class ForgetChoice(CallbackData, prefix="forget"):
    """The /forget confirmation: ``yes`` deletes, anything else cancels."""

    answer: str


def models_keyboard(models: list[ModelSpec], current: str) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=("✓ " if spec.name == current else "") + spec.name,
                callback_data=ModelChoice(name=spec.name).pack(),
            )
        ]
        for spec in models
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def policy_keyboard(current: str) -> InlineKeyboardMarkup:
    options = (
        ("mention", texts.TELEGRAM_POLICY_MENTION),
        ("all_voice", texts.TELEGRAM_POLICY_ALL_VOICE),
    )
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=("✓ " if value == current else "") + label,
                    callback_data=PolicyChoice(value=value).pack(),
                )
            ]
            for value, label in options
        ]
    )


def forget_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=texts.TELEGRAM_FORGET_YES, callback_data=ForgetChoice(answer="yes").pack()
                ),
                InlineKeyboardButton(
                    text=texts.TELEGRAM_FORGET_NO, callback_data=ForgetChoice(answer="no").pack()
                ),
            ]
        ]
    )
