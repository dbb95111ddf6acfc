"""Small repository tools, run as `python3 -m edgeq.tools.<name>`."""
