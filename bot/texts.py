"""Every text a user sees, in one place so it can be translated.

Keep them short, specific and friendly. Placeholders use ``str.format`` names. A text
that names a chat command writes ``{cmd:NAME}``: :class:`bot.commands.CommandStyle` spells
it for the platform (``/model`` on Telegram, ``/voicebot model`` on Slack); an error's
``user_message`` keeps the field, and :meth:`bot.errors.BotError.shown` spells it.
Adapters may add platform-specific texts here too (grouped by a comment), never inline.
"""

from __future__ import annotations

# --- generic -------------------------------------------------------------------------
ERROR_GENERIC = "Something went wrong on my side. Please try again in a moment."

# --- access and settings -------------------------------------------------------------
ACCESS_DENIED = "Sorry, this bot is private and not open to you here."
NOT_ADMIN = "Only this chat's admins can change that."
USER_RATE_LIMITED = "You're sending messages faster than I can answer. Please slow down a little."
USER_RATE_LIMITED_WAIT = (
    "You're sending messages faster than I can answer. Try again in {seconds} s."
)
UNSUPPORTED_REQUEST = "The current model can't do that."
UNKNOWN_MODEL = "I don't know that model."
UNKNOWN_MODEL_NAMED = "I don't know the model “{model}”. Choose one of: {allowed}."
INVALID_SETTING = "That value isn't valid for this setting."
CONVERSATION_NOT_FOUND = "I can't find that conversation."

# --- audio ---------------------------------------------------------------------------
AUDIO_TOO_LARGE = "That file is too large for me (the limit is {limit_mb} MB)."
AUDIO_TOO_SHORT = (
    "That voice note was too short for me to hear anything — hold the button a bit longer."
)
AUDIO_EMPTY = "That file is empty: there's no audio in it."
AUDIO_SILENT = "I couldn't hear anything in that recording."
AUDIO_UNREADABLE = "I couldn't read that audio. The file may be damaged or incomplete."
NOT_AUDIO = "That doesn't look like an audio or video file."
NO_AUDIO_TRACK = "That video has no sound for me to listen to."
AUDIO_TIMEOUT = "That recording took too long to process. Please try a shorter one."
AUDIO_LEFT_OUT = "I listened to the first {sent} of {total}."
AUDIO_LEFT_OUT_AT_LEAST = "I listened to the first {sent} of more than {total}."
# A file holding more or less audio than its header says; the _NTH forms name one of
# several files sent together ({number} counts from 1).
AUDIO_CUT_OFF = "The file seems cut off after {heard}."
AUDIO_CUT_OFF_NTH = "File {number} seems cut off after {heard}."
AUDIO_UNREAD_TAIL = (
    "I could only read the first {heard} of the file: its header says the audio ends there, "
    "but about {rest} more follows."
)
AUDIO_UNREAD_TAIL_NTH = (
    "I could only read the first {heard} of file {number}: its header says the audio ends "
    "there, but about {rest} more follows."
)
AUDIO_LONGER_THAN_HEADER = "The file's header says it lasts {declared}, but I heard {heard}."
AUDIO_LONGER_THAN_HEADER_NTH = (
    "File {number}'s header says it lasts {declared}, but I heard {heard}."
)
FILE_FOREIGN_HOST = "I can't download that file: it isn't stored where I expected."

# --- model service -------------------------------------------------------------------
MODEL_ERROR = "The model couldn't answer this time. Please try again."
MODEL_AUTH = "The bot's DashScope API key was refused. Please tell the bot's operator."
MODEL_QUOTA = "The model's quota is used up or access was denied. Please tell the bot's operator."
# Error texts name commands as {cmd:NAME}; BotError.shown(style) spells them per platform.
MODEL_NOT_FOUND = (
    "That model isn't available right now. An admin can pick another with {cmd:model}."
)
MODEL_BAD_REQUEST = "The model couldn't accept this request."
MODEL_PAYLOAD_TOO_LARGE = "That recording is too large to send to the model (10 MB limit)."
CONTENT_FILTERED = (
    "The model declined to answer because the content was flagged by its safety filter."
)
MODEL_RATE_LIMITED = "The model is busy right now. Please try again in a minute."
MODEL_SERVER_ERROR = "The model service had a problem. Please try again in a moment."
MODEL_TIMEOUT = "The model took too long to answer. Please try again."
MODEL_CONNECTION_LOST = "The connection to the model broke off. Please try again."

