"""Every text a user sees, in one place so it can be translated.

Keep them short, specific and friendly. Placeholders use ``str.format`` names. A text
that names a chat command writes ``{cmd:NAME}``: :class:`bot.commands.CommandStyle` spells
it for the platform (``/model`` on Telegram, ``/voicebot model`` on Slack); an error's
``user_message`` keeps the field, and :meth:`bot.errors.BotError.shown` spells it.
Adapters may add platform-specific texts here too (grouped by a comment), never inline.

English is the source: every text is a gettext msgid, marked with ``N_(…)`` so Babel
extracts it, and shown through :func:`bot.i18n.tr` (or lazily, :class:`bot.i18n.Msg`) in
the reader's language. A new or changed text: mark it ``N_("…")``, run
``python tools/catalogs.py``, write its Chinese in
``bot/locale/zh_Hans/LC_MESSAGES/voicebot.po``, and run the command again (README,
Languages). Command names, ``{field}`` placeholders and Markdown stay as they are in a
translation; a test checks every text has one, with the same placeholders.
"""

from __future__ import annotations

from bot.i18n import N_

# --- generic -------------------------------------------------------------------------
ERROR_GENERIC = N_("Something went wrong on my side. Please try again in a moment.")

# --- access and settings -------------------------------------------------------------
ACCESS_DENIED = N_("Sorry, this bot is private and not open to you here.")
NOT_ADMIN = N_("Only this chat's admins can change that.")
USER_RATE_LIMITED = N_(
    "You're sending messages faster than I can answer. Please slow down a little."
)
USER_RATE_LIMITED_WAIT = N_(
    "You're sending messages faster than I can answer. Try again in {seconds} s."
)
UNSUPPORTED_REQUEST = N_("The current model can't do that.")
UNKNOWN_MODEL = N_("I don't know that model.")
UNKNOWN_MODEL_NAMED = N_("I don't know the model “{model}”. Choose one of: {allowed}.")
MODEL_RETIRED_NAMED = N_(
    "DashScope has retired “{model}”, so it can't be chosen any more. Choose one of: {allowed}."
)
# Shown under a reply, once per chat: its stored model was retired and another answered.
MODEL_RETIRED_REPLACED = N_("DashScope has retired {model}, so {replacement} answered instead.")
INVALID_SETTING = N_("That value isn't valid for this setting.")
CONVERSATION_NOT_FOUND = N_("I can't find that conversation.")

# --- audio ---------------------------------------------------------------------------
AUDIO_TOO_LARGE = N_("That file is too large for me (the limit is {limit_mb} MB).")
AUDIO_TOO_SHORT = N_(
    "That voice note was too short for me to hear anything — hold the button a bit longer."
)
AUDIO_EMPTY = N_("That file is empty: there's no audio in it.")
AUDIO_SILENT = N_("I couldn't hear anything in that recording.")
AUDIO_UNREADABLE = N_("I couldn't read that audio. The file may be damaged or incomplete.")
NOT_AUDIO = N_("That doesn't look like an audio or video file.")
NO_AUDIO_TRACK = N_("That video has no sound for me to listen to.")
AUDIO_TIMEOUT = N_("That recording took too long to process. Please try a shorter one.")
AUDIO_LEFT_OUT = N_("I listened to the first {sent} of {total}.")
AUDIO_LEFT_OUT_AT_LEAST = N_("I listened to the first {sent} of more than {total}.")
# A file holding more or less audio than its header says; the _NTH forms name one of
# several files sent together ({number} counts from 1).
AUDIO_CUT_OFF = N_("The file seems cut off after {heard}.")
AUDIO_CUT_OFF_NTH = N_("File {number} seems cut off after {heard}.")
AUDIO_UNREAD_TAIL = N_(
    "I could only read the first {heard} of the file: its header says the audio ends there, "
    "but about {rest} more follows."
)
AUDIO_UNREAD_TAIL_NTH = N_(
    "I could only read the first {heard} of file {number}: its header says the audio ends "
    "there, but about {rest} more follows."
)
AUDIO_LONGER_THAN_HEADER = N_("The file's header says it lasts {declared}, but I heard {heard}.")
AUDIO_LONGER_THAN_HEADER_NTH = N_(
    "File {number}'s header says it lasts {declared}, but I heard {heard}."
)
FILE_FOREIGN_HOST = N_("I can't download that file: it isn't stored where I expected.")

