"""ResNet-50 and WideResNet-50-2 in plain torch, with torchvision's module names.

torchvision does not run here, so the bottleneck ResNet is written out (He et al., CVPR 2016).
The module names match torchvision's (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ...),
so a state dict saved from `torchvision.models.wide_resnet50_2` loads into `resnet(width=128)`.
Weights start with He (Kaiming normal, fan_out) initialization as torchvision's do: an
untrained network drawn from a seed is what the random-CNN pseudo-anomaly synthesis uses.
"""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, width: int):
        super().__init__()
        mid = planes * width // 64
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        return self.relu(self.bn3(self.conv3(h)) + idt)


class ResNet(nn.Module):
    """Bottleneck ResNet; `forward` returns the outputs of layer1..layer`depth` (strides 4, 8, 16, 32)."""

    def __init__(self, layers=(3, 4, 6, 3), width: int = 64, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c = 64
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(c, planes, 2 if (b == 0 and i > 0) else 1, width))
                c = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(c, 1000)  # unused; kept so torchvision state dicts load strictly
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, depth: int = 4) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(depth):
            x = getattr(self, f"layer{i + 1}")(x)
            outs.append(x)
        return outs


def resnet50(width: int = 64) -> ResNet:
    """ResNet-50 (width 64) or WideResNet-50-2 (width 128), He-initialized from torch's RNG."""
    return ResNet((3, 4, 6, 3), width)
