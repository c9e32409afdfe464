"""mmlong: long-video understanding with vision-language models.

Importing the package is cheap: no decoder, encoder or model library is imported until a stage needs it.
"""

from mmlong.errors import MmlongError, VideoError
from mmlong.types import Answer, Frames, Query, Step, VideoMeta, VisualTokens

__all__ = ["Answer", "Frames", "MmlongError", "Query", "Step", "VideoError", "VideoMeta", "VisualTokens"]
__version__ = "0.1.0"