# --- model service -------------------------------------------------------------------
MODEL_ERROR = N_("The model couldn't answer this time. Please try again.")
MODEL_AUTH = N_("The bot's DashScope API key was refused. Please tell the bot's operator.")
MODEL_QUOTA = N_(
    "The model's quota is used up or access was denied. Please tell the bot's operator."
)
# Error texts name commands as {cmd:NAME}; BotError.shown(style) spells them per platform.
MODEL_NOT_FOUND = N_(
    "That model isn't available right now. An admin can pick another with {cmd:model}."
)
MODEL_NOT_FOUND_NAMED = N_(
    "DashScope says {model} doesn't exist or isn't available to this bot's key. "
    "An admin can pick another with {{cmd:model}}."
)
MODEL_BAD_REQUEST = N_("The model couldn't accept this request.")
MODEL_PAYLOAD_TOO_LARGE = N_("That recording is too large to send to the model (10 MB limit).")
CONTENT_FILTERED = N_(
    "The model declined to answer because the content was flagged by its safety filter."
)
MODEL_RATE_LIMITED = N_("The model is busy right now. Please try again in a minute.")
MODEL_SERVER_ERROR = N_("The model service had a problem. Please try again in a moment.")
MODEL_TIMEOUT = N_("The model took too long to answer. Please try again.")
MODEL_CONNECTION_LOST = N_("The connection to the model broke off. Please try again.")

# --- conversation engine -------------------------------------------------------------
# Sent to the model (not shown): the instruction for audio alone on models without voice chat.
VOICE_CHAT_INSTRUCTION = N_(
    "Listen to this voice message and reply to what the speaker says, in the language they speak."
)
TEXT_TOO_LONG = N_(
    "Your message and this chat's system prompt are too long for the model. Please shorten them."
)
NO_ROOM_FOR_AUDIO = N_(
    "This chat's system prompt leaves no room for audio with this model. "
    "An admin can shorten it with {cmd:settings}."
)
NOTHING_TO_ANSWER = N_("Send me a voice message, or ask me something about one.")
NEEDS_AUDIO_ASR = N_(
    "{model} only transcribes audio. Send a voice message, or choose another model with "
    "{{cmd:model}}."
)
NEEDS_AUDIO_CAPTION = N_(
    "{model} only describes audio. Send a recording, or choose another model with {{cmd:model}}."
)
INSTRUCTION_IGNORED = N_("{model} doesn't follow instructions, so I didn't use your text.")
ASR_DETECTED = N_("Detected {details}.")
ASR_LANGUAGE = N_("language: {language}")
ASR_EMOTION = N_("emotion: {emotion}")
REPLY_STOPPED = N_("(stopped)")
REPLY_CUT_AT_LIMIT = N_("(The reply reached its length limit.)")
EMPTY_REPLY = N_("The model sent back an empty reply. Please try again.")
SHUTTING_DOWN = N_("I'm restarting right now. Please send that again in a minute.")
TURN_ABANDONED = N_(
    "Sorry, I couldn't answer that message: I tried three times and it failed each time. "
    "Please try again, perhaps with a shorter recording."
)
REPLY_RESTARTED = N_("I was interrupted while answering, so this answer was restarted.")
DELIVERED_LATE = N_("Here is my answer to your earlier message, which I couldn't deliver then:")

