"""Load scenarios and rate-limit checks, run by Locust in a child process and judged here."""
