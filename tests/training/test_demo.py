"""The bundled demo: colour faces, a quality that beats an untrained generator on held-out CelebA, and
attribute directions that edit what they claim (checked with the committed attribute classifier)."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from models import load_export
from models.directions import edit
from models.latent import latents_for_seeds
from models.sampling import render
from tests.conftest import REPO
from training.attributes import load_classifier
from training.config import TrainConfig
from training.data import load_holdout
from training.evaluate import Evaluator, random_init

DEMO = REPO / "checkpoints" / "demo-faces-64.safetensors"
CLASSIFIER = REPO / "checkpoints" / "attributes-64.safetensors"
UNSEEN = range(5_000_000, 5_000_032)  # seeds never used for fitting (training.directions uses 3e6 and 4e6)


def test_the_demo_makes_colour_faces() -> None:
    export = load_export(DEMO)
    assert export.info.config.channels == 3 and export.info.config.image_size == 64
    images = render(export.generator, latents_for_seeds(range(16), 100)).float()  # (16, 64, 64, 3)
    per_channel = images.mean(dim=(0, 1, 2))  # R, G, B
    assert (images[..., 0] - images[..., 2]).abs().mean() > 8  # not grey copied to three channels
    assert per_channel[0] > per_channel[2]  # faces: more red than blue
    provenance = export.info.provenance
    assert provenance["dataset"] == "celeba" and "non-commercial" in provenance["terms"]
    assert provenance["selection"]["holdout"] == 1000 and provenance["quality"]["swd_mean"] > 0


def test_the_demo_beats_an_untrained_generator_on_held_out_faces(celeba_10k: Path, tmp_path: Path) -> None:
    """SWD on 256 held-out CelebA images (9,001-10,000 were never trained on): a clear margin."""
    config = TrainConfig(dataset="celeba", data=str(celeba_10k), max_images=10000, holdout=1000,
                         ngf=32, ndf=32, cache_dir=str(tmp_path))  # fmt: skip
    evaluator = Evaluator(load_holdout(config).images[:256])
    demo = evaluator.score_generator(load_export(DEMO).generator)
    untrained = evaluator.score_generator(random_init(config))
    assert demo.mean < 0.5 * untrained.mean, (demo, untrained)


def test_a_strong_attribute_edits_monotonically_and_zero_is_the_plain_face() -> None:
    """Along the demo's 'Smiling' direction the classifier's mean P(smiling) over unseen faces rises with
    every step from -2 to +2 sigma; strength 0 is the plain latent, so the plain face's pixels."""
    export, classifier = load_export(DEMO), load_classifier(CLASSIFIER)
    smiling = next(d for d in export.directions if d.name == "Smiling")
    column = classifier.attributes.index("Smiling")
    z = latents_for_seeds(UNSEEN, 100)  # (32, nz)
    strengths = [-2.0, -1.0, 0.0, 1.0, 2.0]
    moved = torch.cat([edit(row, smiling.vector, strengths) for row in z])  # (32 * 5, nz)
    images = render(export.generator, moved)
    p = classifier.probabilities(images)[:, column].reshape(len(z), len(strengths)).mean(dim=0)
    assert all(a < b for a, b in itertools.pairwise(p)), p
    assert torch.equal(images.reshape(len(z), len(strengths), *images.shape[1:])[:, 2], render(export.generator, z))
