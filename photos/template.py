"""Where the training pipeline puts CelebA's eyes, and where the detector's eyes sit in its face box.

Measured by ``python -m training.align_calibrate --celeba ROOT`` (the numbers and counts it found are in
``docs/inversion/template-calibration.json``; a test holds these constants to that file):

- ``EYES``: the median, over CelebA training images 1-9,000, of the eye centres that ``photos.detect``
  finds in each image's 64x64 training crop (``training.data``'s resize of the short side to 64 and centre
  crop), as fractions of the side. The detector runs on the crop upscaled 4x (Haar eye windows are 20 px).
  Measuring with the same detector that aligns uploads cancels its bias (a Haar eye box is centred a
  little off the pupil): an upload's detected eyes land where CelebA's detected eyes are.
- ``EYES_IN_BOX``: the median eye centres as fractions of the detected face box (x, y relative to the box's
  top-left corner, in units of its width and height), from the same images: the fallback when a face is
  found but its eyes are not.

Coordinates are continuous: (0, 0) is the top-left corner of the top-left pixel, (1, 1) the bottom-right
corner of the image. "Left" is the eye on the image's left (the subject's right eye).
"""

from __future__ import annotations

Point = tuple[float, float]

EYES: tuple[Point, Point] = ((0.3880, 0.5140), (0.6070, 0.5140))  # provisional (CelebA's landmarks), see above
EYES_IN_BOX: tuple[Point, Point] = ((0.3000, 0.3800), (0.7000, 0.3800))  # provisional
