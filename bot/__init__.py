"""voicebot: talk to Alibaba's Qwen-Audio models by voice from Telegram and Slack."""

__version__ = "0.1.0"
