"""CelebA's attribute file, the classifier file format, and the InterFaceGAN fit, on small fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from models import DCGANConfig
from models.directions import edit
from models.latent import latents_for_seeds
from models.sampling import render
from training import attributes, directions
from training.attributes import AttributeClassifier, Classifier, load_classifier, read_attributes, save_classifier
from training.data import ImageSet

ATTRS = "3\nSmiling Male\n000001.jpg  1 -1\n000002.jpg -1 -1\n000003.jpg  1  1\n"


def test_read_attributes_in_celebas_format(tmp_path: Path) -> None:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(ATTRS)
    names, rows = read_attributes(path)
    assert names == ["Smiling", "Male"]
    assert rows["000003.jpg"].tolist() == [True, True] and rows["000002.jpg"].tolist() == [False, False]
    images = ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "celeba", "", names=("000003.jpg", "000001.jpg"))
    assert attributes.labels_for(images, rows, path).tolist() == [[1.0, 1.0], [1.0, 0.0]]  # aligned by name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x\nSmiling\n", "line 1 must be the image count"),
        ("1\nSmiling Male\n000001.jpg 1\n", ":3: expected a file name and 2 values"),
        ("1\nSmiling\n000001.jpg 0\n", ":3: expected a file name and 1 values of 1 or -1"),
        ("2\nSmiling\n000001.jpg 1\n", "line 1 says 2 images, the file lists 1"),
    ],
)
def test_a_bad_attribute_file_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_attributes(path)


def test_images_without_a_label_row_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "list_attr_celeba.txt"
    path.write_text(ATTRS)
    _, rows = read_attributes(path)
    images = ImageSet(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "celeba", "", names=("000009.jpg",))
    with pytest.raises(ValueError, match=r"no attributes for 000009\.jpg"):
        attributes.labels_for(images, rows, path)


def test_classifier_learns_a_visible_attribute_and_round_trips(tmp_path: Path) -> None:
    """'Bright' faces are bright: a few epochs learn it, the report beats the baseline, the file reloads."""
    g = torch.Generator().manual_seed(0)
    bright = torch.rand(256, generator=g) < 0.5
    images = (torch.rand(256, 3, 64, 64, generator=g) * 80 + bright[:, None, None, None] * 120).to(torch.uint8)
    labels = torch.stack([bright, ~bright], dim=1).float()  # (N, 2): Bright, Dark
    net = attributes.train_classifier(images[:192], labels[:192], epochs=3, batch=32)
    clf = Classifier(net, ["Bright", "Dark"], {})
    report = attributes.evaluate(clf, images[192:], labels[192:], labels[:192])
    assert report["attributes"]["Bright"]["accuracy"] > 0.95 and report["kept"] == ["Bright", "Dark"]
    path = tmp_path / "classifier.safetensors"
    save_classifier(Classifier(net, clf.attributes, report), path)
    again = load_classifier(path)
    assert again.kept == ["Bright", "Dark"]
    assert torch.equal(again.probabilities(images[:8]), clf.probabilities(images[:8]))


def test_a_generator_export_is_not_a_classifier(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="not a dcgan-faces attribute classifier"):
        load_classifier(tiny_checkpoint)


def test_fit_boundary_recovers_a_known_normal() -> None:
    g = torch.Generator().manual_seed(1)
    true = torch.randn(16, generator=g)
    true /= true.norm()
    z = torch.randn(2000, 16, generator=g)
    normal, accuracy = directions.fit_boundary(z, (z @ true > 0.3).float())
    assert float(normal @ true) > 0.98 and accuracy > 0.95 and abs(float(normal.norm()) - 1) < 1e-6


class Brightness(nn.Module):
    """A stand-in classifier whose one 'attribute' is how bright the face is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(dim=(1, 2, 3)) * 20)[:, None]  # (N, 1) logits


class LinearFaces(nn.Module):
    """A stand-in generator whose faces' brightness is tanh(z . v) plus texture from the other components:
    a known direction v for the fit to find (a random-init DCGAN's brightness is not linear in z)."""

    def __init__(self, nz: int = 16) -> None:
        super().__init__()
        self.config = DCGANConfig(nz=nz, image_size=32)
        g = torch.Generator().manual_seed(3)
        self.register_buffer("v", torch.nn.functional.normalize(torch.randn(nz, generator=g), dim=0))
        self.texture = nn.Parameter(torch.randn(nz, 3 * 32 * 32, generator=g) * 0.02, requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        level = torch.tanh(z @ self.v)[:, None, None, None] * 0.5  # (N, 1, 1, 1): never clipped below
        return (level + (z @ self.texture).reshape(-1, 3, 32, 32)).clamp(-1, 1)  # (N, 3, 32, 32)


def test_interfacegan_finds_the_direction_that_edits_the_attribute() -> None:
    """The whole fit, scored by brightness: the fitted normal is the true one, moving +2σ along it brightens
    unseen faces and −2σ darkens them, monotonically, and the direction is a unit vector."""
    faces = LinearFaces().eval()
    clf = Classifier(Brightness().eval(), ["Bright"], {"kept": ["Bright"]})  # type: ignore[arg-type]
    (found,) = directions.fit_directions(faces, clf, samples=1000)  # type: ignore[arg-type]
    assert found.name == "Bright" and found.kind == "attribute" and found.separation is not None
    assert found.separation > 0.95 and abs(float(found.vector.norm()) - 1) < 1e-5
    assert float(found.vector @ faces.v) > 0.95
    table = directions.edit_success(faces, clf, [found], n=50)  # type: ignore[arg-type]
    assert table["Bright"]["raises_at_plus_2"] >= 0.8 and table["Bright"]["lowers_at_minus_2"] >= 0.8
    z = latents_for_seeds([5], 16)[0]
    brightness = [float(render(faces, edit(z, found.vector, [s])).float().mean()) for s in (-2, -1, 0, 1, 2)]
    assert brightness == sorted(brightness)  # monotone along the direction


def test_classifier_shape_is_small() -> None:
    params = sum(p.numel() for p in AttributeClassifier(40).parameters())
    assert 300_000 < params < 500_000  # ~1.6 MB as float32