# --- thread context (bot.engine.seeding) ----------------------------------------------
# Sent to the model (not shown): a thread's parent message nobody answered, after its audio.
THREAD_PARENT_AUDIO = N_("(The audio above is the message this thread replies to.)")
THREAD_PARENT_AUDIO_TEXT = N_(
    "(The audio above is the message this thread replies to; it came with this text: {text})"
)
THREAD_PARENT_TEXT = N_("(This thread replies to a message that says: {text})")
# Shown under the reply: the parent's audio was not (all) heard.
THREAD_PARENT_AUDIO_FAILED = N_(
    "I couldn't use the audio of the message this thread replies to, so I answered without it."
)
THREAD_PARENT_NO_ROOM = N_(
    "The audio of the message this thread replies to didn't fit beside yours, so I left it out."
)
THREAD_PARENT_LEFT_OUT = N_(
    "Of the message this thread replies to, I listened to the first {sent} of {total}."
)

# --- settings ------------------------------------------------------------------------
UNKNOWN_SETTING = N_("I don't know the setting “{key}”. Settings: {keys}.")
SETTING_MUST_BE = N_("“{key}” must be {rule}.")
SETTING_RULE_NUMBER = N_("a number from {low} to {high}")
SETTING_RULE_INTEGER = N_("a whole number from {low} to {high}")
SETTING_RULE_BOOL = N_("on or off")
SETTING_RULE_CHOICE = N_("one of: {choices}")
SETTING_RULE_TEXT = N_("at most {limit} characters")
SETTING_RULE_LANGUAGE = N_("a language code such as en, zh or de")
# Punctuation of the listings (Chinese writes "、" between items and a full-width colon).
LIST_SEPARATOR = N_(", ")
LABEL_COLON = N_(": ")
SETTINGS_HEADER = N_("Settings for this chat:")
SETTINGS_DEFAULT = N_("default")
SETTINGS_ON = N_("on")
SETTINGS_OFF = N_("off")
SETTINGS_HOW_TO_CHANGE = N_(
    "Change one with “settings KEY VALUE” (VALUE “default” resets it). Admins only in groups."
)
GROUP_POLICY_MENTION = N_("answers when mentioned or replied to")
GROUP_POLICY_ALL_VOICE = N_("answers every voice message")
SETTING_LABELS = {
    "model": N_("Model"),
    "system_prompt": N_("System prompt"),
    "temperature": N_("Temperature"),
    "top_p": N_("Top p"),
    "top_k": N_("Top k"),
    "seed": N_("Seed"),
    "max_tokens": N_("Max reply tokens"),
    "asr_language": N_("Transcription language"),
    "asr_enable_itn": N_("Number formatting (ITN)"),
    "group_policy": N_("In groups"),
    "language": N_("Bot language"),
    "transcript": N_("Transcripts"),
    "voice_reply": N_("Voice replies"),
    "voice": N_("Voice"),
}
# The ``language`` setting's values: ``auto`` (unset) follows each person's app language;
# the languages themselves are named in their own words, untranslated.
LANGUAGE_AUTO = N_("auto (each person's app language)")
LANGUAGE_NAMES = {"en": "English", "zh": "简体中文"}

