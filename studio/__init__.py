"""Studio's Qt-free core: the project document, layer catalog, shape inference,
model builder, export and (later) the training engine.

Nothing in this package imports Qt; the command line, the tests and headless
training jobs run on it alone.
"""

__version__ = "0.1.0"
