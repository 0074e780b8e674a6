"""Datadog monitors, SLOs and dashboards as code; drill results into Datadog and Sentry."""
