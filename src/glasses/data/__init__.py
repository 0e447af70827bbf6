"""Loading, scanning and splitting face images.

Its modules, imported where used (so that reading a CSV does not load torch): `sources` (a
`data` argument → one labelled table), `images` (read and hash every image once), `splits`
(person-aware test split and folds), `reference` (the run's image set as a small reference),
`synthetic`, `faces` and `rendering` (the built-in synthetic faces).
"""

__all__ = ["faces", "images", "reference", "rendering", "sources", "splits", "synthetic"]
