"""3DzAL's training losses (Sec. 3.2-3.3).

Eq. 1, patch contrastive loss: each normal patch x_j is pulled toward the other normal patches
of the batch (P(x_j)) and pushed from its own pseudo-anomalous patches N(x_j) (16 per positive):
    L_con = mean_j  -1/|P(x_j)| sum_{p in P(x_j)} log( exp(cos(j,p)/T) / sum_{n in N(x_j)} exp(cos(j,n)/T) )
(averaged over the positives rather than summed, so the scale does not depend on the batch size).
Eq. 2, representation disentanglement: L_rd = mean cos(F(x), E_theta(x)) over the normal
patches, F their FPFH features.
Eq. 3, BCE of the normalcy classifier C_w: normal patches class 0, pseudo anomalies class 1,
p = the softmax probability of class 1.
The weights ride in the batch ("w_con", "w_rd", "w_bce") so the loss stays one module-level function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def contrastive_loss(pos: torch.Tensor, neg: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Eq. 1. pos (P,D) features of the normal patches; neg (P,Q,D) the Q negatives of each positive."""
    p = F.normalize(pos, dim=-1)
    n = F.normalize(neg, dim=-1)
    sim_pp = p @ p.T / temperature                                   # (P,P)
    sim_pn = torch.einsum("pd,pqd->pq", p, n) / temperature          # (P,Q)
    log_den = torch.logsumexp(sim_pn, dim=1, keepdim=True)           # (P,1)
    others = ~torch.eye(len(p), dtype=torch.bool, device=p.device)
    if not bool(others.any()):
        raise ValueError("the contrastive loss needs at least two normal patches in a batch")
    terms = (sim_pp - log_den) * others
    return (-terms.sum(1) / others.sum(1)).mean()


def disentanglement_loss(fpfh: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean cosine similarity of FPFH and learned features (same dimension)."""
    return F.cosine_similarity(fpfh, learned, dim=-1, eps=1e-8).mean()


def normalcy_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 3: BCE on p = softmax(logits)[:, 1]; labels 1 = pseudo anomaly."""
    log_p = F.log_softmax(logits, dim=-1)
    y = labels.float()
    return -(y * log_p[:, 1] + (1 - y) * log_p[:, 0]).mean()


def zal3d_loss(network: nn.Module, batch: dict) -> dict:
    """w_con L_con + w_rd L_rd + w_bce L_bce on a batch of items: "pos" (B,P,K,3), "neg" (B,P*Q,K,3),
    "fpfh" (B,P,33), weights (B,) (the same in every item)."""
    pos, neg = batch["pos"], batch["neg"]
    b, p, k, _ = pos.shape
    q = neg.shape[1] // p
    patches = torch.cat([pos.reshape(b * p, k, 3), neg.reshape(b * p * q, k, 3)])
    feats, logits = network(patches)
    f_pos, f_neg = feats[:b * p], feats[b * p:].reshape(b * p, q, -1)
    w_con, w_rd, w_bce = (float(batch[key][0]) for key in ("w_con", "w_rd", "w_bce"))
    con = contrastive_loss(f_pos, f_neg, float(batch["temperature"][0]))
    rd = disentanglement_loss(batch["fpfh"].reshape(b * p, -1), f_pos)
    labels = torch.cat([torch.zeros(b * p), torch.ones(b * p * q)]).to(logits.device)
    bce = normalcy_bce(logits, labels)
    return {"loss": w_con * con + w_rd * rd + w_bce * bce, "contrastive": con, "disentangle": rd, "bce": bce}
