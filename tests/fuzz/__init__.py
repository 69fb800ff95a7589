"""Scenario fuzzing: seeded mutants of the shipped scenarios, and what each one must give.

``mutate`` makes the mutants; ``check`` decides, for each, whether pydiasca kept
its promise (one line and exit code 2, a completed run, or a clean model
failure). ``tests/test_fuzz.py`` runs a few hundred in CI; ``python -m
tests.fuzz --mutants 2000 --seed 1`` runs more and saves every defect found.
"""
