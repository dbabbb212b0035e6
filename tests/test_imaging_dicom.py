"""DICOM films: windowing, rescale and photometric interpretation honoured; bad files named (issue 12)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from rxpredict.exceptions import ImagingDataError
from rxpredict.imaging.dicom import read_dicom
from rxpredict.imaging.layout import read_image

STORED = np.array([[0, 1000, 2000], [3000, 4000, 4095]], dtype=np.uint16)


def write_dicom(path: Path, pixels: np.ndarray = STORED, photometric: str = "MONOCHROME2", **elements) -> Path:
    """A small Explicit VR Little Endian film of ``pixels`` (12 bits stored in 16) with extra ``elements``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1 if pixels.ndim == 2 else pixels.shape[2]
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    for name, value in elements.items():
        setattr(ds, name, value)
    ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_without_window_the_image_is_min_max_stretched(tmp_path):
    image = read_dicom(write_dicom(tmp_path / "P1-LH.dcm"))
    assert image.dtype == np.float32 and image.shape == (2, 3)
    np.testing.assert_allclose(image, STORED / 4095, atol=1e-6)


def test_rescale_then_window_match_a_hand_computation(tmp_path):
    path = write_dicom(tmp_path / "P1-LH.dcm", RescaleSlope=2, RescaleIntercept=-1000,
                       WindowCenter=3000, WindowWidth=4001)
    modality = STORED * 2.0 - 1000  # -1000 .. 7190
    # DICOM LINEAR window (PS3.3 C.11.2.1.2.1): c - 0.5 and w - 1, mapped onto the rescaled 12-bit range
    low, high = 3000 - 0.5 - 4000 / 2, 3000 - 0.5 + 4000 / 2
    expected = np.clip((modality - low) / (high - low), 0, 1)
    np.testing.assert_allclose(read_dicom(path), expected, atol=1e-6)
    assert read_dicom(path)[0, 0] == 0 and read_dicom(path)[1, 2] == 1


def test_voi_lut_sequence_is_applied(tmp_path):
    item = Dataset()
    item.LUTDescriptor = [4, 1000, 16]  # 4 entries, first mapped value 1000, 16-bit output
    item.LUTData = np.array([0, 10000, 40000, 65535], "<u2").tobytes()  # OW, as written by scanners
    stored = np.array([[0, 1000, 1001], [1002, 1003, 4095]], np.uint16)  # below, on and past the 4 entries
    path = write_dicom(tmp_path / "P1-LH.dcm", stored, VOILUTSequence=[item])
    expected = np.array([[0, 0, 10000], [40000, 65535, 65535]]) / 65535
    np.testing.assert_allclose(read_dicom(path), expected, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path):
    mono2 = read_dicom(write_dicom(tmp_path / "a.dcm", WindowCenter=2048, WindowWidth=4096))
    mono1 = read_dicom(write_dicom(tmp_path / "b.dcm", photometric="MONOCHROME1", WindowCenter=2048,
                                   WindowWidth=4096))
    np.testing.assert_allclose(mono1, 1 - mono2, atol=1e-6)
    assert mono1[0, 0] == 1 and mono1[1, 2] == 0


def test_dicom_is_recognised_by_its_prefix_without_the_suffix(tmp_path):
    film = np.tile(STORED, (40, 30))
    path = write_dicom(tmp_path / "P1-LH.dcm", film).rename(tmp_path / "P1-LH")
    np.testing.assert_allclose(read_image(path), film / 4095, atol=1e-6)


def test_a_film_too_small_to_score_is_named(tmp_path):
    with pytest.raises(ImagingDataError, match=r"P1-LH.dcm: 3x2 pixels is too small"):
        read_image(write_dicom(tmp_path / "P1-LH.dcm"))


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"just some text, not a film", "not a DICOM file"),
])
def test_empty_and_non_dicom_files_are_named(tmp_path, content, message):
    path = tmp_path / "P1-LH.dcm"
    path.write_bytes(content)
    with pytest.raises(ImagingDataError, match=f"P1-LH.dcm: {message}"):
        read_image(path)


@pytest.mark.parametrize("keep", [200, -4])  # cut in the header; cut in the pixel data
def test_truncated_file_is_named(tmp_path, keep):
    path = write_dicom(tmp_path / "P1-LH.dcm")
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ImagingDataError, match="P1-LH.dcm: .*(truncated|unreadable pixel data)"):
        read_image(path)


def test_wrong_size_pixel_data_is_named(tmp_path):
    path = write_dicom(tmp_path / "P1-LH.dcm", Rows=20)
    with pytest.raises(ImagingDataError, match="P1-LH.dcm: unreadable pixel data"):
        read_image(path)


def test_rgb_is_refused(tmp_path):
    path = write_dicom(tmp_path / "P1-LH.dcm", np.zeros((2, 3, 3), np.uint16), photometric="RGB")
    with pytest.raises(ImagingDataError, match="P1-LH.dcm: a colour DICOM image .RGB"):
        read_image(path)


def test_multi_frame_is_refused(tmp_path):
    path = write_dicom(tmp_path / "P1-LH.dcm", np.zeros((4, 3), np.uint16), Rows=2, NumberOfFrames=2)
    with pytest.raises(ImagingDataError, match="P1-LH.dcm: a multi-frame DICOM image .2 frames"):
        read_image(path)


def test_undecodable_compression_is_named(tmp_path):
    path = write_dicom(tmp_path / "P1-LH.dcm")
    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x04\x00\x00\x00\xff\xd8\xff\xf7"
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(ImagingDataError, match="P1-LH.dcm: pixel data in JPEG-LS Lossless .* cannot be decoded"):
        read_image(path)


def test_file_without_pixel_data_is_named(tmp_path):
    path = write_dicom(tmp_path / "P1-LH.dcm")
    ds = dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImagingDataError, match="P1-LH.dcm: a DICOM file without pixel data"):
        read_image(path)


def test_a_folder_may_hold_dicom_films_beside_jpeg_ones(tmp_path):
    from rxpredict.imaging.layout import read_folder
    from rxpredict.imaging.synth import synthesize

    synthesize(1, tmp_path, seed=3)
    jpeg = next(tmp_path.glob("*-LH.jpg"))
    film = np.round(read_image(jpeg) * 4095).astype(np.uint16)
    write_dicom(jpeg.with_suffix(".dcm"), film)
    jpeg.unlink()
    folder = read_folder(tmp_path)
    (patient,) = folder.images
    assert folder.images[patient]["LH"].suffix == ".dcm" and folder.scores is not None
    np.testing.assert_allclose(read_image(folder.images[patient]["LH"]), film / film.max(), atol=1e-6)
