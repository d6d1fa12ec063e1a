"""Losses of section III-E as modules that return named terms."""

from faceanim.losses.animation import AnimationLoss, LossWeights
from faceanim.losses.contrastive import ContrastiveLoss
from faceanim.losses.directional import DirectionalLoss
from faceanim.losses.lpips import LPIPSLoss
from faceanim.losses.outside import OutsideRegionLoss
from faceanim.losses.regularization import FirstLastRegularization, PathRegularization, WRegularization
from faceanim.losses.target import TargetImageLoss, TargetLatentLoss

__all__ = ["AnimationLoss", "ContrastiveLoss", "DirectionalLoss", "FirstLastRegularization", "LPIPSLoss", "LossWeights",
           "OutsideRegionLoss", "PathRegularization", "TargetImageLoss", "TargetLatentLoss", "WRegularization"]
