"""Feature extractors the metrics read: image features for FID, identity features for ACD and identity scores.

Image features (``[B, 3, H, W]`` in [-1, 1] → ``[B, D]``) for FID:

- :class:`CLIPImageFeatures`: a CLIP image tower (default: the bundle's loss CLIP). Works everywhere, but its
  numbers are *not* on the scale of the paper's Inception FID; results name the extractor.
- :class:`InceptionFeatures`: the TF-ported Inception-v3 of torch-fidelity (what torchmetrics' FID runs), 2048-d
  pool features, from a weights file the user points at (``pt_inception-2015-12-05-6726825d.pth``). Without a
  path torch-fidelity and torchmetrics download the file from the internet; here the path is mandatory, so
  nothing is ever downloaded.

Identity features (``images → (features [B, D], found [B] bool)``) for ACD (IV-A-5) and identity similarity:

- :class:`DlibFaceDescriptor`: dlib's 128-d face-recognition ResNet (``face_recognition_models``), on the face
  found by dlib's HOG detector and its 5- (or 68-) point landmarks. Frames where no face is found are flagged
  ``found = False`` and skipped by the metrics, which report how many. Not differentiable.
- :class:`EvaluatorIdentity`: the ToonFace evaluator's ``identity_features`` (every frame is a face).
- :class:`CLIPIdentity`: CLIP image embeddings as a generic, weak identity proxy (for domains without a face
  recognizer, the StyleCLIP baseline's identity loss on human faces, and tests).
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import torch

from faceanim.errors import CheckpointError, FaceanimError

RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODELS = {"5": "shape_predictor_5_face_landmarks.dat", "68": "shape_predictor_68_face_landmarks.dat"}


class ImageFeatures(Protocol):
    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [-1, 1] → ``[B, D]``."""


class IdentityFeatures(Protocol):
    name: str
    differentiable: bool  # True if gradients flow from the features to the images (StyleCLIP's identity loss)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, H, W]`` in [-1, 1] → (features ``[B, D]``, found ``[B]`` bool)."""


def _batched(fn, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


class CLIPImageFeatures:
    """Unit-norm CLIP image embeddings ``[B, D]`` (CLIP's own resize/crop/normalization)."""

    def __init__(self, clip, batch_size: int = 32, label: str | None = None):
        self.clip = clip.eval().requires_grad_(False)
        self.batch_size = batch_size
        self.name = f"clip:{label or clip.config.name}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.clip.device, torch.float32)
        return _batched(self.clip.encode_image, x, self.batch_size).float()


class InceptionFeatures:
    """Inception-v3 pool features ``[B, 2048]`` (torch-fidelity's network, the one of torchmetrics' FID).

    Frames are quantized to uint8 as when saved to PNG, then resized by the network to 299×299 (TF1 bilinear).
    ``weights``: torch-fidelity's ``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict).
    """

    def __init__(self, weights: str | os.PathLike, batch_size: int = 32, device: str | torch.device = "cpu"):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FaceanimError(f"Inception weights not found: {path}")
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise FaceanimError("Inception FID needs torch-fidelity: pip install 'faceanim[eval]'") from None
        try:  # torch-fidelity unpickles with weights_only=False: check first that the file is a plain state dict
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a plain weights file"
            raise CheckpointError(f"{path} is not a plain Inception state dict ({type(exc).__name__})") from None
        if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
            raise CheckpointError(f"{path} is not torch-fidelity's Inception-v3 state dict")
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=path)
        self.net.to(device)
        self.batch_size = batch_size
        self.name = "inception-v3"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        dev = next(self.net.parameters()).device
        return _batched(lambda b: self.net(b.to(dev))[0].reshape(b.shape[0], -1), x, self.batch_size).double().cpu()


