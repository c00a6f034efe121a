"""CelebA's 40 attributes: the label file, a small 64x64 classifier, its training and its own safetensors file.

    python -m training.attributes --celeba ROOT --out runs/attributes      # --max-images 10000 --holdout 1000

The classifier scores generated faces for ``training.directions``; it is a training artefact (the
service never loads it). Trained on the selection's training images and tested on its held-out
ones, each attribute's test accuracy is reported beside the majority-class baseline (always answer
the training set's more common value); only attributes that beat it by ``MIN_GAIN`` are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from models.atomic import atomic_write
from models.header import CheckpointError, check_tensor_table, read_header
from training.config import TrainConfig
from training.data import ImageSet, load_holdout, load_images

ATTRIBUTE_FILE = "list_attr_celeba.txt"
FORMAT_NAME = "dcgan-faces/attribute-classifier"
FORMAT_VERSION = "1"
MIN_GAIN = 0.05  # an attribute is kept when its test accuracy beats the majority baseline by 5 points
WIDTH = 32  # channels of the first block; 4 blocks double it: ~0.4 M parameters, 1.6 MB


def read_attributes(path: Path) -> tuple[list[str], dict[str, torch.Tensor]]:
    """CelebA's ``list_attr_celeba.txt``: (attribute names, file name -> (A,) bool). ValueError names the line."""
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(f"{path}: not a CelebA attribute file (line 1 must be the image count)")
    names = lines[1].split()
    rows: dict[str, torch.Tensor] = {}
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise ValueError(f"{path}:{number}: expected a file name and {len(names)} values of 1 or -1")
        rows[parts[0]] = torch.tensor([v == "1" for v in parts[1:]])
    if len(rows) != int(lines[0]):
        raise ValueError(f"{path}: line 1 says {lines[0].strip()} images, the file lists {len(rows)}")
    return names, rows


def labels_for(images: ImageSet, rows: dict[str, torch.Tensor], path: Path) -> torch.Tensor:
    """(N, A) float labels aligned with ``images`` by file name (a file that failed to decode has no row)."""
    missing = [n for n in images.names if Path(n).name not in rows]
    if missing:
        raise ValueError(f"{path}: no attributes for {missing[0]} ({len(missing)} images without a row)")
    return torch.stack([rows[Path(n).name] for n in images.names]).float()


class AttributeClassifier(nn.Module):
    """images (N, 3, 64, 64) in [-1, 1] -> one logit per attribute (N, A)."""

    def __init__(self, attributes: int, width: int = WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 8 * width):  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (N, 8w, 4, 4) -> (N, 8w) -> (N, A)


