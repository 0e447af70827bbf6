"""The versioned data set that scheduled imports grow (design: docs/decisions/0001).

Layout under the store root:

    objects/<sha[:2]>/<sha><ext>   one copy of every accepted image, named by its content
    versions/<id>.csv              one immutable manifest per version (`VERSION_COLUMNS`)
    versions/HEAD                  the id of the current version
    quarantine/<time>-<batch>/     rejected batches (the location is configurable)
    .lock                          flock'ed by the one process allowed to change anything

A version id is the `glasses.data.images.fingerprint` of its images and labels, so scanning
`manifest(id)` gives back fingerprint `id`. Nothing is visible before `versions/HEAD` is replaced,
atomically and last; accepted images are copied, never moved.
"""

from glasses.store.errors import DatasetError, DatasetLockedError
from glasses.store.incoming import Batch
from glasses.store.versions import VERSION_COLUMNS, DatasetStore

__all__ = ["VERSION_COLUMNS", "Batch", "DatasetError", "DatasetLockedError", "DatasetStore"]