# --- conversation engine -------------------------------------------------------------
# Sent to the model (not shown): the instruction for audio alone on models without voice chat.
VOICE_CHAT_INSTRUCTION = (
    "Listen to this voice message and reply to what the speaker says, in the language they speak."
)
TEXT_TOO_LONG = (
    "Your message and this chat's system prompt are too long for the model. Please shorten them."
)
NO_ROOM_FOR_AUDIO = (
    "This chat's system prompt leaves no room for audio with this model. "
    "An admin can shorten it with {cmd:settings}."
)
NOTHING_TO_ANSWER = "Send me a voice message, or ask me something about one."
NEEDS_AUDIO_ASR = (
    "{model} only transcribes audio. Send a voice message, or choose another model with "
    "{{cmd:model}}."
)
NEEDS_AUDIO_CAPTION = (
    "{model} only describes audio. Send a recording, or choose another model with {{cmd:model}}."
)
INSTRUCTION_IGNORED = "{model} doesn't follow instructions, so I didn't use your text."
ASR_DETECTED = "Detected {details}."
ASR_LANGUAGE = "language: {language}"
ASR_EMOTION = "emotion: {emotion}"
REPLY_STOPPED = "(stopped)"
REPLY_CUT_AT_LIMIT = "(The reply reached its length limit.)"
EMPTY_REPLY = "The model sent back an empty reply. Please try again."
SHUTTING_DOWN = "I'm restarting right now. Please send that again in a minute."
TURN_ABANDONED = (
    "Sorry, I couldn't answer that message: I tried three times and it failed each time. "
    "Please try again, perhaps with a shorter recording."
)
REPLY_RESTARTED = "I was interrupted while answering, so this answer was restarted."
DELIVERED_LATE = "Here is my answer to your earlier message, which I couldn't deliver then:"

# --- thread context (bot.engine.seeding) ----------------------------------------------
# Sent to the model (not shown): a thread's parent message nobody answered, after its audio.
THREAD_PARENT_AUDIO = "(The audio above is the message this thread replies to.)"
THREAD_PARENT_AUDIO_TEXT = (
    "(The audio above is the message this thread replies to; it came with this text: {text})"
)
THREAD_PARENT_TEXT = "(This thread replies to a message that says: {text})"
# Shown under the reply: the parent's audio was not (all) heard.
THREAD_PARENT_AUDIO_FAILED = (
    "I couldn't use the audio of the message this thread replies to, so I answered without it."
)
THREAD_PARENT_NO_ROOM = (
    "The audio of the message this thread replies to didn't fit beside yours, so I left it out."
)
THREAD_PARENT_LEFT_OUT = (
    "Of the message this thread replies to, I listened to the first {sent} of {total}."
)

# --- settings ------------------------------------------------------------------------
UNKNOWN_SETTING = "I don't know the setting “{key}”. Settings: {keys}."
SETTING_MUST_BE = "“{key}” must be {rule}."
SETTING_RULE_NUMBER = "a number from {low} to {high}"
SETTING_RULE_INTEGER = "a whole number from {low} to {high}"
SETTING_RULE_BOOL = "on or off"
SETTING_RULE_CHOICE = "one of: {choices}"
SETTING_RULE_TEXT = "at most {limit} characters"
SETTING_RULE_LANGUAGE = "a language code such as en, zh or de"
SETTINGS_HEADER = "Settings for this chat:"
SETTINGS_DEFAULT = "default"
SETTINGS_ON = "on"
SETTINGS_OFF = "off"
SETTINGS_HOW_TO_CHANGE = (
    "Change one with “settings KEY VALUE” (VALUE “default” resets it). Admins only in groups."
)
GROUP_POLICY_MENTION = "answers when mentioned or replied to"
GROUP_POLICY_ALL_VOICE = "answers every voice message"
SETTING_LABELS = {
    "model": "Model",
    "system_prompt": "System prompt",
    "temperature": "Temperature",
    "top_p": "Top p",
    "top_k": "Top k",
    "seed": "Seed",
    "max_tokens": "Max reply tokens",
    "asr_language": "Transcription language",
    "asr_enable_itn": "Number formatting (ITN)",
    "group_policy": "In groups",
}

