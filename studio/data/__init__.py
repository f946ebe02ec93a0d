"""Data for training: sources (digits, image folders, CSV), splits, scaling and batches."""
