"""The chaos engine: drills that prove the target fails closed and comes back (issue 5)."""
