"""The admin console (#16): one-time sign-in links, signed sessions, and server-rendered
pages of chats, settings, usage charts and health. It shows counts, durations, statuses
and settings only: never message text, transcripts or audio."""