# --- models, usage, forget, help ------------------------------------------------------
MODELS_HEADER = N_("Models you can choose:")
MODEL_CURRENT_MARK = N_(" (current)")
# Lifecycle marks in the model list: a trial model (free trial only, may stop working)
# and a retired one (kept in the list, never choosable) with the model to use instead.
MODEL_TRIAL_MARK = N_(" (trial)")
MODEL_RETIRED_MARK = N_(" (retired → {replacement})")
MODEL_RETIRED_MARK_BARE = N_(" (retired)")
# In /settings, for admins: the model the chat chose was retired and another answers.
SETTINGS_MODEL_RETIRED = N_(
    "DashScope has retired {model}, the model this chat chose, so {replacement} answers "
    "instead. Choose another with {cmd:model}."
)
SETTINGS_MODEL_UNAVAILABLE = N_(
    "On {date} DashScope said {model} doesn't exist or isn't available to this bot's key. "
    "Choose another with {cmd:model}."
)
MODEL_CAPABILITY_VOICE_CHAT = N_("voice chat")
MODEL_CAPABILITY_ANALYSIS = N_("audio + instructions")
MODEL_CAPABILITY_ASR = N_("transcription")
MODEL_CAPABILITY_CAPTION = N_("audio description (English)")
MODEL_CAPABILITY_HISTORY = N_("remembers the conversation")
MODEL_CHANGED = N_("Model set to {model}.")
USAGE_EMPTY = N_("No usage recorded in this chat yet.")
USAGE_HEADER = N_("Usage in this chat:")
USAGE_LINE = N_(
    "{day} · {model}: {turns} turns, {audio} of audio, {input} in / {output} out tokens"
)
USAGE_TOTAL = N_(
    "Total: {turns} turns, {audio} of audio, {input} in / {output} out tokens ({audio_tokens} "
    "audio tokens)"
)
USAGE_SPOKEN = N_("Spoken replies: {spoken}")
USAGE_SPOKEN_TOKENS = N_("Spoken replies: {spoken} ({tokens} speech tokens)")
FORGET_DONE = N_(
    "Done. I deleted {conversations} conversations, {turns} messages and {clips} recordings of "
    "this chat."
)
FORGET_CONFIRM = N_("Delete this chat's stored conversations and audio? This can't be undone.")
FORGET_YES = N_("Yes, delete")
FORGET_NO = N_("Cancel")
FORGET_CANCELLED = N_("Nothing was deleted.")
MODEL_PICK_BUTTONS = N_("Admins can choose with the buttons below, or with {cmd:model} NAME.")
POLICY_BUTTON_MENTION = N_("In groups: only when mentioned or replied to")
POLICY_BUTTON_ALL_VOICE = N_("In groups: every voice message")
BUTTON_SELECTED_MARK = N_("✓ ")
SETTING_SAVED = N_("Saved.")
UNKNOWN_COMMAND = N_("I don't know “{command}”. Try `{cmd:help}`.")
NEW_CONVERSATION = N_("Starting a fresh conversation. I've forgotten what we talked about here.")
HELP_INTRO = N_(
    "Send me a voice message and I'll answer it. Add a caption (or reply to a voice message "
    "with a question) to ask something about the audio."
)
HELP_TEXT = N_("{intro}\nCommands:\n{commands}\nCurrent model: {model}.")
HELP_COMMANDS = (
    ("new", N_("start a fresh conversation")),
    ("model", N_("show or choose the model")),
    ("settings", N_("show or change this chat's settings")),
    ("usage", N_("what this chat has used")),
    ("forget", N_("delete this chat's conversations and audio")),
    ("admin", N_("a sign-in link to the admin console (admins)")),
    ("help", N_("this message")),
)

# --- the terminal: voicebot ask, voicebot conversations ------------------------------
# The last line on stderr after a reply: what to pass to continue the conversation.
CLI_CONTINUE = N_("continue with --conversation {conversation}")
CONVERSATION_ID_NOT_FOUND = N_(
    "There's no conversation {id}. A number is a conversation id: "
    "voicebot conversations lists them."
)
CONVERSATION_NAME_EMPTY = N_("A conversation name can't be empty.")
CONVERSATION_NAME_TOO_LONG = N_("That conversation name is too long: {limit} characters at most.")
CONVERSATION_NAME_INVALID = N_(
    "A conversation name starts with a letter or digit and holds only letters, digits, "
    "“.”, “_” and “-”."
)
CLI_NO_CONVERSATIONS = N_(
    "No conversations yet. Start one with: voicebot ask FILE --conversation NAME"
)
CLI_CONVERSATIONS_COLUMNS = (N_("ID"), N_("NAME"), N_("TURNS"), N_("LAST ACTIVITY"))
CLI_CONVERSATIONS_MORE = N_("… and {count} more, less recent (--limit 0 lists them all).")

