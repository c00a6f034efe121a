"""Where the training pipeline puts CelebA's eyes, and where the detector's eyes sit in its face box.

Measured by ``python -m training.align_calibrate --celeba ROOT --stride 4`` on every 4th of CelebA images
1-9,000 (2,250 images: a face in 2,179, upright with both eyes in 1,840, which give the medians; the
counts and spreads are in ``docs/inversion/template-calibration.json``, and a test holds these constants to
that file). ``--stride 1`` measures all 9,000; a quarter was what this 2-core machine's afternoon allowed.

- ``EYES``: the median, over those training images, of the eye centres that ``photos.detect``
  finds in each image's 64x64 training crop (``training.data``'s resize of the short side to 64 and centre
  crop), as fractions of the side. The detector runs on the crop upscaled 4x (Haar eye windows are 20 px).
  Measuring with the same detector that aligns uploads cancels its bias (a Haar eye box is centred a
  little off the pupil): an upload's detected eyes land where CelebA's detected eyes are.
- ``FACE_BOX``: the median centre (x, y) and width of the detected face box in the same crops, as fractions
  of the side. The alignment takes its scale and centre from the face box and only its rotation from the
  eyes: in CelebA's crops the detected eye distance varies 13% (coefficient of variation, 1,840 images)
  and the box width 7%, because CelebA was aligned on five landmarks (eyes, nose, mouth corners), not on the
  eyes alone, and a Haar eye box is a coarse landmark.
- ``EYES_IN_BOX``: the median eye centres as fractions of the detected face box (x, y relative to the box's
  top-left corner, in units of its width and height), from the same images: where the eye search expects
  them (``photos.detect`` takes the candidates nearest these).

Coordinates are continuous: (0, 0) is the top-left corner of the top-left pixel, (1, 1) the bottom-right
corner of the image. "Left" is the eye on the image's left (the subject's right eye).
"""

from __future__ import annotations

Point = tuple[float, float]

EYES: tuple[Point, Point] = ((0.3821, 0.5149), (0.6051, 0.5154))
EYES_IN_BOX: tuple[Point, Point] = ((0.2925, 0.3822), (0.6800, 0.3836))
FACE_BOX: tuple[float, float, float] = (0.5000, 0.5820, 0.5703)  # centre x, centre y, width
