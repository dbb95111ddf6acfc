"""Data sets and models: dataset sources, image folders, preprocessing, and the model zoo (builtin and user models)."""
