"""Notification gateway simulator: SMS and voice messages that can fail or be delayed."""
