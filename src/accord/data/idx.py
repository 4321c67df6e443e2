"""Read IDX files (the MNIST family's format) with numpy, for offline image datasets.

Fashion-MNIST ships in Debian as ``dataset-fashion-mnist``: four gzip-compressed IDX
files under ``/usr/share/datasets/fashion-mnist/``. accord reads them where the
package put them; nothing is downloaded. IDX is a four-byte magic (two zero bytes,
a type code, the number of dimensions), one big-endian ``uint32`` per dimension,
then the values in C order. The format is small enough that a reader is a few
lines of numpy; the libraries that read it (``idx2numpy``, torchvision's MNIST
classes) would add a dependency, or torch, for those lines. Only unsigned bytes
(type ``0x08``, what the MNIST family uses) are accepted: every file is checked for
its magic, its dimensions and its exact length before a value is used, so a
truncated or foreign file is an error that names it, never a misread image.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from accord.errors import DatasetError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_PACKAGE",
    "fashion_mnist_arrays",
    "fashion_mnist_installed",
    "read_idx",
]

logger = logging.getLogger(__name__)

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
"""The Debian package that holds Fashion-MNIST's files."""
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where ``dataset-fashion-mnist`` installs them."""
_UBYTE = 0x08
#: No IDX file of this family is larger than this once decompressed (the 60,000
#: training images are 47 MB): a bound on what a corrupt header can make us read.
_MAX_BYTES = 1 << 28


def read_idx(path: Path, *, ndim: int) -> npt.NDArray[np.uint8]:
    """The ``uint8`` array of a (gzip-compressed) IDX file with ``ndim`` dimensions.

    Raises :class:`DatasetError` naming the file if it is missing, unreadable, not
    IDX, not unsigned bytes, not of ``ndim`` dimensions, or of another length than
    its header says.
    """
    import numpy as np

    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"cannot read IDX file {path}: {exc}") from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:2] != b"\0\0":
        raise DatasetError(f"{path} is not an IDX file (its first bytes are wrong)")
    if raw[2] != _UBYTE or raw[3] != ndim:
        raise DatasetError(
            f"{path}: IDX type 0x{raw[2]:02x} with {raw[3]} dimensions; expected "
            f"unsigned bytes (0x08) with {ndim}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise DatasetError(
            f"{path}: {len(raw) - header:,} bytes of values where its header "
            f"{shape} needs {expected - header:,}; the file is truncated or corrupt, "
            f"reinstall {FASHION_MNIST_PACKAGE}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _t10k(folder: Path) -> tuple[Path, Path]:
    return folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"


def fashion_mnist_installed(folder: Path = FASHION_MNIST_DIR) -> bool:
    """Whether the files :func:`fashion_mnist_arrays` reads are there."""
    return all(p.is_file() for p in _t10k(folder))


def fashion_mnist_arrays(
    folder: Path = FASHION_MNIST_DIR,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The package's 10,000 ``t10k`` images (n x 28 x 28) and their labels (0-9).

    The ``t10k`` file holds 1,000 images of each class; accord uses it alone (not
    the 60,000 training images) so that a simulation loads in about a second and a
    federation of 10 sites trains in seconds a round on a laptop's CPU. accord
    draws its own test set from these rows, as from any table.
    """
    images_path, labels_path = _t10k(folder)
    if not fashion_mnist_installed(folder):
        raise DatasetError(
            f"fashion_mnist needs the Debian package {FASHION_MNIST_PACKAGE} "
            f"({images_path} not found): install it with "
            f"'sudo apt-get install {FASHION_MNIST_PACKAGE}', or choose another "
            "dataset"
        )
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{folder}: {images.shape} images for {labels.shape[0]} labels; expected "
            f"n x 28 x 28 images and n labels, reinstall {FASHION_MNIST_PACKAGE}"
        )
    if labels.size and int(labels.max()) > 9:
        raise DatasetError(
            f"{labels_path}: label {int(labels.max())} outside 0-9; reinstall "
            f"{FASHION_MNIST_PACKAGE}"
        )
    logger.debug("read %d Fashion-MNIST images from %s", labels.size, folder)
    return images, labels
