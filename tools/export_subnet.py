"""Export one subnet of a calibrated MutualNet checkpoint as a static model.

    python tools/export_subnet.py CONFIG CALIBRATED_CHECKPOINT --width 0.5 \
        [--resolution 160 | 1000x360] [--frames 5] --out-dir DIR [--onnx]

Writes DIR/subnet.pth (weights sliced to the reduced shapes, the subnet's
calibrated BN statistics in place) and DIR/subnet_config.py, which builds that
static network (``MutualStaticSubnet``) with the test pipeline at the
subnet's input size (for SlowFast: the full clip, and the backbone's
``slow_input`` set to the subnet's Slow size and frames): ``mim test
mmdet|mmaction2 DIR/subnet_config.py --checkpoint DIR/subnet.pth`` tests it.

With --onnx also DIR/subnet.onnx, which needs neither this package nor mmcv:
recognizers and classifiers up to the class scores, detectors backbone + neck
(their heads need mmcv's RoIAlign/NMS, custom ONNX operators); run in ONNX
Runtime on one test input and compared with PyTorch (the difference is printed;
above 1e-4 of the largest output it fails). See mutual_mm/deploy/onnx_export.py.
"""
import argparse
import copy
import os
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy import CALIBRATION_KEY, Subnet, apply_subnet  # noqa: E402
from mutual_mm.deploy.calibrated_subnet_hook import apply_calibrated_stats  # noqa: E402
from mutual_mm.deploy.export import export_subnet  # noqa: E402
from mutual_mm.engine.trained_space import TrainedSpace, check_trained  # noqa: E402
from mutual_mm.deploy import apply_subnet_to_cfg  # noqa: E402
from mutual_mm.utils import load_config, parse_resolution  # noqa: E402

TRAIN_ONLY_HOOKS = ('MutualLearningHook', 'CalibratedSubnetHook')


def export(cfg, checkpoint: str, subnet: Subnet, out_dir: str,
           allow_untrained: bool = False):
    os.makedirs(out_dir, exist_ok=True)
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = osp.join(out_dir, 'work')
    cfg.load_from = None
    runner = Runner.from_cfg(copy.deepcopy(cfg))
    ckpt = runner.load_checkpoint(checkpoint, map_location='cpu')
    check_trained([subnet], TrainedSpace.from_checkpoint(ckpt), allow_untrained)
    apply_calibrated_stats(runner.model, ckpt.get(CALIBRATION_KEY), subnet, checkpoint)
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)
    apply_subnet(runner.model, loader.dataset, subnet)
    inputs = runner.model.data_preprocessor(next(iter(loader)), False)['inputs']
    input_shape = (1, ) + tuple(inputs.shape[1:])
    static = export_subnet(runner.model, subnet.width, input_shape)

    weights = osp.join(out_dir, 'subnet.pth')
    torch.save(dict(state_dict=static.state_dict(),
                    meta=dict(subnet=subnet.as_dict(), source=checkpoint)), weights)
    apply_subnet_to_cfg(cfg, subnet)  # the test pipeline, or SlowFast's slow_input
    cfg.model = dict(type='MutualStaticSubnet', model=cfg.model, width=subnet.width,
                     input_shape=list(input_shape))
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                        if h.get('type') not in TRAIN_ONLY_HOOKS]
    cfg.load_from = weights
    cfg.pop('work_dir', None)
    config_path = osp.join(out_dir, 'subnet_config.py')
    cfg.dump(config_path)
    return weights, config_path, static, inputs[:1]


def export_to_onnx(static, inputs, out_dir: str) -> dict:
    """DIR/subnet.onnx from the static subnet, checked in ONNX Runtime against
    PyTorch on ``inputs`` (one test input); a difference above the tolerance
    fails."""
    from mutual_mm.deploy.onnx_export import (RELATIVE_TOLERANCE, check_onnx,
                                              export_onnx, exported_part)
    part = exported_part(static)
    path = export_onnx(part, tuple(inputs.shape), osp.join(out_dir, 'subnet.onnx'))
    check = check_onnx(part, path, inputs)
    if not check['within_tolerance']:
        raise RuntimeError(
            f'{path}: ONNX Runtime differs from PyTorch by {check["max_abs_diff"]:.3g} '
            f'({check["max_rel_diff"]:.3g} of the largest output; tolerance '
            f'{RELATIVE_TOLERANCE:g})')
    return dict(path=path, **check)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--width', type=float, required=True)
    parser.add_argument('--resolution', type=parse_resolution)
    parser.add_argument('--frames', type=int)
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--onnx', action='store_true',
                        help='also write DIR/subnet.onnx (recognizers/classifiers: up to the '
                        'class scores; detectors: backbone + neck) and check it in ONNX '
                        'Runtime against PyTorch on a test input')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='use subnets outside what the checkpoint was trained on '
                        '(logged); refused otherwise')
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    subnet = Subnet(args.width, args.resolution, args.frames)
    weights, config_path, static, example = export(cfg, args.checkpoint, subnet,
                                                   args.out_dir, args.allow_untrained)
    params = sum(p.numel() for p in static.parameters())
    print(f'exported {subnet.key}: {params / 1e6:.2f} M parameters\n'
          f'  weights: {weights}\n  config:  {config_path}')
    if args.onnx:
        onnx = export_to_onnx(static, example, args.out_dir)
        print(f'  onnx:    {onnx["path"]} (input {tuple(example.shape)}; ONNX Runtime vs '
              f'PyTorch: max |diff| {onnx["max_abs_diff"]:.2g}, '
              f'{onnx["max_rel_diff"]:.2g} of the largest output)')
        return weights, config_path, onnx
    return weights, config_path


if __name__ == '__main__':
    main()
