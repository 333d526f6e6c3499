"""Export one subnet of a calibrated MutualNet checkpoint as a static model.

    python tools/export_subnet.py CONFIG CALIBRATED_CHECKPOINT --width 0.5 \
        [--resolution 160 | 1000x360] [--frames 5] [--proposals 300] --out-dir DIR \
        [--onnx [--onnx-part model|features] [--onnx-eval] [--threads N]]

Writes DIR/subnet.pth (weights sliced to the reduced shapes, the subnet's
calibrated BN statistics in place) and DIR/subnet_config.py, which builds that
static network (``MutualStaticSubnet``) with the test pipeline at the
subnet's input size (for SlowFast: the full clip, and the backbone's
``slow_input`` set to the subnet's Slow size and frames; for a two-stage
detector its proposals in ``test_cfg``): ``mim test mmdet|mmaction2
DIR/subnet_config.py --checkpoint DIR/subnet.pth`` tests it.

With --onnx also DIR/subnet.onnx: standard ONNX operators only, for plain ONNX
Runtime (no PyTorch, mmcv or this package). Recognizers and classifiers up to
the class scores; detectors whole (RPN, RoI heads, NMS, mask pasting; through
MMDeploy 1.3.1) or, with --onnx-part features, backbone + neck. It is run in
ONNX Runtime on the first test batch and compared with PyTorch (the
difference is printed; above the tolerance it fails). --onnx-eval also
evaluates the file in ONNX Runtime on the whole test set with the config's
metric (detectors; DIR/onnx_metrics.json). See mutual_mm/deploy/onnx_export.py.
"""
import argparse
import json
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy import Subnet  # noqa: E402
from mutual_mm.deploy.export import export_subnet_files  # noqa: E402
from mutual_mm.fileio import exit_on_sigterm, write_text  # noqa: E402
from mutual_mm.utils import load_config, parse_resolution, positive  # noqa: E402


def describe_check(check: dict) -> str:
    if 'max_abs_diff' in check:
        return (f'max |diff| {check["max_abs_diff"]:.2g}, {check["max_rel_diff"]:.2g} of '
                'the largest output')
    parts = [f'{check["detections"]} detections, same counts: {check["same_counts"]}',
             f'labels equal: {check["labels_equal"]}']
    parts += [f'{key} {check[key]:.2g}' for key in ('box_px', 'score', 'mask_pixels')
              if key in check]
    return ', '.join(parts)


def evaluate_onnx(exported, onnx_path: str, threads) -> dict:
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner

    from mutual_mm.deploy.onnx_export import evaluate_onnx_detector, uses_mmdeploy
    if not uses_mmdeploy(exported.static, 'model'):
        raise SystemExit('--onnx-eval evaluates whole detectors (the only family whose '
                         'ONNX outputs need their own post-processing); '
                         f'{type(exported.static).__name__} is not one')
    loader = Runner.build_dataloader(exported.cfg.test_dataloader, seed=0)
    return evaluate_onnx_detector(onnx_path, exported.static, loader,
                                  Evaluator(exported.cfg.test_evaluator), threads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--width', type=float, required=True)
    parser.add_argument('--resolution', type=parse_resolution)
    parser.add_argument('--frames', type=int)
    parser.add_argument('--proposals', type=int,
                        help='RPN proposals kept per image (two-stage detectors; default: '
                        "the config's test_cfg.rpn.max_per_img)")
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--onnx', action='store_true',
                        help='also write DIR/subnet.onnx (standard operators) and check it '
                        'in ONNX Runtime against PyTorch on the first test batch')
    parser.add_argument('--onnx-part', choices=('model', 'features'),
                        help="with --onnx: 'model' (the whole model; the default) or "
                        "'features' (backbone + neck; detectors)")
    parser.add_argument('--onnx-eval', action='store_true',
                        help='with --onnx: evaluate the ONNX file in ONNX Runtime on the '
                        "test set with the config's metric (detectors)")
    parser.add_argument('--threads', type=positive(int, 'number of threads'), default=None,
                        help="ONNX Runtime intra-op threads for --onnx-eval (default: its "
                        'own)')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='use subnets outside what the checkpoint was trained on '
                        '(logged); refused otherwise')
    args = parser.parse_args(argv)
    exit_on_sigterm()  # an interrupted write removes its temporary file
    if (args.onnx_part or args.onnx_eval) and not args.onnx:
        parser.error('--onnx-part and --onnx-eval need --onnx')
    if args.threads is not None and not args.onnx_eval:
        parser.error('--threads needs --onnx-eval (it sets the threads ONNX Runtime '
                     'evaluates with)')
    cfg = load_config(args.config)
    subnet = Subnet(args.width, args.resolution, args.frames, args.proposals)
    exported = export_subnet_files(cfg, args.checkpoint, subnet, args.out_dir,
                                   args.allow_untrained)
    params = sum(p.numel() for p in exported.static.parameters())
    print(f'exported {subnet.key}: {params / 1e6:.2f} M parameters\n'
          f'  weights: {exported.weights}\n  config:  {exported.config}')
    if not args.onnx:
        return exported.weights, exported.config
    from mutual_mm.deploy.onnx_export import write_checked_onnx
    onnx = write_checked_onnx(exported.static, exported.examples, args.out_dir,
                              args.onnx_part)
    print(f'  onnx:    {onnx["path"]} ({onnx["part"]}; ONNX Runtime vs PyTorch on '
          f'{onnx["images"]} test inputs: {describe_check(onnx)})')
    if args.onnx_eval:
        metrics = evaluate_onnx(exported, onnx['path'], args.threads)
        onnx['metrics'] = metrics
        write_text(osp.join(args.out_dir, 'onnx_metrics.json'), json.dumps(
            dict(subnet=subnet.as_dict(), onnx=onnx['path'], metrics=metrics), indent=1))
        print('  ONNX Runtime on the test set: ' +
              ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()
                        if isinstance(v, float)))
    return exported.weights, exported.config, onnx


if __name__ == '__main__':
    main()