class CLIPIdentity:
    """CLIP image embeddings as identity features (a proxy: CLIP also encodes expression). Differentiable."""

    differentiable = True

    def __init__(self, clip, label: str | None = None):
        self.clip = clip.eval().requires_grad_(False)
        self.name = f"clip:{label or clip.config.name}"

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.clip.encode_image(images.to(self.clip.device, torch.float32))
        return f, torch.ones(f.shape[0], dtype=torch.bool, device=f.device)


class EvaluatorIdentity:
    """Identity features of the ToonFace evaluator (``evaluator.identity_features``); differentiable."""

    differentiable = True

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.name = "toon-evaluator"

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.evaluator.identity_features(images)
        return f, torch.ones(f.shape[0], dtype=torch.bool, device=f.device)


def _face_model(name: str) -> str:
    from faceanim.align.ffhq import model_file

    path = model_file(name)
    if path is None:
        raise FaceanimError(f"dlib face descriptors need {name}: pip install face_recognition_models")
    return path


class DlibFaceDescriptor:
    """dlib's 128-d face descriptor (ResNet, LFW 99.38%) of the largest face of each image.

    Same person ⇔ distance < 0.6 in dlib's convention. Images without a detected face give ``found = False``
    (and a zero vector). ``landmarks``: "5" (the predictor dlib's descriptor was trained with), "68", or a path.
    Frames are first resized (Lanczos) so that their shorter side is ``work_size`` pixels: generated frames are
    aligned crops where the face fills about half the image, which the HOG detector (``upsample`` passes; faces
    under ~40 px are missed with 1) finds at 320 px as well as at 1024 px, ~10× faster; the descriptor reads its
    own 150×150 chip of the face.
    """

    differentiable = False

    def __init__(self, landmarks: str = "5", recognition_model: str | os.PathLike | None = None,
                 upsample: int = 1, work_size: int = 320):
        self.landmarks_path = os.fspath(landmarks) if landmarks not in SHAPE_MODELS else None
        self.landmarks = landmarks
        self.recognition_path = os.fspath(recognition_model) if recognition_model is not None else None
        self.upsample, self.work_size = int(upsample), int(work_size)
        self.name = f"dlib-resnet-128 ({landmarks if landmarks in SHAPE_MODELS else 'custom'} landmarks)"
        self._models = None

    def load(self):
        if self._models is None:
            try:
                import dlib
            except ImportError:
                raise FaceanimError("dlib face descriptors need dlib: pip install dlib-bin") from None
            shape = self.landmarks_path or _face_model(SHAPE_MODELS[self.landmarks])
            rec = self.recognition_path or _face_model(RECOGNITION_MODEL)
            for p in (shape, rec):
                if not os.path.isfile(p):
                    raise FaceanimError(f"dlib model not found: {p}")
            try:
                self._models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(shape),
                                dlib.face_recognition_model_v1(rec))
            except RuntimeError as exc:
                raise FaceanimError(f"cannot load the dlib models ({exc})") from None
        return self._models

    def describe(self, image: np.ndarray) -> np.ndarray | None:
        """One uint8 ``[H, W, 3]`` image → 128-d descriptor of its largest face, or None."""
        detector, shape_predictor, recognizer = self.load()
        if min(image.shape[:2]) != self.work_size:
            from PIL import Image

            scale = self.work_size / min(image.shape[:2])
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
        rects, scores, _ = detector.run(image, self.upsample)
        if len(rects) == 0:
            return None
        best = max(range(len(rects)), key=lambda i: (rects[i].area(), scores[i]))
        shape = shape_predictor(image, rects[best])
        return np.asarray(recognizer.compute_face_descriptor(image, shape), dtype=np.float64)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from faceanim.utils.images import to_uint8

        arrays = to_uint8(images).numpy()
        feats = torch.zeros(len(arrays), 128, dtype=torch.float64)
        found = torch.zeros(len(arrays), dtype=torch.bool)
        for i, arr in enumerate(arrays):
            d = self.describe(np.ascontiguousarray(arr))
            if d is not None:
                feats[i], found[i] = torch.from_numpy(d), True
        return feats, found
