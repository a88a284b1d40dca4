"""The platform-neutral conversation engine that both chat adapters use."""
