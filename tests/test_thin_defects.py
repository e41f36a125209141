"""Removal defects on a part thinner than they can show: a cut through a fin thinner than 2 tau
has no point farther than tau from the original surface, so only its rim band is labelled. Such
draws are redrawn elsewhere until `min_share_beyond_tau` of the labelled points lie beyond tau,
or the sample is refused with the reason; each written sample records its share."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from anomalygen.builds import shapenet as S
from anomalygen.mesh.labels import distance_to_surface
from anomalygen.recipes import load_recipe

FIN = 0.004  # fin thickness at unit diagonal: 1.3 tau, less than the 2 tau a cut needs to show inside


def propeller(root):
    """A block with four thin plates sticking out of its sides: the plates are most of the exposed
    surface, where cuts land."""
    body = trimesh.creation.box((0.2, 0.2, 0.2))
    plates = []
    for axis in range(2):
        for sign in (-1.0, 1.0):
            size = [0.25, 0.25, 0.0]
            size[axis] = 0.4
            size[2] = FIN * 1.3  # 1.3: the part's diagonal, so the plate is FIN thick at unit diagonal
            plate = trimesh.creation.box(size)
            shift = [0.0, 0.0, 0.0]
            shift[axis] = sign * 0.25
            plate.apply_translation(shift)
            plates.append(plate)
    part = trimesh.boolean.union([body, *plates], engine="manifold")
    d = root / "propeller"
    d.mkdir(parents=True)
    part.export(d / "propeller.stl")
    return root


def settings(root, need: float) -> S.Settings:
    r = load_recipe("anomaly-shapenet")
    for d in S.REMOVAL:
        r["defects"][d]["min_share_beyond_tau"] = need
    return S.settings_from_recipe(r, source=str(root))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = propeller(tmp_path_factory.mktemp("thin"))
    jobs = [S.Job("propeller", "test", i, d, f"{d}{i}") for d in ("break", "crack") for i in range(3)]
    out = {}
    for need in (0.0, 0.3):
        st = settings(root, need)
        out[need] = (st, [S.make_sample(st, j) for j in jobs])
    return out


def test_written_samples_carry_their_share_and_it_is_what_the_labels_say(runs):
    st, made = runs[0.3]
    mesh, _ = S.class_mesh(st, "propeller")
    tau = st.tau * float(np.linalg.norm(mesh.extents))
    for sample, rec, _ in made:
        assert rec.beyond_tau_share is not None and "beyond_tau_share" in rec.stored()
        if sample is None:
            assert "beyond tau" in rec.rejected or "outside" in rec.rejected
            continue
        lab = sample.labels.astype(bool)
        independent = float((distance_to_surface(sample.points[lab], mesh) > tau).mean())
        assert rec.beyond_tau_share == pytest.approx(independent, abs=2e-3)
        assert rec.beyond_tau_share >= 0.3


def test_without_the_bound_some_cuts_on_the_fins_are_only_their_rim(runs):
    """The thin part does produce rim-only cuts, so the bound above is what keeps them out."""
    _, made = runs[0.0]
    shares = [rec.beyond_tau_share for s, rec, _ in made if s is not None]
    assert min(shares) < 0.3


def test_the_rejection_line_counts_every_attempt(runs):
    st, made = runs[0.3]
    rejected = [rec for _, rec, _ in made if rec.rejected]
    assert rejected  # a part this thin leaves some draws with no place deep enough
    for rec in rejected:
        assert f"after {rec.attempts} attempts" in rec.rejected and rec.attempts == st.max_retries + 1
