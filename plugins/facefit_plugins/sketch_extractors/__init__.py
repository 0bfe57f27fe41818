"""Built-in sketch extractors (``simple-sketch``, ``hed``)."""
