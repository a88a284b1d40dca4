"""DashScope client for the Qwen-Audio models (native SSE and OpenAI-compatible protocols)."""