# --- Slack ---------------------------------------------------------------------------
SLACK_STATUS_LISTENING = N_("is listening…")
SLACK_STATUS_THINKING = N_("is thinking…")
SLACK_FILE_LOGIN_PAGE = N_(
    "I couldn't download that file from Slack: it sent a sign-in page instead of the audio. "
    "The bot may be missing the files:read permission."
)
SLACK_FILE_DOWNLOAD_FAILED = N_("I couldn't download that file from Slack. Please try again.")
SLACK_FILE_GONE = N_("I can't open that file any more: it may have been deleted.")
SLACK_NO_CLIP = N_("That message has no audio clip or audio file for me to listen to.")
SLACK_MODAL_TITLE = N_("Ask about this audio")
SLACK_MODAL_SUBMIT = N_("Ask")
SLACK_MODAL_LABEL = N_("Your question")
SLACK_MODAL_PLACEHOLDER = N_("e.g. Summarise it, or: what language is spoken?")
SLACK_HELP_INTRO = N_(
    "Send me an audio clip or an audio file and I'll answer it. Write a question in the same "
    "message (or mention me in its thread) to ask something about the audio. In channels, "
    "mention me; in threads I take part in, just reply. On any message with audio, use "
    "the shortcut “Ask about this audio”."
)
SLACK_NEW_IN_CHANNEL = N_(
    "In channels, every thread is its own conversation: mention me in a new message to "
    "start a fresh one."
)
SLACK_FILE_FOREIGN_HOST = N_("I can't download that file: it isn't stored on Slack.")

# --- Telegram ------------------------------------------------------------------------
TELEGRAM_DOWNLOAD_FAILED = N_("I couldn't download that file from Telegram. Please send it again.")
TELEGRAM_GROUP_HELP = N_(
    "In groups, reply to my messages or mention @{username}: in a voice message's caption, "
    "or in a reply to any voice message to ask about it. Admins can make me answer every "
    "voice message with {cmd:settings}."
)
TELEGRAM_BUTTON_EXPIRED = N_("This button has expired. Please send the command again.")

# --- transcripts (the Transcript button, the chat setting ``transcript``) --------------
TRANSCRIPT_BUTTON = N_("Transcript")
TRANSCRIPT_HEADER = N_("Transcript ({language}):")
TRANSCRIPT_HEADER_NO_LANGUAGE = N_("Transcript:")
TRANSCRIPT_NO_SPEECH = N_("(I couldn't make out any words.)")
# The stored clips cover only the start of the recording (what the model was sent).
TRANSCRIPT_LEFT_OUT = N_("(This covers the first {sent} of {total}: the part I listened to.)")
# The callback answer while the transcript is being made (Telegram's toast).
TRANSCRIPT_WORKING = N_("Transcribing…")
TRANSCRIPT_IN_PROGRESS = N_("I'm already transcribing that recording.")
TRANSCRIPT_TURN_GONE = N_(
    "I don't have that message any more: this chat's history was deleted with {cmd:forget}."
)
TRANSCRIPT_NO_AUDIO = N_("I no longer have the audio of that message, so I can't transcribe it.")
TRANSCRIPT_NOTHING = N_("There's no recording to transcribe for that reply.")
TRANSCRIPT_TOO_LONG = N_(
    "That recording is too long for me to transcribe ({limit} per part at most)."
)
TRANSCRIPT_FAILED = N_("I couldn't make the transcript. {reason}")
TRANSCRIPT_MODE_BUTTON = N_("a Transcript button under replies to voice")
TRANSCRIPT_MODE_ALWAYS = N_("posted with every reply to voice")
TRANSCRIPT_MODE_OFF = N_("off")

