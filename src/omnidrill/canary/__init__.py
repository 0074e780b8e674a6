"""Canary verdicts: a canary judged against its baseline, metric by metric (README "Canary
verdicts", this package's README)."""
