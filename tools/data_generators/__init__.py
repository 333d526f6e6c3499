"""Small data sets in the real formats, generated (no download): the demo's
(tools/make_demo_data.py) and the tests'. Not part of the library: nothing in
``mutual_mm`` imports them."""
from .ava import AVA_ACTIONS, ava_files, make_ava
from .charades import CHARADES_COLUMNS, make_charades
from .shapes_and_motion import (MOTION_CLASSES, SHAPE_CLASSES, make_coco_shapes,
                                make_motion_videos)

__all__ = ['AVA_ACTIONS', 'ava_files', 'make_ava', 'CHARADES_COLUMNS', 'make_charades',
           'MOTION_CLASSES', 'SHAPE_CLASSES', 'make_coco_shapes', 'make_motion_videos']
