"""The chat commands and their buttons, once for every platform.

``help | start``, ``new``, ``model [NAME]``, ``settings [KEY VALUE]``, ``usage``,
``forget`` (CONTRACT.md): :meth:`CommandHandler.run` answers a typed command,
:meth:`CommandHandler.press` a pressed button. Access is checked first, then the engine
does the work and checks admin rights (:meth:`~bot.engine.service.Engine.update_settings`,
:meth:`~bot.engine.service.Engine.forget`), for commands and buttons alike; its refusals
become their ``user_message``. Answers are in the language the engine picks for the chat
and the sender (:meth:`~bot.engine.service.Engine.language`); a change of the chat's
``language`` is answered in the new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from bot import texts
from bot.commands.buttons import forget_buttons, model_buttons, policy_buttons
from bot.commands.ports import (
    FORGET_ACTION,
    FORGET_YES,
    MODEL_ACTION,
    POLICY_ACTION,
    TRANSCRIPT_ACTION,
    Answer,
    ButtonAction,
    ChatCommand,
    CommandProfile,
)
from bot.engine import presenters
from bot.engine.ports import AdminCheck, ChatRef
from bot.engine.service import Engine
from bot.engine.settings import ChatSettingsView, parse_setting_change
from bot.errors import BotError, ConsoleOff, ConsolePrivateOnly
from bot.i18n import choose, current, tr, use

# Other names users type for a command (Telegram sends /start on first contact).
ALIASES = {"start": "help", "?": "help", "": "help"}


def canonical_name(name: str) -> str:
    """The command a typed name means: ``"/Help"`` → ``"help"``, ``"start"`` → ``"help"``."""
    norm = name.strip().lower().lstrip("/")
    return ALIASES.get(norm, norm)


class CommandHandler:
    """Answers commands and button presses for one platform (its ``profile`` and admins)."""

    def __init__(self, *, engine: Engine, admins: AdminCheck, profile: CommandProfile) -> None:
        self._engine = engine
        self._admins = admins
        self._profile = profile
        self._commands: dict[str, Callable[[ChatCommand], Awaitable[Answer]]] = {
            "help": self._help,
            "new": self._new,
            "model": self._model,
            "settings": self._settings,
            "usage": self._usage,
            "forget": self._forget,
            "admin": self._admin,
        }

    @property
    def profile(self) -> CommandProfile:
        """What this handler's platform can show."""
        return self._profile

    async def run(self, command: ChatCommand) -> Answer:
        """The answer to a typed command (unknown names get a pointer to ``help``)."""
        with use(await self._engine.language(command.chat, command.user_language)):
            return await self._run(command)

    async def _run(self, command: ChatCommand) -> Answer:
        if not self._engine.is_allowed(command.chat, command.user_id):
            return Answer(text=tr(texts.ACCESS_DENIED))
        name = canonical_name(command.name)
        run = self._commands.get(name)
        if run is None:
            return Answer(text=self._profile.style.format(tr(texts.UNKNOWN_COMMAND), command=name))
        try:
            return await run(command)
        except BotError as exc:
            return Answer(text=exc.shown(self._profile.style))

    async def press(self, action: ButtonAction) -> Answer:
        """The answer to a pressed button: the message's new text and buttons, and a notice.

        Rights are checked again here: a button stays pressable after rights change, and
        anyone in the chat can press it.
        """
        with use(await self._engine.language(action.chat, action.user_language)):
            return await self._press(action)

    async def _press(self, action: ButtonAction) -> Answer:
        if not self._engine.is_allowed(action.chat, action.user_id):
            return Answer(notice=tr(texts.ACCESS_DENIED), alert=True)
        try:
            if action.action == MODEL_ACTION:
                view = await self._change(action, model=action.value)
                menu = self._model_menu(view)
                return dataclasses.replace(
                    menu, notice=tr(texts.MODEL_CHANGED).format(model=view.model)
                )
            if action.action == POLICY_ACTION:
                view = await self._change(action, group_policy=action.value)
                shown = self._settings_view(view, action.chat, admin=True)  # it changed
                return dataclasses.replace(shown, notice=tr(texts.SETTING_SAVED))
            if action.action == TRANSCRIPT_ACTION:
                return await self._transcript(action)
            if action.action == FORGET_ACTION:
                if action.value != FORGET_YES:
                    # Only whoever may confirm answers the question (the one who asked is
                    # such a person): a member can't dismiss an admin's prompt either.
                    if not await self._engine.can_manage(action.chat, action.user_id, self._admins):
                        return Answer(notice=tr(texts.NOT_ADMIN), alert=True)
                    return Answer(text=tr(texts.FORGET_CANCELLED))
                counts = await self._engine.forget(action.chat, action.user_id, self._admins)
                return Answer(text=presenters.forget_summary(counts))
        except BotError as exc:
            return Answer(notice=exc.shown(self._profile.style), alert=True)
        return Answer()  # not ours (adapters pass only ACTIONS): acknowledged, nothing changes

    async def _transcript(self, action: ButtonAction) -> Answer:
        """Anyone in the chat may ask: checked here at once (quick, SQL only); the model
        call, if any, is the answer's ``later``."""
        engine, style = self._engine, self._profile.style
        request = await engine.find_transcript(action.chat, action.value)
        if engine.transcript_in_progress(request):
            return Answer(notice=tr(texts.TRANSCRIPT_IN_PROGRESS))
        # ``later`` runs after this press's language context has ended: it takes it along.
        lang = current()

        async def make() -> Answer:
            with use(lang):
                try:
                    made = await engine.transcript(
                        request, chat=action.chat, user_id=action.user_id
                    )
                except BotError as exc:
                    reason = exc.shown(style)
                    failed = tr(texts.TRANSCRIPT_FAILED).format(reason=reason)
                    return Answer(notice=failed, alert=True)
                return Answer(post=made.text) if made is not None else Answer()

        working = None if request.cached else tr(texts.TRANSCRIPT_WORKING)
        return Answer(notice=working, later=make)

    # --- commands -------------------------------------------------------------------------

    async def _help(self, command: ChatCommand) -> Answer:
        profile = self._profile
        view = await self._engine.get_settings(command.chat)
        text = presenters.help_text(
            model=view.model, prefix=profile.style.prefix, intro=profile.help_intro
        )
        if profile.group_help and not command.chat.is_private:
            extra = profile.style.format(
                tr(profile.group_help), username=profile.bot_username or ""
            )
            text = f"{text}\n\n{extra}"
        return Answer(text=text)

    async def _admin(self, command: ChatCommand) -> Answer:
        """A one-time sign-in link to the admin console, for an admin, in private."""
        links = self._engine.console_links
        if links is None:
            raise ConsoleOff("console off")
        if not (command.chat.is_private or self._profile.answers_in_private):
            raise ConsolePrivateOnly("asked in a group")
        scope = await self._engine.console_scope(
            command.chat,
            command.user_id,
            self._admins,
            private_kinds=self._profile.private_kinds,
        )
        url = await links.issue(scope)
        what = (
            tr(texts.CONSOLE_SCOPE_ALL)
            if scope.chats is None
            else tr(texts.CONSOLE_SCOPE_SOME).format(count=len(scope.chats))
        )
        return Answer(text=tr(texts.CONSOLE_LINK).format(url=url, scope=what), ephemeral=True)

    async def _new(self, command: ChatCommand) -> Answer:
        if self._profile.group_new is not None and not command.chat.is_private:
            return Answer(text=tr(self._profile.group_new))
        await self._engine.new_conversation(command.chat, command.thread_key)
        return Answer(text=tr(texts.NEW_CONVERSATION))

    async def _model(self, command: ChatCommand) -> Answer:
        words = command.args.split()
        if words:  # a model name has no spaces: the first word is the name
            view = await self._change(command, model=words[0])
            return Answer(text=tr(texts.MODEL_CHANGED).format(model=view.model))
        return self._model_menu(await self._engine.get_settings(command.chat))

    async def _settings(self, command: ChatCommand) -> Answer:
        args = command.args.strip()
        if args:
            key, _, raw = args.partition(" ")
            view = await self._change(command, **parse_setting_change(key, raw))
        else:
            view = await self._engine.get_settings(command.chat)
        # Admins see that the chat's chosen model was retired or that DashScope refused it
        # (asked only then: a platform admin lookup is a network call, and its failure
        # hides only the note).
        admin = False
        if view.retired_model is not None or view.model_unavailable == view.model:
            try:
                admin = await self._engine.can_manage(command.chat, command.user_id, self._admins)
            except BotError:
                admin = False
        # After "settings language en", already in the chat's new language.
        with use(choose(view.language, command.user_language)):
            return self._settings_view(view, command.chat, admin=admin)

    async def _usage(self, command: ChatCommand) -> Answer:
        return Answer(text=presenters.usage_summary(await self._engine.usage(command.chat)))

    async def _forget(self, command: ChatCommand) -> Answer:
        chat, user = command.chat, command.user_id
        if not self._profile.confirms:
            counts = await self._engine.forget(chat, user, self._admins)
            return Answer(text=presenters.forget_summary(counts))
        # Deleting can't be undone: ask first, but only someone who could confirm.
        if not await self._engine.can_manage(chat, user, self._admins):
            return Answer(text=tr(texts.NOT_ADMIN))
        return Answer(text=tr(texts.FORGET_CONFIRM), buttons=forget_buttons(), confirm=True)

    # --- shared views ---------------------------------------------------------------------

    async def _change(self, source: ChatCommand | ButtonAction, **change: Any) -> ChatSettingsView:
        return await self._engine.update_settings(
            source.chat, source.user_id, self._admins, **change
        )

    def _model_menu(self, view: ChatSettingsView) -> Answer:
        # Every allowed model is listed (a retired one marked, with its replacement), but
        # only those that can be chosen get a button.
        text = presenters.model_list(self._engine.allowed_models, current=view.model)
        if not self._profile.buttons:
            return Answer(text=text)
        pick = self._profile.style.format(tr(texts.MODEL_PICK_BUTTONS))
        buttons = model_buttons(self._engine.choosable_models, current=view.model)
        return Answer(text=f"{text}\n\n{pick}", buttons=buttons)

    def _settings_view(self, view: ChatSettingsView, chat: ChatRef, *, admin: bool) -> Answer:
        text = presenters.settings_summary(view, chat)
        if admin and view.retired_model is not None:
            retired = self._profile.style.format(
                tr(texts.SETTINGS_MODEL_RETIRED),
                model=view.retired_model,
                replacement=view.model,
            )
            text = f"{text}\n\n{retired}"
        if admin and view.model_unavailable == view.model and view.model_unavailable_at:
            refused = self._profile.style.format(
                tr(texts.SETTINGS_MODEL_UNAVAILABLE),
                model=view.model,
                date=view.model_unavailable_at.date().isoformat(),
            )
            text = f"{text}\n\n{refused}"
        if not self._profile.buttons or chat.is_private:
            return Answer(text=text)
        return Answer(text=text, buttons=policy_buttons(view.group_policy))