# --- models, usage, forget, help ------------------------------------------------------
MODELS_HEADER = "Models you can choose:"
MODEL_CURRENT_MARK = " (current)"
MODEL_CAPABILITY_VOICE_CHAT = "voice chat"
MODEL_CAPABILITY_ANALYSIS = "audio + instructions"
MODEL_CAPABILITY_ASR = "transcription"
MODEL_CAPABILITY_CAPTION = "audio description (English)"
MODEL_CAPABILITY_HISTORY = "remembers the conversation"
MODEL_CHANGED = "Model set to {model}."
USAGE_EMPTY = "No usage recorded in this chat yet."
USAGE_HEADER = "Usage in this chat:"
USAGE_LINE = "{day} · {model}: {turns} turns, {audio} of audio, {input} in / {output} out tokens"
USAGE_TOTAL = (
    "Total: {turns} turns, {audio} of audio, {input} in / {output} out tokens ({audio_tokens} "
    "audio tokens)"
)
FORGET_DONE = (
    "Done. I deleted {conversations} conversations, {turns} messages and {clips} recordings of "
    "this chat."
)
FORGET_CONFIRM = "Delete this chat's stored conversations and audio? This can't be undone."
FORGET_YES = "Yes, delete"
FORGET_NO = "Cancel"
FORGET_CANCELLED = "Nothing was deleted."
MODEL_PICK_BUTTONS = "Admins can choose with the buttons below, or with {cmd:model} NAME."
POLICY_BUTTON_MENTION = "In groups: only when mentioned or replied to"
POLICY_BUTTON_ALL_VOICE = "In groups: every voice message"
BUTTON_SELECTED_MARK = "✓ "
SETTING_SAVED = "Saved."
UNKNOWN_COMMAND = "I don't know “{command}”. Try `{cmd:help}`."
NEW_CONVERSATION = "Starting a fresh conversation. I've forgotten what we talked about here."
HELP_INTRO = (
    "Send me a voice message and I'll answer it. Add a caption (or reply to a voice message "
    "with a question) to ask something about the audio."
)
HELP_TEXT = "{intro}\nCommands:\n{commands}\nCurrent model: {model}."
HELP_COMMANDS = (
    ("new", "start a fresh conversation"),
    ("model", "show or choose the model"),
    ("settings", "show or change this chat's settings"),
    ("usage", "what this chat has used"),
    ("forget", "delete this chat's conversations and audio"),
    ("help", "this message"),
)

# --- the terminal: voicebot ask, voicebot conversations ------------------------------
# The last line on stderr after a reply: what to pass to continue the conversation.
CLI_CONTINUE = "continue with --conversation {conversation}"
CONVERSATION_ID_NOT_FOUND = (
    "There's no conversation {id}. A number is a conversation id: "
    "voicebot conversations lists them."
)
CONVERSATION_NAME_EMPTY = "A conversation name can't be empty."
CONVERSATION_NAME_TOO_LONG = "That conversation name is too long: {limit} characters at most."
CONVERSATION_NAME_INVALID = (
    "A conversation name starts with a letter or digit and holds only letters, digits, "
    "“.”, “_” and “-”."
)
CLI_NO_CONVERSATIONS = "No conversations yet. Start one with: voicebot ask FILE --conversation NAME"
CLI_CONVERSATIONS_COLUMNS = ("ID", "NAME", "TURNS", "LAST ACTIVITY")
CLI_CONVERSATIONS_MORE = "… and {count} more, less recent (--limit 0 lists them all)."

