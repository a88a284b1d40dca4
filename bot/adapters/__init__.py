"""Platform adapters: the only place that imports aiogram and slack_* (translation only)."""
