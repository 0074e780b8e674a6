"""A local Datadog- and Sentry-compatible intake: what a target sends, kept for detection.

It accepts what datadog-api-client (`MetricsApi.submit_metrics`, distribution points), the
DogStatsD protocol and sentry-sdk send, unchanged, and lets the harness read it back
(`omnidrill.observe.intake.client`). It is part of the harness, never of the target.
"""