# --- Slack ---------------------------------------------------------------------------
SLACK_STATUS_LISTENING = "is listening…"
SLACK_STATUS_THINKING = "is thinking…"
SLACK_FILE_LOGIN_PAGE = (
    "I couldn't download that file from Slack: it sent a sign-in page instead of the audio. "
    "The bot may be missing the files:read permission."
)
SLACK_FILE_DOWNLOAD_FAILED = "I couldn't download that file from Slack. Please try again."
SLACK_FILE_GONE = "I can't open that file any more: it may have been deleted."
SLACK_NO_CLIP = "That message has no audio clip or audio file for me to listen to."
SLACK_MODAL_TITLE = "Ask about this audio"
SLACK_MODAL_SUBMIT = "Ask"
SLACK_MODAL_LABEL = "Your question"
SLACK_MODAL_PLACEHOLDER = "e.g. Summarise it, or: what language is spoken?"
SLACK_HELP_INTRO = (
    "Send me an audio clip or an audio file and I'll answer it. Write a question in the same "
    "message (or mention me in its thread) to ask something about the audio. In channels, "
    "mention me; in threads I take part in, just reply. On any message with audio, use "
    "the shortcut “Ask about this audio”."
)
SLACK_NEW_IN_CHANNEL = (
    "In channels, every thread is its own conversation: mention me in a new message to "
    "start a fresh one."
)
SLACK_FILE_FOREIGN_HOST = "I can't download that file: it isn't stored on Slack."

# --- Telegram ------------------------------------------------------------------------
TELEGRAM_DOWNLOAD_FAILED = "I couldn't download that file from Telegram. Please send it again."
TELEGRAM_GROUP_HELP = (
    "In groups, reply to my messages or mention @{username}: in a voice message's caption, "
    "or in a reply to any voice message to ask about it. Admins can make me answer every "
    "voice message with {cmd:settings}."
)
TELEGRAM_BUTTON_EXPIRED = "This button has expired. Please send the command again."

# --- transcripts (the Transcript button, the chat setting ``transcript``) --------------
TRANSCRIPT_BUTTON = "Transcript"
TRANSCRIPT_HEADER = "Transcript ({language}):"
TRANSCRIPT_HEADER_NO_LANGUAGE = "Transcript:"
TRANSCRIPT_NO_SPEECH = "(I couldn't make out any words.)"
# The stored clips cover only the start of the recording (what the model was sent).
TRANSCRIPT_LEFT_OUT = "(This covers the first {sent} of {total}: the part I listened to.)"
# The callback answer while the transcript is being made (Telegram's toast).
TRANSCRIPT_WORKING = "Transcribing…"
TRANSCRIPT_IN_PROGRESS = "I'm already transcribing that recording."
TRANSCRIPT_TURN_GONE = (
    "I don't have that message any more: this chat's history was deleted with {cmd:forget}."
)
TRANSCRIPT_NO_AUDIO = "I no longer have the audio of that message, so I can't transcribe it."
TRANSCRIPT_NOTHING = "There's no recording to transcribe for that reply."
TRANSCRIPT_TOO_LONG = "That recording is too long for me to transcribe ({limit} per part at most)."
TRANSCRIPT_FAILED = "I couldn't make the transcript. {reason}"
TRANSCRIPT_SETTING_LABEL = "Transcripts"
TRANSCRIPT_MODE_BUTTON = "a Transcript button under replies to voice"
TRANSCRIPT_MODE_ALWAYS = "posted with every reply to voice"
TRANSCRIPT_MODE_OFF = "off"
# The languages qwen3-asr-flash detects, by the code it reports (others show the code).
TRANSCRIPT_LANGUAGES = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fil": "Filipino",
    "fr": "French",
    "hi": "Hindi",
    "id": "Indonesian",
    "is": "Icelandic",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "ms": "Malay",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "yue": "Cantonese",
    "zh": "Chinese",
}
