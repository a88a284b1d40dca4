"""Every text a user sees, in one place so it can be translated.

Keep them short, specific and friendly. Placeholders use ``str.format`` names.
Adapters may add platform-specific texts here too (grouped by a comment), never inline.
"""

from __future__ import annotations

# --- generic -------------------------------------------------------------------------
ERROR_GENERIC = "Something went wrong on my side. Please try again in a moment."

# --- access and settings -------------------------------------------------------------
ACCESS_DENIED = "Sorry, this bot is private and not open to you here."
NOT_ADMIN = "Only this chat's admins can change that."
USER_RATE_LIMITED = "You're sending messages faster than I can answer. Please slow down a little."
USER_RATE_LIMITED_WAIT = "You're sending messages faster than I can answer. Try again in {seconds} s."
UNSUPPORTED_REQUEST = "The current model can't do that."
UNKNOWN_MODEL = "I don't know that model."
UNKNOWN_MODEL_NAMED = "I don't know the model “{model}”. Choose one of: {allowed}."
INVALID_SETTING = "That value isn't valid for this setting."
CONVERSATION_NOT_FOUND = "I can't find that conversation."

# --- audio ---------------------------------------------------------------------------
AUDIO_TOO_LARGE = "That file is too large for me (the limit is {limit_mb} MB)."
AUDIO_TOO_LONG = "That recording is too long for me (the limit is {minutes} minutes)."
AUDIO_EMPTY = "That file is empty: there's no audio in it."
AUDIO_SILENT = "I couldn't hear anything in that recording."
AUDIO_UNREADABLE = "I couldn't read that audio. The file may be damaged or incomplete."
NOT_AUDIO = "That doesn't look like an audio or video file."
NO_AUDIO_TRACK = "That video has no sound for me to listen to."
AUDIO_TIMEOUT = "That recording took too long to process. Please try a shorter one."
AUDIO_LEFT_OUT = "I listened to the first {sent} of {total}."
AUDIO_LEFT_OUT_AT_LEAST = "I listened to the first {sent} of more than {total}."

# --- model service -------------------------------------------------------------------
MODEL_ERROR = "The model couldn't answer this time. Please try again."
MODEL_AUTH = "The bot's DashScope API key was refused. Please tell the bot's operator."
MODEL_QUOTA = "The model's quota is used up or access was denied. Please tell the bot's operator."
MODEL_NOT_FOUND = "That model isn't available right now. An admin can pick another with /model."
MODEL_BAD_REQUEST = "The model couldn't accept this request."
MODEL_PAYLOAD_TOO_LARGE = "That recording is too large to send to the model (10 MB limit)."
CONTENT_FILTERED = "The model declined to answer because the content was flagged by its safety filter."
MODEL_RATE_LIMITED = "The model is busy right now. Please try again in a minute."
MODEL_SERVER_ERROR = "The model service had a problem. Please try again in a moment."
MODEL_TIMEOUT = "The model took too long to answer. Please try again."
MODEL_CONNECTION_LOST = "The connection to the model broke off. Please try again."
