"""Evaluation protocols: the Charades mAP metric."""
from .charades_map import CharadesMAP

__all__ = ['CharadesMAP']
