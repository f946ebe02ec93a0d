"""The Qt-free training engine: fit with callbacks, monitors, diagnosis and runs."""
