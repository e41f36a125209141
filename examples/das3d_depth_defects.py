"""DAS3D depth + RGB defects on one organized cloud, with numpy and with the torch batch path (~20 s on 2 CPU cores).

    python examples/das3d_depth_defects.py [OUT]    # OUT defaults to out/examples/das3d_depth_defects
    ANOMALYGEN_EXAMPLE_SMALL=1 python examples/das3d_depth_defects.py /tmp/x    # 128 px instead of 256 px
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from anomalygen.builds.settings import background_config, das3d_config
from anomalygen.depth import depth_defect, draw_params, remove_background, synthesize
from anomalygen.depth.synth import object_scale
from anomalygen.depth.synth_torch import depth_defect_batch
from anomalygen.recipes import load_recipe
from anomalygen.render import RenderConfig, render_sample

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples/das3d_depth_defects")
SMALL = os.environ.get("ANOMALYGEN_EXAMPLE_SMALL") == "1"

# An organized cloud as MVTec 3D-AD stores one: xyz (H, W, 3) in metres, zeros where nothing was measured,
# and an RGB image. Here a rendered procedural bagel; a real scan is read with anomalygen.io.open_dataset.
scan, _ = render_sample("bagel", "train", "good", 0, seed=0, cfg=RenderConfig(size=128 if SMALL else 256))
recipe = load_recipe("das3d")
cfg = das3d_config(recipe)  # typed settings: Perlin, kernel, p_z, t_h, anomaly ratio, beta, dropout
fg = remove_background(scan.xyz, background_config(recipe), np.random.default_rng(0))  # M_f: the object

# One anomalous pair (Eq. 1-8): depth moved along the camera rays, texture mixed in under the mask M*.
pair = synthesize(scan.xyz, scan.rgb, fg, cfg, np.random.default_rng(1))
print(f"mask covers {pair.anomaly_ratio:.2%} of the image after {pair.tries} draw(s); texture {pair.texture}")
print("drawn parameters:", pair.record())
OUT.mkdir(parents=True, exist_ok=True)
delta = (127.5 * (1 + pair.delta)).astype(np.uint8)  # Delta_Z in [-1, 1] as grey
Image.fromarray(np.hstack([scan.rgb, pair.rgb, np.dstack([pair.mask * 255] * 3), np.dstack([delta] * 3)])
                ).save(OUT / "rgb_augmented_mask_delta.png")

# The torch batch path: each item draws its parameters from its own Generator, exactly as the numpy path
# does, so a batch (on CPU or GPU) gives the numpy defects up to float32 round-off.
batch = 2 if SMALL else 8
params = [draw_params(np.random.default_rng(10 + i), cfg, fg.shape) for i in range(batch)]
z = torch.as_tensor(scan.xyz[..., 2]).expand(batch, -1, -1).contiguous()
fgs = torch.as_tensor(fg).expand(batch, -1, -1)
extent = object_scale(scan.xyz, fg)  # p_z and t_h are fractions of the object's size (its larger X/Y side)
device = "cuda" if torch.cuda.is_available() else "cpu"
z_a, _, masks, _ = depth_defect_batch(z.to(device), fgs.to(device), params, cfg, torch.full((batch,), extent))
for i, p in enumerate(params):
    one = depth_defect(scan.xyz[..., 2], fg, p, cfg, extent)
    same = (masks[i].cpu().numpy() == one.mask).mean()
    print(f"item {i}: mask {one.mask.mean():.2%} of the image, numpy and torch masks agree on {same:.2%} of pixels")
print(OUT)
