"""Outgoing-request rules shared by the platform adapters (no platform SDK here)."""
