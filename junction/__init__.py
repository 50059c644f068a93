"""The product's entry: the ``junction`` CLI and the ``junction up`` supervisor."""

__all__: list[str] = []
