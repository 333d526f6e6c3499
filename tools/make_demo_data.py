"""Generate the demo's small datasets in real formats (no download).

    python tools/make_demo_data.py [--out data/mutual_demo] [--images 240 60]
        [--image-size 128x96] [--videos 192 64] [--video-size 64x48] [--no-rings]
        [--seed 0]

Writes OUT/shapes/{train,val}/annotations.json (COCO instance segmentation:
rectangles, ellipses and triangles with polygon masks on noisy backgrounds) and
OUT/motion/{train,val}/videos.txt (Kinetics video list of .mp4 clips whose class
is a small square's or ring's shape and the direction it moves in). Re-running
with the same arguments keeps existing files.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tools.data_generators.shapes_and_motion import make_coco_shapes, make_motion_videos  # noqa: E402
from mutual_mm.utils import parse_resolution  # noqa: E402


def _up_to_date(stamp: str, spec: dict) -> bool:
    if not osp.isfile(stamp):
        return False
    with open(stamp) as f:
        return json.load(f) == spec


def make_demo_data(out: str, images=(240, 60), image_size=(128, 96), videos=(192, 64),
                   video_size=(64, 48), rings: bool = True, seed: int = 0) -> dict:
    """Generate (or reuse) both datasets; returns the annotation paths."""
    paths = {}
    spec = dict(images=list(images), image_size=list(image_size), videos=list(videos),
                video_size=list(video_size), rings=rings, seed=seed)
    for split, n_img, n_vid, split_seed in (('train', images[0], videos[0], seed),
                                            ('val', images[1], videos[1], seed + 1)):
        shapes = osp.join(out, 'shapes', split)
        motion = osp.join(out, 'motion', split)
        paths[f'shapes_{split}'] = osp.join(shapes, 'annotations.json')
        paths[f'motion_{split}'] = osp.join(motion, 'videos.txt')
        stamp = osp.join(out, f'.{split}.json')
        if _up_to_date(stamp, spec):
            continue
        make_coco_shapes(shapes, num_images=n_img, size=tuple(image_size), seed=split_seed)
        make_motion_videos(motion, num_videos=n_vid, size=tuple(video_size),
                           num_frames=32, seed=split_seed, rings=rings)
        with open(stamp, 'w') as f:
            json.dump(spec, f)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/mutual_demo')
    parser.add_argument('--images', type=int, nargs=2, default=[240, 60],
                        metavar=('TRAIN', 'VAL'))
    parser.add_argument('--image-size', type=parse_resolution, default=(128, 96))
    parser.add_argument('--videos', type=int, nargs=2, default=[192, 64],
                        metavar=('TRAIN', 'VAL'))
    parser.add_argument('--video-size', type=parse_resolution, default=(64, 48))
    parser.add_argument('--no-rings', dest='rings', action='store_false',
                        help='videos of one large square, class = direction only (an easy '
                             'task); by default a small square or ring, class = shape x '
                             'direction')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_demo_data(args.out, args.images, args.image_size, args.videos,
                           args.video_size, args.rings, args.seed)
    for name, path in paths.items():
        print(f'{name:<14} {path}')


if __name__ == '__main__':
    main()
