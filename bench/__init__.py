"""`make bench`: see bench/__main__.py (orchestration), bench/cases.py (competitors), bench/report.py."""