# --- spoken replies (bot.voice) ----------------------------------------------------------
VOICE_REPLY_MODE_AUTO = N_("auto (a voice message gets a voice reply)")
VOICE_REPLY_MODE_ALWAYS = N_("every reply")
VOICE_REPLY_MODE_OFF = N_("off")
VOICE_REPLY_COST = N_("seconds spoken show in the usage report")
VOICE_REPLY_NO_SPEECH = N_("{model} can't speak: replies stay text")
VOICE_REPLY_TTS = N_("read aloud by {tts}: characters show in the usage report")
VOICE_NONE = N_("none (the current model can't speak)")
VOICE_MODEL_CANNOT_SPEAK = N_("{model} can't speak, so it has no voices to choose from.")
# Read aloud in place of a code block.
VOICE_CODE_IN_TEXT = N_("(code in the text)")
VOICE_REPLY_CUT = N_("The voice note reads the first {spoken}; the rest is in the text.")
VOICE_NOTE_TITLE = N_("Spoken reply")
VOICE_REPLY_FAILED = N_("I couldn't send the voice note; the reply above is complete.")
VOICE_REPLY_NOT_MADE = N_("I couldn't make a voice note this time; the reply above is complete.")
USAGE_TTS = N_("Read aloud: {characters} characters ({model})")
# The languages qwen3-asr-flash detects, by the code it reports (others show the code).
TRANSCRIPT_LANGUAGES = {
    "ar": N_("Arabic"),
    "cs": N_("Czech"),
    "da": N_("Danish"),
    "de": N_("German"),
    "en": N_("English"),
    "es": N_("Spanish"),
    "fi": N_("Finnish"),
    "fil": N_("Filipino"),
    "fr": N_("French"),
    "hi": N_("Hindi"),
    "id": N_("Indonesian"),
    "is": N_("Icelandic"),
    "it": N_("Italian"),
    "ja": N_("Japanese"),
    "ko": N_("Korean"),
    "ms": N_("Malay"),
    "no": N_("Norwegian"),
    "pl": N_("Polish"),
    "pt": N_("Portuguese"),
    "ru": N_("Russian"),
    "sv": N_("Swedish"),
    "th": N_("Thai"),
    "tr": N_("Turkish"),
    "uk": N_("Ukrainian"),
    "vi": N_("Vietnamese"),
    "yue": N_("Cantonese"),
    "zh": N_("Chinese"),
}

# --- the browser voice playground (bot.web.playground): page chrome and its messages ------
PLAYGROUND_TITLE = N_("voicebot playground")
PLAYGROUND_INTRO = N_(
    "Press Record, speak, then press Stop, or send an audio file. The reply streams in here."
)
PLAYGROUND_RECORD = N_("Record")
PLAYGROUND_STOP = N_("Stop")
PLAYGROUND_PICK_FILE = N_("Send an audio file")
PLAYGROUND_NEW = N_("New conversation")
PLAYGROUND_MODEL = N_("Model")
PLAYGROUND_RETIRED = N_("{model} (retired)")
PLAYGROUND_YOU = N_("You")
PLAYGROUND_BOT = N_("Bot")
PLAYGROUND_RECORDING = N_("Recording… press Stop to send.")
PLAYGROUND_SENDING = N_("Sending…")
PLAYGROUND_WORKING = N_("Listening…")
PLAYGROUND_VOICE_MESSAGE = N_("Voice message")
PLAYGROUND_VOICE_REPLY = N_("Spoken reply")
PLAYGROUND_NO_MICROPHONE = N_(
    "This browser can't record here (no microphone, or permission refused). "
    "You can still send a file."
)
PLAYGROUND_NOT_AUDIO_TYPE = N_("That isn't an audio or video file. Please pick a recording.")
PLAYGROUND_SESSION_ENDED = N_("This page's session has ended. Reload the page to go on.")
PLAYGROUND_CONNECTION_LOST = N_("The connection to the bot was lost. Please try again.")
PLAYGROUND_PRIVACY = N_(
    "Recordings and replies are stored in the bot's database like any chat's; "
    "New conversation starts afresh."
)


# --- the admin console (#16) ---------------------------------------------------------------

CONSOLE_LINK = N_(
    "Your sign-in link to the admin console (valid for 10 minutes, once):\n{url}\n"
    "It shows settings, counts and usage of {scope}; never messages, transcripts or audio."
)
CONSOLE_SCOPE_ALL = N_("every chat")
CONSOLE_SCOPE_SOME = N_("the {count} chats you administer")
CONSOLE_OFF = N_("The admin console is off. The operator can turn it on with ADMIN_CONSOLE=true.")
CONSOLE_PRIVATE_ONLY = N_(
    "Sign-in links are sent in private only: send {cmd:admin} to me in a private chat."
)
CONSOLE_NOT_ADMIN = N_("Only chat admins and the bot's admins can open the admin console.")
