"""Calibrate BN statistics of a MutualNet checkpoint for each subnet.

    python tools/calibrate_bn.py CONFIG CHECKPOINT --out CALIBRATED \
        [--widths 1.0 0.8 0.6] [--resolutions 224 160 | 1000x600 1000x360] \
        [--frames 8 5 3] [--num-batches 10] [--batch-size N] [--exact]

Defaults: every trained subnet (the MutualLearningHook's width grid x the
MultiResolution scales [x frames] of CONFIG; for SlowFast, whose backbone makes
the Slow pathway's views, their Slow input sizes x Slow frame counts). Then test
any of them with ``mim test ... --cfg-options`` and a ``CalibratedSubnetHook``
(see the README).
"""
import argparse
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import mutual_mm  # noqa: E402,F401
from mutual_mm.deploy import calibrate_checkpoint, trained_subnets  # noqa: E402
from mutual_mm.fileio import exit_on_sigterm  # noqa: E402
from mutual_mm.ops import parse_width  # noqa: E402
from mutual_mm.utils import load_config, parse_resolution  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', required=True, help='calibrated checkpoint to write')
    parser.add_argument('--widths', type=parse_width, nargs='+',
                        help='widths, or stage widths joined by "-" (0.25-0.5-1-1-1-1)')
    parser.add_argument('--resolutions', type=parse_resolution, nargs='+')
    parser.add_argument('--frames', type=int, nargs='+')
    parser.add_argument('--num-batches', type=int, default=10)
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--exact', action='store_true',
                        help='one pass per BN depth: every layer gets the statistics of '
                        'the whole calibration set, however it is batched (5-18x the '
                        'time; see mutual_mm/deploy/bn_calibration.py)')
    parser.add_argument('--work-dir', default=None,
                        help='where the Runner logs (default: next to --out)')
    parser.add_argument('--allow-untrained', action='store_true',
                        help='use subnets outside what the checkpoint was trained on '
                        '(logged); refused otherwise')
    args = parser.parse_args(argv)
    exit_on_sigterm()  # an interrupted write removes its temporary file
    cfg = load_config(args.config)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or args.out + '.work'
    subnets = trained_subnets(cfg, args.widths, args.resolutions, args.frames,
                              checkpoint=args.checkpoint)
    calibration = calibrate_checkpoint(cfg, args.checkpoint, args.out, subnets,
                                       args.num_batches, args.batch_size,
                                       args.allow_untrained, args.exact)
    print(f'\ncalibrated {len(subnets)} subnets '
          f'({len(calibration)} in the checkpoint) -> {args.out}')


if __name__ == '__main__':
    main()
