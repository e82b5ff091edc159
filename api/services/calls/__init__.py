"""Services of the Call Analyzer's API: project checks, tag sets, score breakdowns, analytics."""
