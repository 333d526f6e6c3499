"""Converters of checkpoints trained elsewhere into this package's slim models.

Imported on demand (``tools/convert_checkpoint.py``, tests), not by
``mutual_mm`` itself: nothing here registers a component.
"""
from .slimmable_networks import (ARCHS, FORMS, SOURCES, ConversionResult,
                                 convert_slimmable_checkpoint, load_source_state_dict)

__all__ = ['ARCHS', 'FORMS', 'SOURCES', 'ConversionResult', 'convert_slimmable_checkpoint',
           'load_source_state_dict']
