"""Photos from users: safe decoding of uploads and face alignment to the training pipeline's framing.

Shared by ``app`` (``POST /invert``) and ``training`` (calibration, evaluation); imports numpy, Pillow and
OpenCV only, never ``app``, ``training`` or torch.
"""

from photos.align import Aligned, align_face, eye_transform, face_transform, resize_center_crop, warp
from photos.decode import UploadError, read_upload
from photos.detect import Landmarks, NoFaceError, locate_face

__all__ = [
    "Aligned",
    "Landmarks",
    "NoFaceError",
    "UploadError",
    "align_face",
    "eye_transform",
    "face_transform",
    "locate_face",
    "read_upload",
    "resize_center_crop",
    "warp",
]
