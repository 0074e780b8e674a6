"""`python -m omnihub_ref`: the reference stack's own command (what `omnidrill up` runs)."""

from omnihub_ref.cli import main

main()
