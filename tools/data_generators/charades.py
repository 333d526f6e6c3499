"""A small Charades in the real format, generated (no download), for tests and demos.

:func:`make_charades` writes a ``Charades_v1_*.csv`` with all eleven official
columns, ``videos/{id}.mp4`` (cv2 ``mp4v``, read by decord) and, optionally, the
Charades_v1_rgb frame layout ``rawframes/{id}/{id}-000001.jpg``. While an action
of class ``c`` is annotated, a square of the class's own colour is drawn in the
class's own place, so the labels are learnable from the pixels.
"""
import csv
import os
import os.path as osp
import string
from typing import Sequence, Tuple

import cv2
import numpy as np

CHARADES_COLUMNS = ('id', 'subject', 'scene', 'quality', 'relevance', 'verified', 'script',
                    'objects', 'descriptions', 'actions', 'length')


def make_charades(out_dir: str, num_videos: int = 6, size: Tuple[int, int] = (64, 48),
                  duration: Tuple[float, float] = (2.0, 3.0), fps: int = 24,
                  action_classes: Sequence[int] = (0, 1, 2, 3), max_actions: int = 3,
                  num_empty: int = 1, with_frames: bool = False, seed: int = 0,
                  ann_file: str = 'Charades_v1_train.csv') -> str:
    """Write ``num_videos`` Charades-format videos and their CSV; return its path.

    Args:
        out_dir: root; writes ``ann_file``, ``videos/`` and (``with_frames``)
            ``rawframes/``.
        size: (width, height) of the videos.
        duration: range of the video lengths in seconds (the ``length`` column).
        fps: frame rate of the videos; the frames, when written, are the same
            frames (Charades_v1_rgb is 24 fps, :class:`CharadesDataset`'s default).
        action_classes: the classes (of 157) the actions are drawn from.
        max_actions: at most this many actions per video (at least one).
        num_empty: the last ``num_empty`` videos have no action (empty
            ``actions`` field, as some real Charades videos).
        seed: random seed; also makes the 5-character ids.
    """
    if not 0 <= num_empty <= num_videos:
        raise ValueError(f'num_empty={num_empty}: valid is 0..num_videos={num_videos}')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, 'videos'), exist_ok=True)
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    ids: list = []
    while len(ids) < num_videos:
        vid = ''.join(rng.choice(alphabet, 5))
        if vid not in ids:
            ids.append(vid)
    side = max(4, min(size) // 3)
    rows = []
    for i, vid in enumerate(ids):
        length = round(float(rng.uniform(*duration)), 2)
        actions = []
        if i < num_videos - num_empty:
            for _ in range(int(rng.integers(1, max_actions + 1))):
                cls = int(rng.choice(action_classes))
                start = round(float(rng.uniform(0, length * 0.7)), 2)
                end = round(min(length, start + float(rng.uniform(0.3, length))), 2)
                actions.append((cls, start, end))
        _write_video(out_dir, vid, actions, length, fps, size, side, with_frames, rng)
        rows.append(dict(
            id=vid, subject=f'S{i % 7:03d}', scene=('Kitchen', 'Bedroom', 'Living room')[i % 3],
            quality=int(rng.integers(1, 8)), relevance=int(rng.integers(1, 8)), verified='Yes',
            script='A person walks in, picks up a "cup", and sits down.',
            objects='cup;chair', descriptions='Someone, holding a cup; then "sitting".',
            actions=';'.join(f'c{c:03d} {s:.2f} {e:.2f}' for c, s, e in actions),
            length=f'{length:.2f}'))
    path = osp.join(out_dir, ann_file)
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=CHARADES_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_video(out_dir, vid, actions, length, fps, size, side, with_frames, rng):
    width, height = size
    num_frames = max(1, int(round(length * fps)))
    background = rng.integers(0, 90, size=3)
    writer = cv2.VideoWriter(osp.join(out_dir, 'videos', f'{vid}.mp4'),
                             cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if with_frames:
        os.makedirs(osp.join(out_dir, 'rawframes', vid), exist_ok=True)
    for k in range(num_frames):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = background
        for cls, start, end in actions:
            if start <= k / fps <= end:  # the class's square, in its place and colour
                x = (cls * 37) % max(1, width - side)
                y = (cls * 23) % max(1, height - side)
                colour = [(cls * 97 + 60 * j) % 256 for j in range(3)]
                frame[y:y + side, x:x + side] = np.maximum(colour, 100)
        writer.write(frame)
        if with_frames:
            cv2.imwrite(osp.join(out_dir, 'rawframes', vid, f'{vid}-{k + 1:06d}.jpg'), frame)
    writer.release()
