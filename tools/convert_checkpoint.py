"""Convert a slimmable-networks (US-Net, S-Net) or MutualNet ImageNet checkpoint into
this package's slim model.

    python tools/convert_checkpoint.py SRC DST --from usnet|snet|mutualnet \
        --arch mobilenet_v1|mobilenet_v2|resnet50 [--form classifier|backbone] \
        [--widths 1.0 0.5 ...] [--source-widths 0.25 0.275 ... 1.0]

SRC: the released .pt (the model zoo's *.pt.zip unzipped) or a training
checkpoint's ``{'model': state_dict}``. DST gets the ``MutualImageClassifier``
names (``--form classifier``, the default: ``backbone.*`` and ``head.fc.*``; a
detection config loads the backbone with ``init_cfg=dict(type='Pretrained',
prefix='backbone.', checkpoint=DST)``), or the bare backbone's (``--form
backbone``). US-Net's per-width BN statistics are stored as calibrated subnets
(width, 224 px) in the classifier form. Widths whose channel counts differ
between the source and this package are refused, and listed. See
docs/pretraining.md and mutual_mm/deploy/converters/slimmable_networks.py.
"""
import argparse
import os.path as osp
import sys
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import mutual_mm  # noqa: E402,F401
from mutual_mm.fileio import exit_on_sigterm, same_file, save_torch  # noqa: E402
from mutual_mm.deploy.converters import (ARCHS, FORMS, SOURCES,  # noqa: E402
                                         convert_slimmable_checkpoint, load_source_state_dict)
from mutual_mm.utils import positive  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='the source checkpoint')
    parser.add_argument('dst', help='the converted checkpoint to write')
    parser.add_argument('--from', dest='source', required=True, choices=sorted(SOURCES))
    parser.add_argument('--arch', required=True, choices=ARCHS)
    parser.add_argument('--form', default='classifier', choices=FORMS,
                        help='classifier: MutualImageClassifier names, head and US-Net\'s '
                        'per-width statistics included (default); backbone: the bare '
                        'backbone\'s names, full-width statistics')
    parser.add_argument('--widths', type=positive(float, 'width'), nargs='+',
                        help='widths to convert (default: every width of the source that '
                        'converts exactly; 1.0 always)')
    parser.add_argument('--source-widths', type=positive(float, 'width'), nargs='+',
                        help='the width_mult_list the file was written with (default: that '
                        'of the released files)')
    args = parser.parse_args(argv)
    exit_on_sigterm()  # an interrupted write removes its temporary file
    if same_file(args.src, args.dst):
        raise SystemExit(f'convert_checkpoint: {args.dst} is the source file; write the '
                         'converted checkpoint to another file')
    try:
        state = load_source_state_dict(args.src)
        result = convert_slimmable_checkpoint(state, args.source, args.arch, args.form,
                                              args.widths, args.source_widths)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'convert_checkpoint: {err}') from None
    save_torch(result.checkpoint, args.dst)
    print(result.summary())
    print(f'model it loads into: {result.model}')
    print(f'-> {osp.abspath(args.dst)}')


if __name__ == '__main__':
    sys.exit(main())
