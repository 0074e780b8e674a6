"""Notifications of a run's result (Slack incoming webhooks)."""
