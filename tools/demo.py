"""The main job: build stock OpenMMLab models with mutual_mm imported.

For now this proves the repaired stack end to end: a stock Mask R-CNN (mmdet) and a
stock SlowFast (mmaction2) are built from their own configs, exactly as
``mim train`` would read them, and their parameter counts are printed.
"""
import argparse
import warnings

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import mutual_mm  # noqa: F401  (repairs the stack, registers components)
from mutual_mm.utils import build_model, load_config

STOCK = [
    ('mmdet', 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
    ('mmaction', 'mmaction::recognition/slowfast/'
     'slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.py'),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    for scope, config in STOCK:
        model = build_model(load_config(config, scope))
        params = sum(p.numel() for p in model.parameters())
        print(f'{type(model).__name__:<12} {params / 1e6:7.2f} M parameters  '
              f'({config})')


if __name__ == '__main__':
    main()
