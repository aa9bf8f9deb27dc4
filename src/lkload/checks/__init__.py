"""`lkload check`: the deployment checklist's verifiable lines, checked against a live server.

Kept light: `record` (the result rows) is read by the analysis without pulling in the checks.
"""
