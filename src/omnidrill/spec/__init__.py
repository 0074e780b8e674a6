"""Loading, validating and exporting the schemas of every YAML kind."""
