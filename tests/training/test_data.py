from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.training.conftest import write_image
from training import data
from training.config import TrainConfig
from training.data import celeba_root, folder_images, load_images, synthetic_images


def make_folder(root: Path) -> None:
    """5 good images in nested folders and formats, 4 broken ones, 1 non-image."""
    write_image(root / "a.png", 1)
    write_image(root / "sub" / "b.jpg", 2, size=(50, 50))
    write_image(root / "sub" / "deeper" / "c.webp", 3, size=(20, 64))
    write_image(root / "d.BMP", 4, fmt="BMP")
    write_image(root / "e.jpeg", 5, fmt="PNG")  # PNG bytes under a JPEG name: decoded by content
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, format="JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("this is not an image")  # wrong extension
    (root / "README.txt").write_text("ignored: not an image extension")


def test_folder_decodes_good_images_and_counts_the_rest(tmp_path: Path) -> None:
    make_folder(tmp_path / "faces")
    images = folder_images(tmp_path / "faces", 32, tmp_path / "cache")
    assert images.images.shape == (5, 3, 32, 32) and images.images.dtype == torch.uint8
    assert (images.skipped, images.ignored) == (4, 1)
    assert images.files == "a.png..truncated.jpg"  # the selection's first and last file names
    assert len(images.content_hash) == 64


def test_resize_center_crop_keeps_the_middle() -> None:
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (25, 0, 35, 20))  # a white stripe in the middle
    out = data.resize_center_crop(img, 16)  # (3, 16, 16): 60x20 -> 48x16, crop columns 16..31
    assert out.shape == (3, 16, 16)
    assert out[:, :, 5:11].min() > 200 and out[:, :, 0].max() < 60 and out[:, :, 15].max() < 60


def test_cache_is_reused_and_keyed_by_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "faces"
    make_folder(root)
    first = folder_images(root, 32, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def no_decoding(path: Path, size: int) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data, "decode_image", no_decoding)
    second = folder_images(root, 32, tmp_path / "cache")
    assert torch.equal(first.images, second.images) and second.skipped == 4
    monkeypatch.undo()
    write_image(root / "new.png", 9)  # a new file is a new key
    assert folder_images(root, 32, tmp_path / "cache").images.shape[0] == 6
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_empty_or_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"--data .*empty: no image files"):
        folder_images(tmp_path / "empty", 32, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"--data .*missing: not a directory"):
        folder_images(tmp_path / "missing", 32, tmp_path / "cache")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="none of the 1 image files could be decoded"):
        folder_images(tmp_path / "broken", 32, tmp_path / "cache")


@pytest.mark.parametrize("layout", ["img_align_celeba", "celeba/img_align_celeba", ""])
def test_celeba_layouts(tmp_path: Path, layout: str) -> None:
    images_dir = tmp_path / "download" / "celeba" / "img_align_celeba"
    write_image(images_dir / "000001.jpg", 1, size=(178, 218))
    given = {"img_align_celeba": tmp_path / "download" / "celeba", "celeba/img_align_celeba": tmp_path / "download"}
    assert celeba_root(given.get(layout, images_dir)) == images_dir


def test_celeba_without_the_layout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no img_align_celeba/ folder"):
        celeba_root(tmp_path)


def test_load_images_celeba(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "celeba" / "img_align_celeba" / f"{i:06d}.jpg", i, size=(178, 218))
    images = load_images(tiny_config(dataset="celeba", data=str(tmp_path)))
    assert images.name == "celeba" and images.images.shape == (3, 3, 32, 32)


def test_synthetic_is_deterministic() -> None:
    a, b = synthetic_images(6, 32, seed=1), synthetic_images(6, 32, seed=1)
    assert a.shape == (6, 3, 32, 32) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, synthetic_images(6, 32, seed=2))
    assert a.float().std() > 20  # not a blank image


def test_lfw_sample_loads() -> None:
    pytest.importorskip("skimage")
    faces = data.lfw_sample_images(64)
    assert faces.shape == (100, 3, 64, 64) and faces.dtype == torch.uint8
    assert torch.equal(faces[:, 0], faces[:, 2])  # grey faces copied to three channels


def test_split_takes_the_first_max_images_and_holds_out_the_last() -> None:
    items = list(range(10))
    assert data.split(items, None, 0) == (items, [])
    assert data.split(items, 6, 2) == ([0, 1, 2, 3], [4, 5])
    assert data.split(items, None, 3) == ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    with pytest.raises(ValueError, match="--holdout 6 leaves no training images"):
        data.split(items, 6, 6)


def test_max_images_and_holdout_are_validated(tiny_config: Callable[..., TrainConfig]) -> None:
    with pytest.raises(ValueError, match="--holdout 5 must be smaller than --max-images 5"):
        tiny_config(max_images=5, holdout=5)
    with pytest.raises(ValueError, match="--holdout must be an integer"):
        tiny_config(holdout=-1)


def test_celeba_subset_trains_on_the_first_files_and_never_on_the_holdout(
    tiny_config: Callable[..., TrainConfig], celeba_slice: Path
) -> None:
    """Through the real CelebA path: --max-images 30 --holdout 10 trains on 000001-000020 only."""
    config = tiny_config(dataset="celeba", data=str(celeba_slice), max_images=30, holdout=10)
    train, held = load_images(config), data.load_holdout(config)
    assert train.files == "000001.jpg..000020.jpg" and held.files == "000021.jpg..000030.jpg"
    root = celeba_slice / "img_align_celeba"
    expected = torch.stack([torch.from_numpy(data.decode_image(root / f"{i:06d}.jpg", 32)) for i in range(1, 31)])
    assert torch.equal(train.images, expected[:20]) and torch.equal(held.images, expected[20:])
    assert train.images[:, 0].float().mean() != train.images[:, 2].float().mean()  # colour, not grey
    trained_rows = {bytes(row.numpy().tobytes()) for row in train.images}
    assert not trained_rows & {bytes(row.numpy().tobytes()) for row in held.images}
