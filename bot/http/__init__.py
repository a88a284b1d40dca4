"""The bot's own HTTP server: health, readiness, metrics and platform webhooks."""
