"""Reliability suite: bad inputs, crashes, concurrent writers (issue 10)."""
