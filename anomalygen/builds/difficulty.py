"""The difficulty dial: one recipe key, `difficulty`, that scales what makes a defect hard to see.

A level is a name (`easy`, `paper`, `hard`) or a number t in [0, 1]. t = 0 (`easy`, the default)
hands every recipe value over unchanged, so a build without the key, or with `easy`, writes the
same bytes as before the dial existed. t = 1 (`hard`) moves each knob to the end point below; a
value in between is the geometric interpolation easy * (hard / easy) ** t of each number (each end
of a [lo, hi] range separately), so equal steps of t shrink a size by equal factors.

The end points follow from what a point-feature detector (FPFH + PatchCore) can see, and from the
label rule (a point is anomalous iff it lies farther than tau from the original surface, or within
rim_distance of a cut's rim), which does not change with the level:

* displacement (bulge height, concavity depth): a few tau. The labels cover the region where the
  displacement exceeds tau, and the sizing keeps that region's area at the drawn target, so a low
  bump is a wide, flat one: its normals tilt by ~h / R, below the point spacing's resolution of
  curvature (0.025 diagonal mesh edges, ~0.007 diagonal point spacing at 8K-30K points).
* bending: a small angle with a wide transition band, so the bent part's normals turn by a few
  degrees and the hinge carries no crease. Points within ~tau / angle of the hinge (and most of
  the band) move less than tau, so the bent part grows against the labeled part (region_factor).
* hole, break: the smallest labeled area the ratio bounds allow comfortably (1.3-2.2 % of the
  surface), shallow pits (a few tau) instead of through-holes, and a break that is a shallow chip
  with a smooth face (the cutter sphere sits 0.65 radii outside the surface, so its face meets the
  surface at a shallow angle instead of a crease; low roughness).
* crack, scratch: narrow (about half a point spacing) and shallow (a few tau), with smooth
  (tapered) ends.

The anomaly ratio stays inside the recipe's `labels.anomaly_ratio` (1-10 %): every target ratio
here stays at >= 1.3 %, and the build's resize-and-retry loop sizes each defect to its target.
Values that are multiples of tau are written ("tau", lo, hi) and resolved with the recipe's tau.
"""

from __future__ import annotations

import math

from anomalygen.errors import AnomalygenError

# the named levels; `paper` was calibrated so that the BTF / PatchCore-FPFH baseline's per-class
# I-AUROC on the 40-class build lands near the published BTF-FPFH figures of Anomaly-ShapeNet's
# Table 3 (mean 0.528); README "Difficulty" and benchmarks/RESULTS.md give the calibration
LEVELS = {"easy": 0.0, "paper": 0.85, "hard": 1.0}
DEFAULT_LEVEL = "easy"

# the t = 1 end point of each knob that the dial moves, per defect type (fractions of the diagonal
# unless marked as multiples of tau); keys not listed keep the recipe's value at every level
HARD: dict[str, dict[str, tuple]] = {
    "bulge": {"height": ("tau", 2.5, 3.0)},
    "concavity": {"depth": ("tau", 2.5, 3.0)},
    "bending": {"angle_deg": (3.0, 5.0), "transition": (0.08, 0.14), "region_factor": (3.5,)},
    "hole": {"target_ratio": (0.013, 0.018), "depth": ("tau", 3.0, 4.0)},
    "break": {"target_ratio": (0.016, 0.022), "roughness": (0.01, 0.03), "offset": (0.65,)},
    "crack": {"target_ratio": (0.013, 0.016), "width": (0.003, 0.005), "depth": ("tau", 2.5, 4.0), "taper": (1.0,)},
    "scratch": {"target_ratio": (0.015, 0.02), "width": (0.004, 0.007), "depth": ("tau", 1.5, 2.0),
                "taper": (1.0,)},
}

# scanner noise, the same for normal and defective samples (train templates included): std along
# the normal of SCANNER_NOISE_HARD x tau at t = 1, linear in t (none at easy), clipped to 0.8 tau so
# that no point of a normal sample leaves the tau band (its labels stay 0 under the rule); real scans
# differ from each other and from the templates by such noise, which is what hides the subtlest defects
SCANNER_NOISE_HARD = 0.5


def scanner_sigma(t: float, tau: float) -> float:
    """Scanner noise std (fraction of the diagonal) at difficulty t."""
    return float(f"{SCANNER_NOISE_HARD * tau * t:.6g}") if t > 0 else 0.0


# DAS3D depth defects (depth-defects): p_z (Eq. 6) and t_h (Eq. 7) shrink by the same factor, so
# the refined mask M* = [p_z |Delta_Z| >= t_h] keeps its distribution (same anomaly ratios, same
# acceptance rate) while the depth change it marks gets smaller; at t = 1 it is a fifth
DEPTH_HARD_FACTOR = 0.2


def difficulty_value(level) -> float:
    """A level (name or number) -> t in [0, 1]; AnomalygenError names the accepted values."""
    if isinstance(level, str) and level.strip() in LEVELS:
        return LEVELS[level.strip()]
    if isinstance(level, (int, float)) and not isinstance(level, bool) and 0.0 <= float(level) <= 1.0:
        return float(level)
    raise AnomalygenError(f"recipe key 'difficulty': {level!r}; use {', '.join(LEVELS)} or a number in [0, 1]")


def recipe_difficulty(recipe: dict) -> float:
    """t of a recipe's top-level `difficulty` key (absent: the default level, `easy`)."""
    return difficulty_value(recipe.get("difficulty", DEFAULT_LEVEL))


def _toward(easy: float, hard: float, t: float) -> float:
    if easy <= 0 or hard <= 0:
        return easy + (hard - easy) * t
    return float(f"{easy * (hard / easy) ** t:.6g}")


def scale_defect(defect: str, params: dict, t: float, tau: float) -> dict:
    """One defect type's parameters (a recipe's `defects.<defect>` section, optionally with the
    label keys) at difficulty t. t = 0 returns them unchanged; `tau` resolves tau multiples."""
    out = dict(params)
    if t == 0.0:
        return out
    for key, end in HARD.get(defect, {}).items():
        if key not in out:
            continue
        hard = [tau * v for v in end[1:]] if end[0] == "tau" else list(end)
        v = out[key]
        if isinstance(v, (list, tuple)) and len(v) == 2:
            his = hard if len(hard) == 2 else hard * 2
            lo, hi = (_toward(float(e), float(h), t) for e, h in zip(v, his))
            out[key] = [min(lo, hi), max(lo, hi)]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = _toward(float(v), float(sum(hard) / len(hard)), t)
    return out


def scale_depth_magnitudes(p_z: tuple[float, float], t_h: float, t: float) -> tuple[tuple[float, float], float]:
    """DAS3D p_z range and t_h at difficulty t (both times DEPTH_HARD_FACTOR ** t)."""
    if t == 0.0:
        return tuple(p_z), t_h
    f = DEPTH_HARD_FACTOR ** t
    return (float(f"{p_z[0] * f:.6g}"), float(f"{p_z[1] * f:.6g}")), float(f"{t_h * f:.6g}")


def level_name(t: float) -> str:
    """The preset's name for t, else the number (for tables and manifests)."""
    for name, v in LEVELS.items():
        if math.isclose(v, t):
            return name
    return f"{t:g}"
