"""Online evaluation maths: arm assignment, per-arm statistics, interleaving and drift.

Pure functions over ids, counts and arrays: nothing here reads the store or a running
process, so the API, the CLI, the serving paths and the jobs that wire experiments in all
get the same answers from the same inputs (and the simulation tests check those answers).

- :mod:`.assignment`: which arm a user sees (a salted SHA-256 of the user id, stateless).
- :mod:`.stats`: per-arm estimates on users, the difference with a Welch interval, the
  sample-ratio-mismatch check, an always-valid (mixture SPRT) interval, a group-sequential
  test for experiments with a planned size, sample sizes.
- :mod:`.interleaving`: team-draft interleaving of two rankings and its sign test.
- :mod:`.drift`: population stability index per feature, catalogue coverage of served lists.
- :mod:`.simulation`: synthetic users and a position-biased click model for the tests and
  ``benchmarks/experiments/run.py``.
"""
