"""The Call Analyzer's data: project setup, tags, their evaluation, scorecards and analysed calls.

`evaluation` and `scorecard` are pure functions (no I/O) so the activities, the API and the tests
compute the same results from the same inputs.
"""
