"""3DzAL's training losses (Sec. 3.2-3.3).

Eq. 1, patch contrastive loss: each normal patch x_j is pulled toward the other normal patches
of the batch (P(x_j)) and pushed from its own pseudo-anomalous patches N(x_j) (16 per positive):
    L_con = mean_j  -1/|P(x_j)| sum_{p in P(x_j)} log( exp(cos(j,p)/T) / sum_{n in N(x_j)} exp(cos(j,n)/T) )
(averaged over the positives rather than summed, so the scale does not depend on the batch size).
Computed in float32 outside autocast: at T = 0.07 the logits reach 14, where bf16's 8-bit
mantissa leaves a relative error of ~3e-3 in every logit.
Eq. 2, representation disentanglement, over the normal patches with F their FPFH features:
    signed    L_rd = mean cos(F(x), E_theta(x))       (the paper's form)
    absolute  L_rd = mean |cos(F(x), E_theta(x))|
    squared   L_rd = mean cos(F(x), E_theta(x))^2
FPFH histograms are non-negative, so they all point into one orthant; the signed form is lowest
when E_theta points against all of them, i.e. at a negated FPFH, whose cells are then nearly
parallel to each other. The other two are lowest when E_theta is orthogonal to F, which leaves it
free in the other 32 directions (recipes/detectors.yaml says which is the default and why).
Eq. 3, BCE of the normalcy classifier C_w: normal patches class 0, pseudo anomalies class 1,
p = the softmax probability of class 1. With `balanced`, each class's terms are averaged
separately and the two means averaged, so the 16:1 pseudo-anomaly majority does not set the
classifier's prior (p = 0.5 is then the undecided patch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

RD_FORMS = ("signed", "absolute", "squared")


@dataclass(frozen=True)
class LossTerms:
    """The weights and forms of the training loss (the `zal3d:` recipe keys of the same names)."""

    w_con: float = 1.0
    w_rd: float = 100.0
    w_bce: float = 1.0
    temperature: float = 0.07
    rd_form: str = "signed"
    balanced: bool = True

    def __call__(self, network: nn.Module, batch: dict) -> dict:
        return zal3d_loss(network, batch, self)


def _full_precision(t: torch.Tensor) -> torch.Tensor:
    """t in float32, or as it is when already float32 or float64."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def contrastive_loss(pos: torch.Tensor, neg: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Eq. 1 in float32. pos (P,D) features of the normal patches; neg (P,Q,D) the Q negatives of each positive."""
    with torch.autocast(pos.device.type, enabled=False):
        p = F.normalize(_full_precision(pos), dim=-1)
        n = F.normalize(_full_precision(neg), dim=-1)
        sim_pp = p @ p.T / temperature                                   # (P,P)
        sim_pn = torch.einsum("pd,pqd->pq", p, n) / temperature          # (P,Q)
        log_den = torch.logsumexp(sim_pn, dim=1, keepdim=True)           # (P,1)
        others = ~torch.eye(len(p), dtype=torch.bool, device=p.device)
        if not bool(others.any()):
            raise ValueError("the contrastive loss needs at least two normal patches in a batch")
        terms = (sim_pp - log_den) * others
        return (-terms.sum(1) / others.sum(1)).mean()


def disentanglement_loss(fpfh: torch.Tensor, learned: torch.Tensor, form: str = "signed") -> torch.Tensor:
    """Eq. 2 in one of RD_FORMS (module doc): the mean over patches of cos, |cos| or cos^2 of F and E_theta."""
    cos = F.cosine_similarity(_full_precision(fpfh), _full_precision(learned), dim=-1, eps=1e-8)
    if form == "signed":
        return cos.mean()
    if form == "absolute":
        return cos.abs().mean()
    if form == "squared":
        return (cos ** 2).mean()
    raise ValueError(f"Eq. 2 form {form!r}: use one of {', '.join(RD_FORMS)}")


def normalcy_bce(logits: torch.Tensor, labels: torch.Tensor, balanced: bool = False) -> torch.Tensor:
    """Eq. 3: BCE on p = softmax(logits)[:, 1]; labels 1 = pseudo anomaly. balanced: the mean of the two
    classes' mean terms (each class weighs half, whatever their counts)."""
    log_p = F.log_softmax(_full_precision(logits), dim=-1)
    y = labels.float()
    terms = -(y * log_p[:, 1] + (1 - y) * log_p[:, 0])
    if not balanced:
        return terms.mean()
    return 0.5 * (terms[y == 1].mean() + terms[y == 0].mean())


def zal3d_loss(network: nn.Module, batch: dict, terms: LossTerms = LossTerms()) -> dict:
    """w_con L_con + w_rd L_rd + w_bce L_bce on a batch of items: "pos" (B,P,K,3), "neg" (B,P*Q,K,3),
    "fpfh" (B,P,33)."""
    pos, neg = batch["pos"], batch["neg"]
    b, p, k, _ = pos.shape
    q = neg.shape[1] // p
    patches = torch.cat([pos.reshape(b * p, k, 3), neg.reshape(b * p * q, k, 3)])
    feats, logits = network(patches)
    f_pos, f_neg = feats[:b * p], feats[b * p:].reshape(b * p, q, -1)
    con = contrastive_loss(f_pos, f_neg, terms.temperature)
    rd = disentanglement_loss(batch["fpfh"].reshape(b * p, -1), f_pos, terms.rd_form)
    labels = torch.cat([torch.zeros(b * p), torch.ones(b * p * q)]).to(logits.device)
    bce = normalcy_bce(logits, labels, terms.balanced)
    return {"loss": terms.w_con * con + terms.w_rd * rd + terms.w_bce * bce, "contrastive": con, "disentangle": rd,
            "bce": bce}
