"""Training objectives: the diffusion loss and IdentiFace's facial identity loss.

``identity`` follows the published recipe: on items whose diffusion step ``t`` is
below ``t_limit``, the model's estimate of the clean image x̂₀ and the real image
x are embedded by a differentiable face recogniser f, and

    L_id = λ · Σᵢ wᵢ (1 − sᵢ) / Σᵢ wᵢ,   sᵢ = cos(f(x̂₀ᵢ), f(xᵢ)),   wᵢ = sigmoid(α (T − sᵢ))

so faces that are still far from their identity (sᵢ below the threshold T) weigh
most. The weights select which items matter; they are constants for the gradient
(detached), so the loss cannot fall by shifting weight away from hard items.
"""

from __future__ import annotations

from typing import Any, ClassVar

from facefit import hookimpl
from facefit.errors import InputError
from facefit.interfaces import Loss, LossInputs


class DiffusionLoss(Loss):
    """Mean squared error between the model's prediction and its target (noise or velocity).

    Per-item weights in ``inputs.extra["weights"]`` (``(B,)``, e.g. Min-SNR-γ's
    from :func:`facefit.generator.noise.min_snr_weights`) weight each item's mean
    error; without them every item counts the same.
    """

    name: ClassVar[str] = "diffusion"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = float(weight)

    def __call__(self, inputs: LossInputs) -> Any:
        import torch.nn.functional as F

        weights = (inputs.extra or {}).get("weights")
        if weights is None:
            return self.weight * F.mse_loss(inputs.prediction.float(), inputs.target.float())
        error = (inputs.prediction.float() - inputs.target.float()).pow(2)
        per_item = error.flatten(1).mean(1)
        return self.weight * (per_item * weights.to(per_item)).mean()


class IdentityLoss(Loss):
    """IdentiFace's facial identity loss on x̂₀ at small diffusion steps.

    ``recognizer`` is a differentiable module taking ``(N, 3, input_size, input_size)``
    RGB in [0, 255] and returning embeddings, or ``"sface"`` for facefit's SFace
    rebuilt in torch (loaded on first use). Images arrive in [-1, 1] as aligned
    crops of the same template at any size and are resized to ``input_size``.
    ``weight`` is λ, ``threshold`` T, ``alpha`` α; only items with
    ``timestep < t_limit`` count (the loss is 0 when none does).
    """

    name: ClassVar[str] = "identity"

    def __init__(
        self,
        recognizer: Any = "sface",
        weight: float = 0.1,
        threshold: float = 0.385,
        alpha: float = 10.0,
        t_limit: int = 200,
        input_size: int = 112,
    ) -> None:
        if isinstance(recognizer, str) and recognizer != "sface":
            raise InputError(
                f"identity loss: recognizer {recognizer!r} unknown; pass 'sface' or a torch module"
            )
        self._recognizer = recognizer
        self.weight = float(weight)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.t_limit = int(t_limit)
        self.input_size = int(input_size)

    @property
    def recognizer(self) -> Any:
        if isinstance(self._recognizer, str):
            from facefit_plugins.face_encoders.sface import load_sface_torch

            self._recognizer = load_sface_torch()
        return self._recognizer

    def item_weights(self, similarity: Any) -> Any:
        """wᵢ = sigmoid(α (T − sᵢ)) for cosine similarities sᵢ."""
        import torch

        return torch.sigmoid(self.alpha * (self.threshold - similarity))

    def similarity(self, x0_pred: Any, x0: Any) -> Any:
        """Cosine of the recogniser's embeddings of x̂₀ and x (gradient to x̂₀ only)."""
        import torch
        import torch.nn.functional as F

        f = self.recognizer
        parameter = next(iter(f.parameters()), None)
        dtype = parameter.dtype if parameter is not None else torch.float32
        pred = f(self._to_recognizer(x0_pred, dtype))
        with torch.no_grad():
            target = f(self._to_recognizer(x0, dtype))
        return F.cosine_similarity(pred.float(), target.float(), dim=-1)

    def _to_recognizer(self, images: Any, dtype: Any) -> Any:
        import torch.nn.functional as F

        if images.shape[-1] != self.input_size:
            images = F.interpolate(
                images.float(),
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
            )
        return ((images.float() + 1) * 127.5).to(dtype)

    def __call__(self, inputs: LossInputs) -> Any:
        if inputs.x0 is None or inputs.x0_pred is None or inputs.timesteps is None:
            raise InputError("identity loss needs x0, x0_pred and timesteps in LossInputs")
        small = inputs.timesteps < self.t_limit
        if not bool(small.any()):
            return inputs.x0_pred.sum() * 0.0  # keeps the graph, adds nothing
        s = self.similarity(inputs.x0_pred[small], inputs.x0[small])
        w = self.item_weights(s).detach()
        return self.weight * (w * (1 - s)).sum() / w.sum()


@hookimpl
def register_losses(register) -> None:
    register(DiffusionLoss)
    register(IdentityLoss)
