"""Data-set rules: the development/training/calibration splits, attribute
descriptions, and which photos show the same person.
"""
