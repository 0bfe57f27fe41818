"""Score fusion and calibration: one ranking from the evidence itself and the generated faces.

An investigator acts on the ranked list, so the list must never be worse than
matching the evidence directly, and its scores must say how likely a match is.
Every gallery identity ``j`` gets one score per *source* of evidence:

=============  ==========================================================================
``sketch``     cosine of each sketch to the identity's best photo, embedded by the sketch
               matcher (``sketch-matcher``; SFace where no matcher is installed); the mean
               over several sketches
``lq``         the same for low-quality frames, embedded by SFace
``text``       attribute agreement of the identity's photos with the description
               (:mod:`facefit.text_agreement`; only attributes with accurate probes)
``generated``  the loop's fused score of the generated candidates (:mod:`facefit.pipeline.fusion`)
=============  ==========================================================================

:class:`FusionModel` holds one :class:`Profile` per combination of sources (and the
encoder each was scored with). A profile is a logistic model of "identity ``j`` shows
the source person" fitted on pairs of the calibration slice
(:func:`facefit.datasets.splits.fs2k_calibration`, never the development split):

- the **raw fused score** ``s_j = Σ w_k x_jk`` ranks the identities;
- the **likelihood ratio** ``LR_j = exp(s_j + c)`` (``c`` is the fitted intercept less
  the log odds of the fit's pairs, so it does not depend on how many pairs were drawn);
- the **probability** that ``j`` is the source, given the whole gallery of ``N``
  identities and a prior ``π`` that the source is enrolled at all:
  ``p_j = (π/N)·LR_j / ((1 − π) + (π/N)·Σ_i LR_i)``. It rises with ``s_j``
  (monotone), and when nobody in the gallery looks like the evidence every ``p_j`` is
  small: the result then says *no likely match* (:data:`DEFAULT_NO_MATCH_THRESHOLD`).
- a profile may depend on the gallery size: its weights and offset at ``N`` identities
  are ``max(0, w_k + v_k·log(N/N_ref))`` and ``c + c₁·log(N/N_ref)``
  (:meth:`Profile.at_size`), fitted on calibration galleries of several sizes; still
  monotone in every score at every ``N``.

The weights are in ``fusion_weights.json`` beside this module (:data:`DEFAULT_WEIGHTS`);
``facefit fusion fit`` refits them (:mod:`facefit.fusion.fit`, docs/identification.md).
"""

from facefit.fusion.model import (
    DEFAULT_MATCH_PRIOR,
    DEFAULT_NO_MATCH_THRESHOLD,
    DEFAULT_WEIGHTS,
    SOURCES,
    FusedScores,
    FusionModel,
    Profile,
)

__all__ = [
    "DEFAULT_MATCH_PRIOR",
    "DEFAULT_NO_MATCH_THRESHOLD",
    "DEFAULT_WEIGHTS",
    "SOURCES",
    "FusedScores",
    "FusionModel",
    "Profile",
]
