"""Fuzzing harness for the .balerc reader: file surgery, mutators, seeds, runner, campaign.

Run the long campaign with ``python -m tests.fuzz.campaign --help`` from the repository
root; ``tests/test_fuzz.py`` runs a short deterministic one in CI.
"""
