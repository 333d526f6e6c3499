"""Export one subnet of a calibrated MutualNet checkpoint as a static model.

    python tools/export_subnet.py CONFIG CALIBRATED_CHECKPOINT --width 0.5 \
        [--resolution 160 | 1000x360] [--frames 5] [--proposals 300] --out-dir DIR \
        [--onnx [--onnx-part model|features] [--runtime NAME] [--onnx-eval] [--threads N]]

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
difference is printed; above the tolerance it fails). --runtime
onnxruntime-int8 also writes DIR/subnet_int8.onnx (static INT8 quantization,
calibrated on the config's calibration data; recognizers and classifiers).
--onnx-eval also evaluates the runtime's file in ONNX Runtime on the whole
test set with the config's metric (DIR/onnx_metrics.json). The work is done by
mutual_mm.deploy.deploy_subnet.
"""
import argparse
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy import Subnet  # noqa: E402
from mutual_mm.deploy.deploy_subnet import deploy_subnet, describe_check  # noqa: E402
from mutual_mm.deploy.runtimes import runtime_class, runtime_names  # noqa: E402
from mutual_mm.fileio import exit_on_sigterm  # noqa: E402
from mutual_mm.ops import parse_width  # noqa: E402
from mutual_mm.utils import load_config, parse_resolution, positive  # noqa: E402


def main(argv=None):
    file_runtimes = [n for n in runtime_names() if runtime_class(n).file_suffix]
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--width', type=parse_width, required=True,
                        help='a width, or stage widths joined by "-" (0.25-0.5-1-1-1-1)')
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
    parser.add_argument('--runtime', choices=file_runtimes, default='onnxruntime',
                        help='with --onnx: the registered runtime whose file is written '
                        'besides subnet.onnx, and --onnx-eval runs (default: onnxruntime, '
                        'subnet.onnx itself)')
    parser.add_argument('--onnx-eval', action='store_true',
                        help="with --onnx: evaluate the runtime's file in ONNX Runtime on "
                        "the test set with the config's metric")
    parser.add_argument('--threads', type=positive(int, 'number of threads'), default=None,
                        help="ONNX Runtime intra-op threads for --onnx-eval (default: every "
                        'CPU this process may use)')
    parser.add_argument('--num-batches', type=positive(int, 'number of batches'), default=10,
                        help='calibration batches of an INT8 runtime')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='use subnets outside what the checkpoint was trained on '
                        '(logged); refused otherwise')
    args = parser.parse_args(argv)
    exit_on_sigterm()  # an interrupted write removes its temporary file
    if (args.onnx_part or args.onnx_eval or args.runtime != 'onnxruntime') and not args.onnx:
        parser.error('--onnx-part, --runtime and --onnx-eval need --onnx')
    if args.threads is not None and not args.onnx_eval:
        parser.error('--threads needs --onnx-eval (it sets the threads ONNX Runtime '
                     'evaluates with)')
    cfg = load_config(args.config)
    subnet = Subnet(args.width, args.resolution, args.frames, args.proposals)
    exported, onnx = deploy_subnet(cfg, args.checkpoint, subnet, args.out_dir,
                                   args.runtime if args.onnx else None, args.onnx_part,
                                   args.onnx_eval, args.threads, args.allow_untrained,
                                   args.num_batches)
    params = sum(p.numel() for p in exported.static.parameters())
    print(f'exported {subnet.key}: {params / 1e6:.2f} M parameters\n'
          f'  weights: {exported.weights}\n  config:  {exported.config}')
    if onnx is None:
        return exported.weights, exported.config
    print(f'  onnx:    {onnx["path"]} ({onnx["part"]}; ONNX Runtime vs PyTorch on '
          f'{onnx["images"]} test inputs: {describe_check(onnx)})')
    if 'runtime_path' in onnx:
        print(f'  {args.runtime}: {onnx["runtime_path"]}')
    if 'metrics' in onnx:
        print(f'  {args.runtime} on the test set: ' +
              ', '.join(f'{k} {v:.4f}' for k, v in onnx['metrics'].items()
                        if isinstance(v, float)))
    return exported.weights, exported.config, onnx


if __name__ == '__main__':
    main()
