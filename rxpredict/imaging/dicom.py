"""DICOM radiographs as grayscale arrays in [0, 1], with the file's own display rules honoured.

A film is shown as its modality and VOI transforms say: stored values go
through the modality LUT (rescale slope and intercept), then the VOI LUT or
window centre and width when the file has one, else a min-max stretch of the
whole image. MONOCHROME1 films (low values bright) are inverted, so bone is
bright as in MONOCHROME2 and as in the JPEG/PNG films. Colour, multi-frame,
undecodable (compressed without a decoder), empty, truncated and non-DICOM
files raise :class:`ImagingDataError` naming the file and the reason.

Example
-------
>>> from rxpredict.imaging.dicom import read_dicom
>>> read_dicom("P1-LH.dcm").shape                   # doctest: +SKIP
(2048, 1660)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

from rxpredict.exceptions import ImagingDataError

GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
PREAMBLE = 128  # bytes before the "DICM" prefix of a DICOM file


def is_dicom(path: str | Path) -> bool:
    """Whether the file is named ``.dcm`` or carries the ``DICM`` prefix after the 128-byte preamble."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as f:
            f.seek(PREAMBLE)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def read_dicom(path: str | Path) -> np.ndarray:
    """A DICOM radiograph as a grayscale float32 array in [0, 1] (rows, columns), bone bright.

    Raises :class:`ImagingDataError` naming the file when it is missing, empty,
    not DICOM, truncated, without pixel data, colour, multi-frame, or
    compressed in a way no installed decoder reads.
    """
    path = Path(path)
    ds = _dataset(path)
    _check_grayscale_frame(path, ds)
    stored = _pixels(path, ds)
    try:
        values = _display_values(apply_modality_lut(stored, ds), ds)
    except (ValueError, NotImplementedError, AttributeError, IndexError) as e:  # a malformed LUT or window
        raise ImagingDataError([f"{path}: cannot apply its modality or VOI transform ({e})"]) from e
    if ds.PhotometricInterpretation == "MONOCHROME1":
        values = 1.0 - values
    return values.astype(np.float32)


def _dataset(path: Path) -> FileDataset:
    """The parsed file, with its pixel data still undecoded."""
    if not path.is_file():
        raise ImagingDataError([f"{path}: no such image"])
    if path.stat().st_size == 0:
        raise ImagingDataError([f"{path}: empty file"])
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as e:
        raise ImagingDataError([f"{path}: not a DICOM file ({e})"]) from e
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:  # pydicom's errors on a cut or garbled header
        raise ImagingDataError([f"{path}: not a readable DICOM file ({type(e).__name__}: {e})"]) from e
    if "PixelData" not in ds:
        raise ImagingDataError([f"{path}: a DICOM file without pixel data (not an image, or truncated)"])
    return ds


def _check_grayscale_frame(path: Path, ds: FileDataset) -> None:
    """Refuse what is not one grayscale image: colour samples or photometry, or several frames."""
    photometric = ds.get("PhotometricInterpretation", "")
    samples = ds.get("SamplesPerPixel", 1)
    if photometric not in GRAYSCALE or samples != 1:
        found = f"{photometric or 'no'} photometric interpretation, {samples} samples per pixel"
        raise ImagingDataError([f"{path}: a colour DICOM image ({found}); expected {' or '.join(GRAYSCALE)}"])
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ImagingDataError([f"{path}: a multi-frame DICOM image ({frames} frames); expected a single film"])


def _pixels(path: Path, ds: FileDataset) -> np.ndarray:
    """The stored values, decoded; truncated or wrong-size pixel data and missing decoders are named."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        stored = ds.pixel_array
    except (RuntimeError, NotImplementedError) as e:  # no decoder plugin for this transfer syntax
        name = syntax.name if syntax is not None else "an unknown transfer syntax"
        raise ImagingDataError([f"{path}: pixel data in {name} cannot be decoded here ({e})"]) from e
    except (ValueError, AttributeError, KeyError, TypeError) as e:  # short, oversize or undescribed pixel data
        raise ImagingDataError([f"{path}: unreadable pixel data ({type(e).__name__}: {e})"]) from e
    if stored.ndim != 2:
        raise ImagingDataError([f"{path}: pixel data of shape {stored.shape}; expected one 2-D image"])
    return stored


def _display_values(values: np.ndarray, ds: FileDataset) -> np.ndarray:
    """Modality values mapped to [0, 1] by the VOI LUT, else the window, else the image's own min and max."""
    if _has_voi_lut(ds):
        depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return apply_voi(np.rint(values).astype(np.int64), ds) / float(2**depth - 1)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        # The window's output range (pydicom's y_min, y_max) is where it sends -inf and +inf.
        low, high = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return (apply_windowing(values, ds) - low) / (high - low)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros(values.shape)


def _has_voi_lut(ds: FileDataset) -> bool:
    """Whether the first VOI LUT item has both its descriptor and its data (pydicom's own test)."""
    items = ds.get("VOILUTSequence")
    return bool(items) and "LUTDescriptor" in items[0] and "LUTData" in items[0]
