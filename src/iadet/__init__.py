"""iadet: hard examples in feature space for torchvision detectors.

Inverted Attention (Huang, Ke, Huang) and the A-Fast-RCNN adversaries (Wang, Shrivastava,
Gupta) as drop-in training methods for torchvision's two-stage detectors.
"""

__version__ = "0.1.0"
