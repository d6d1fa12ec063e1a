"""The paper's model (section III): recurrent motion generator M, mappers H_v and H_t, and their composition."""

from faceanim.motion.config import MotionConfig
from faceanim.motion.mappers import MotionMapper, VisualMapper
from faceanim.motion.model import LanguageGuidedAnimator, MotionOutput
from faceanim.motion.recurrent import RecurrentMotionGenerator

__all__ = ["LanguageGuidedAnimator", "MotionConfig", "MotionMapper", "MotionOutput", "RecurrentMotionGenerator",
           "VisualMapper"]
