"""Where the training pipeline puts CelebA's eyes, and where the detector's eyes sit in its face box.

Measured by ``python -m training.align_calibrate --celeba ROOT`` (the numbers and counts it found are in
``docs/inversion/template-calibration.json``; a test holds these constants to that file):

- ``EYES``: the median, over CelebA training images 1-9,000, of the eye centres that ``photos.detect``
  finds in each image's 64x64 training crop (``training.data``'s resize of the short side to 64 and centre
  crop), as fractions of the side. The detector runs on the crop upscaled 4x (Haar eye windows are 20 px).
  Measuring with the same detector that aligns uploads cancels its bias (a Haar eye box is centred a
  little off the pupil): an upload's detected eyes land where CelebA's detected eyes are.
- ``FACE_BOX``: the median centre (x, y) and width of the detected face box in the same crops, as fractions
  of the side. The alignment takes its scale and centre from the face box and only its rotation from the
  eyes: in CelebA's crops the detected eye distance varies 14% (coefficient of variation, 199 images) and
  the box width 8%, because CelebA was aligned on five landmarks (eyes, nose, mouth corners), not on the
  eyes alone, and a Haar eye box is a coarse landmark.
- ``EYES_IN_BOX``: the median eye centres as fractions of the detected face box (x, y relative to the box's
  top-left corner, in units of its width and height), from the same images: the fallback when a face is
  found but its eyes are not.

Coordinates are continuous: (0, 0) is the top-left corner of the top-left pixel, (1, 1) the bottom-right
corner of the image. "Left" is the eye on the image's left (the subject's right eye).
"""

from __future__ import annotations

Point = tuple[float, float]

EYES: tuple[Point, Point] = ((0.3880, 0.5140), (0.6070, 0.5140))  # provisional (CelebA's landmarks), see above
EYES_IN_BOX: tuple[Point, Point] = ((0.2925, 0.3794), (0.6775, 0.3813))  # provisional (200 images)
FACE_BOX: tuple[float, float, float] = (0.5020, 0.5820, 0.5740)  # provisional: centre x, centre y, width
