"""The self-contained HTML report of a run (plots, tables), read from the results store."""