@dataclass(frozen=True)
class Classifier:
    """A trained classifier and what its file says about it."""

    net: AttributeClassifier  # eval mode
    attributes: list[str]
    report: dict[str, Any]  # per-attribute accuracy and baseline, kept names, data selection

    @property
    def kept(self) -> list[str]:
        return list(self.report["kept"])

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """uint8 (N, 3, 64, 64) or (N, 64, 64, 3) -> P(attribute) (N, A)."""
        if images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        out = [torch.sigmoid(self.net(part.float() / 127.5 - 1.0)) for part in images.split(batch)]
        return torch.cat(out)


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, epochs: int = 10, seed: int = 0, batch: int = 64
) -> AttributeClassifier:
    """Multi-label BCE, Adam, random horizontal flips: uint8 (N, 3, 64, 64), labels (N, A) in {0, 1}."""
    torch.manual_seed(seed)
    net = AttributeClassifier(labels.shape[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=epochs * (len(images) // batch))
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=g)
        for start in range(0, len(images) - batch + 1, batch):  # the last partial batch is dropped
            idx = order[start : start + batch]
            x = images[idx].float() / 127.5 - 1.0  # (B, 3, 64, 64)
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.binary_cross_entropy_with_logits(net(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def evaluate(
    classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, train_labels: torch.Tensor
) -> dict[str, Any]:
    """Per attribute: test accuracy, and the majority baseline (the training set's more common value)."""
    predicted = classifier.probabilities(images) > 0.5  # (N, A)
    accuracy = (predicted == labels.bool()).float().mean(dim=0)
    majority = train_labels.mean(dim=0) > 0.5  # (A,)
    baseline = (labels.bool() == majority).float().mean(dim=0)
    rows = {
        name: {"accuracy": round(float(a), 4), "baseline": round(float(b), 4), "gain": round(float(a - b), 4)}
        for name, a, b in zip(classifier.attributes, accuracy, baseline, strict=True)
    }
    return {"attributes": rows, "kept": [n for n, r in rows.items() if r["gain"] >= MIN_GAIN]}


def save_classifier(classifier: Classifier, path: Path) -> None:
    tensors = {k: v.detach().contiguous().float() for k, v in classifier.net.state_dict().items()}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "attributes": json.dumps(classifier.attributes),
        "width": str(WIDTH),
        "report": json.dumps(classifier.report, sort_keys=True),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_classifier(path: str | Path) -> Classifier:
    """Load and validate a classifier file (no pickle: the header is checked before any tensor is read)."""
    path = Path(path)
    header, data_size = read_header(path)
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a dcgan-faces attribute classifier (format version {FORMAT_VERSION})")
    try:
        attributes, report, width = json.loads(meta["attributes"]), json.loads(meta["report"]), int(meta["width"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid classifier metadata ({e})") from None
    if not (isinstance(attributes, list) and all(isinstance(a, str) for a in attributes) and 0 < width <= 256):
        raise CheckpointError(f"{path}: invalid classifier metadata (attributes, width)")
    with torch.device("meta"):
        reference = AttributeClassifier(len(attributes), width).state_dict()
    # BatchNorm's num_batches_tracked is int64; the file stores it as F32 like the rest
    check_tensor_table(path, header, {k: tuple(v.shape) for k, v in reference.items()}, data_size)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in reference}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable tensor data ({e})") from None
    net = AttributeClassifier(len(attributes), width)
    net.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
    return Classifier(net.eval().requires_grad_(False), attributes, report)


def build(
    celeba: Path, out: Path, max_images: int, holdout: int, epochs: int, cache_dir: str | None = None
) -> Classifier:
    """Train on the selection's training images, test on its held-out ones, save ``out``."""
    config = TrainConfig(
        dataset="celeba", data=str(celeba), max_images=max_images, holdout=holdout, cache_dir=cache_dir
    )
    label_file = celeba / ATTRIBUTE_FILE
    if not label_file.is_file():
        raise ValueError(f"--celeba {celeba}: no {ATTRIBUTE_FILE} (CelebA's attribute file) in it")
    names, rows = read_attributes(label_file)
    train, test = load_images(config), load_holdout(config)
    train_labels, test_labels = labels_for(train, rows, label_file), labels_for(test, rows, label_file)
    net = train_classifier(train.images, train_labels, epochs)
    classifier = Classifier(net, names, {})
    report = evaluate(classifier, test.images, test_labels, train_labels)
    report |= {"trained_on": train.files, "tested_on": test.files, "epochs": epochs}
    classifier = replace(classifier, report=report)
    save_classifier(classifier, out)
    return classifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.attributes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--celeba", type=Path, required=True, help="CelebA root (images and list_attr_celeba.txt)")
    parser.add_argument("--out", type=Path, default=Path("runs/attributes/classifier.safetensors"))
    parser.add_argument("--max-images", type=int, default=10000, help="as dcgan-train")
    parser.add_argument("--holdout", type=int, default=1000, help="as dcgan-train: the test images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cache-dir", help="decoded-image cache, as dcgan-train")
    args = parser.parse_args(argv)
    try:
        classifier = build(args.celeba, args.out, args.max_images, args.holdout, args.epochs, args.cache_dir)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'attribute':22} {'accuracy':>8} {'baseline':>8} {'gain':>6}  kept")
    for name, row in classifier.report["attributes"].items():
        kept = "yes" if name in classifier.kept else ""
        print(f"{name:22} {row['accuracy']:8.3f} {row['baseline']:8.3f} {row['gain']:+6.3f}  {kept}")
    print(f"kept {len(classifier.kept)} of {len(classifier.attributes)}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
