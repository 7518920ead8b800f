"""Every size limit on what the project reads, in one place (docs/security.md says which test proves each).

The library, the command line and the web editor read images, masks, points, archives, JSON files
and checkpoints from files and uploads that nobody vouches for. Each is checked against these limits
before anything is allocated for it: an image's size comes from its header before it is decoded
(`draggan.image_io`), an array's shape from its .npy header before the data is decompressed, an
archive's member count and sizes from its directory before a member is read (`draggan.archives`), a
JSON text's size, containers, values and depth from the text before it is parsed (`draggan.files`), a
pickle's values, memo and nesting from its opcodes before it is unpickled, and a generator's settings
and tensor sizes from the checkpoint's header before the network is built or a tensor read
(`draggan.checkpoint`). Reading one input under these limits allocates at most about the limit that
applies to it (1 GB for the largest, an archive's members; a few hundred MB for a JSON text or a pickle's
values).
"""

from __future__ import annotations

from collections.abc import Sized


class LimitError(ValueError):
    """An input above one of the limits of `draggan.limits`; the message names the input and the limit."""


# Images: photos to invert, the editor's uploads and masks, masks of the command line.
MAX_IMAGE_PIXELS = 64_000_000  # width x height decoded from any image (JPEGs after a reduced-scale decode)
PHOTO_PIXELS = 50_000_000  # a photo to invert above this is reduced while read (inversion.images.load_image)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # decoders that may read an untrusted file

# Points of one edit (command line, editor, saved sessions).
MAX_POINTS = 32  # handle/target pairs; the paper's edits use 1-5

# Files and archives.
MAX_UPLOAD_BYTES = 20 << 20  # a photo or mask posted to the editor (default of app.max_upload_mb)
MAX_ARCHIVE_MEMBERS = 30_000  # members of a zip or npz archive (a saved session keeps 5 arrays per step)
MAX_ARCHIVE_BYTES = 1 << 30  # uncompressed bytes read from one archive, all members together
MAX_JSON_BYTES = 16 << 20  # a JSON file (session.json) read whole (5,000 steps of 32 handles: 12.4 MB)
MAX_JSON_CONTAINERS = 200_000  # lists and objects of one JSON text (5,000 steps of 32 handles: 175,000)
MAX_JSON_VALUES = 1_000_000  # values of one JSON text (5,000 steps of 32 handles: about 550,000)
MAX_JSON_DEPTH = 32  # nesting of one JSON text (session.json: 5)
MAX_DOWNLOAD_BYTES = 2 << 30  # a checkpoint download without a registered size (the largest official one: 382 MB)
MAX_DRAG_STEPS = 5_000  # DragConfig.max_steps and the steps of a saved session (each keeps a snapshot)

# Generators described by a checkpoint (its init_kwargs), checked before the network is built.
MAX_RESOLUTION = 2048  # img_resolution (the official models go up to 1024)
MAX_LATENT_DIM = 8192  # z_dim, c_dim, w_dim and the mapping network's widths (official: 512)
MAX_CHANNELS = 4096  # channel_max (official: 512)
MAX_CHANNEL_BASE = 1 << 22  # channel_base (official: 16384 or 32768)
MAX_MAPPING_LAYERS = 32  # mapping_kwargs.num_layers (official: 8; 2 for small models)
MAX_KERNEL_SIZE = 9  # kernel_size of the synthesis layers (official: 3)
MAX_GENERATOR_PARAMETERS = 100_000_000  # parameters and buffers (official 1024-px generator: 33 M)
MAX_FEATURE_ELEMENTS = 1 << 26  # channels x height x width of one feature map (official 1024 px: 2^25)
MAX_SAFETENSORS_HEADER = 1 << 20  # bytes of a safetensors JSON header (an official 1024-px generator: ~50 KB)
MAX_KWARGS_ITEMS = 10_000  # values in a checkpoint's init_kwargs, all levels together
MAX_KWARGS_DEPTH = 16  # nesting of a checkpoint's init_kwargs and of its modules
MAX_PICKLE_OBJECTS = 250_000  # values a network pickle builds, all kinds together (an official snapshot: ~25k)
MAX_PICKLE_DEPTH = 100  # nesting of the values of a network pickle (an official snapshot: ~40)


def check_count(items: Sized | int, limit: int, what: str) -> None:
    """Raise LimitError if `items` (or a count) exceeds `limit`."""
    n = items if isinstance(items, int) else len(items)
    if n > limit:
        raise LimitError(f"{what}: {n} given, at most {limit} are accepted")


def check_points(num_points: int, what: str = "points") -> None:
    """At most MAX_POINTS handle/target pairs in one edit."""
    check_count(num_points, MAX_POINTS, f"{what} (handle/target pairs)")
