"""A small AVA (spatio-temporal action detection) set in the real AVA v2.1 format.

:func:`make_ava` writes, under ``out_dir`` (use ``data/ava`` and the stock AVA
configs read it unchanged)::

    rawframes/{video_id}/img_00001.jpg ...   30 fps frames, img_00001 = second 900
    annotations/ava_{train,val}_v2.1.csv
        video_id,timestamp,x1,y1,x2,y2,action_id,person_id (boxes normalized)
    annotations/ava_{train,val}_excluded_timestamps_v2.1.csv    video_id,timestamp
    annotations/ava_action_list_v2.1_for_activitynet_2018.pbtxt  the 60 evaluated classes
    annotations/ava_dense_proposals_{train,val}.FAIR.recall_93.9.pkl
        {'video_id,timestamp': ndarray (N, 5) of normalized x1,y1,x2,y2,score}

As in AVA, the frames of each 15-minute movie excerpt start at second 900
(``AVADataset``'s default ``timestamp_start``), annotated key frames are whole
seconds (AVA's 902..1798; here ``timestamps``), boxes are normalized to [0, 1],
every person has one pose action (ids 1..14) and up to two interactions, and the
excluded timestamps are key frames that were not annotated. Only the frames up to
the last timestamp's clip window are written, so the set stays small.
"""
import os
import os.path as osp
import pickle
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

AVA_FPS = 30
#: second of the movie shown by frame img_00001 (AVADataset's timestamp_start)
AVA_TIMESTAMP_START = 900
#: frames written after the last key frame: covers the clip windows of the stock
#: AVA configs (4x16, 8x8, 32x2 and their training jitter: at most +39 frames)
AVA_FRAME_MARGIN = 48

#: ids and names of the 60 classes evaluated on AVA v2.1 (ActivityNet 2018 list)
AVA_ACTIONS: Dict[int, str] = {
    1: 'bend/bow (at the waist)', 3: 'crouch/kneel', 4: 'dance', 5: 'fall down',
    6: 'get up', 7: 'jump/leap', 8: 'lie/sleep', 9: 'martial art', 10: 'run/jog',
    11: 'sit', 12: 'stand', 13: 'swim', 14: 'walk', 15: 'answer phone',
    17: 'carry/hold (an object)', 20: 'climb (e.g., a mountain)',
    22: 'close (e.g., a door, a box)', 24: 'cut', 26: 'dress/put on clothing',
    27: 'drink', 28: 'drive (e.g., a car, a truck)', 29: 'eat', 30: 'enter',
    34: 'hit (an object)', 36: 'lift/pick up', 37: 'listen (e.g., to music)',
    38: 'open (e.g., a window, a car door)', 41: 'play musical instrument',
    43: 'point to (an object)', 45: 'pull (an object)', 46: 'push (an object)',
    47: 'put down', 48: 'read', 49: 'ride (e.g., a bike, a car, a horse)',
    51: 'sail boat', 52: 'shoot', 54: 'smoke', 56: 'take a photo',
    57: 'text on/look at a cellphone', 58: 'throw', 59: 'touch (an object)',
    60: 'turn (e.g., a screwdriver)', 61: 'watch (e.g., TV)', 62: 'work on a computer',
    63: 'write', 64: 'fight/hit (a person)', 65: 'give/serve (an object) to (a person)',
    66: 'grab (a person)', 67: 'hand clap', 68: 'hand shake', 69: 'hand wave',
    70: 'hug (a person)', 72: 'kiss (a person)', 73: 'lift (a person)',
    74: 'listen to (a person)', 76: 'push (another person)',
    77: 'sing to (e.g., self, a person, a group)',
    78: 'take (an object) from (a person)',
    79: 'talk to (e.g., self, a person, a group)', 80: 'watch (a person)',
}
_POSE_IDS = [i for i in AVA_ACTIONS if i <= 14]
_INTERACTION_IDS = [i for i in AVA_ACTIONS if i > 14]


def ava_files(out_dir: str, version: str = 'v2.1') -> Dict[str, str]:
    """The paths :func:`make_ava` writes, named as the stock AVA configs' variables
    (``data_root``, ``ann_file_train``, ``exclude_file_val``, ``label_file``,
    ``proposal_file_train``, ...)."""
    anno = osp.join(out_dir, 'annotations')
    label_file = osp.join(anno, 'ava_action_list_v2.1_for_activitynet_2018.pbtxt')
    files = dict(data_root=osp.join(out_dir, 'rawframes'), anno_root=anno,
                 label_file=label_file)
    for split in ('train', 'val'):
        files[f'ann_file_{split}'] = osp.join(anno, f'ava_{split}_{version}.csv')
        files[f'exclude_file_{split}'] = osp.join(
            anno, f'ava_{split}_excluded_timestamps_{version}.csv')
        files[f'proposal_file_{split}'] = osp.join(
            anno, f'ava_dense_proposals_{split}.FAIR.recall_93.9.pkl')
    return files


def _random_box(rng: np.random.Generator) -> np.ndarray:
    w, h = rng.uniform(0.25, 0.5), rng.uniform(0.45, 0.9)
    x1, y1 = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    return np.round(np.array([x1, y1, x1 + w, y1 + h]), 3)


def _write_frames(frame_dir: str, num_frames: int, size: Tuple[int, int],
                  boxes_at: List[List[np.ndarray]], colors: np.ndarray,
                  frame_of_key: List[int], rng: np.random.Generator) -> None:
    """Noisy background with each person a filled rectangle at the box of the
    nearest key frame."""
    width, height = size
    os.makedirs(frame_dir, exist_ok=True)
    background = rng.integers(40, 200, size=3)
    key_frames = np.asarray(frame_of_key)
    for index in range(1, num_frames + 1):
        img = np.clip(background + rng.normal(0, 10, (height, width, 3)), 0, 255)
        img = img.astype(np.uint8)
        nearest = int(np.abs(key_frames - index).argmin())
        for person, box in enumerate(boxes_at[nearest]):
            x1, y1, x2, y2 = (box * [width, height, width, height]).round().astype(int)
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1),
                          tuple(int(c) for c in colors[person]), thickness=-1)
        cv2.imwrite(osp.join(frame_dir, f'img_{index:05d}.jpg'), img)


def make_ava(out_dir: str, num_videos: int = 2, timestamps: Sequence[int] = (902, 903),
             num_persons: int = 2, size: Tuple[int, int] = (64, 48), seed: int = 0,
             version: str = 'v2.1') -> Dict[str, str]:
    """Write a small AVA set in the real format under ``out_dir``; returns
    :func:`ava_files` (the paths, keyed as the stock configs' variables).

    Args:
        out_dir (str): root (``data/ava`` is where the stock configs look).
        num_videos (int): videos per split (train and val have different videos).
        timestamps (Sequence[int]): annotated key frames (seconds, >= 901) of
            every video; the second after the last is listed as excluded.
        num_persons (int): persons per video (each annotated at every key frame).
        size (tuple): frame size (w, h).
        seed (int): random seed; the same arguments write the same files.
        version (str): the version in the csv names (``v2.1`` or ``v2.2``).
    """
    timestamps = sorted({int(t) for t in timestamps})
    if not timestamps or timestamps[0] <= AVA_TIMESTAMP_START:
        raise ValueError(f'timestamps {timestamps}: give seconds after '
                         f'{AVA_TIMESTAMP_START} (AVA annotates 902..1798)')
    rng = np.random.default_rng(seed)
    files = ava_files(out_dir, version)
    os.makedirs(files['anno_root'], exist_ok=True)
    frame_of_key = [(t - AVA_TIMESTAMP_START) * AVA_FPS + 1 for t in timestamps]
    num_frames = frame_of_key[-1] + AVA_FRAME_MARGIN
    alphabet = np.array(list('abcdefghijklmnopqrstuvwxyz'
                             'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-'))
    for split in ('train', 'val'):
        rows, excluded, proposals = [], [], {}
        for _ in range(num_videos):
            video_id = ''.join(rng.choice(alphabet[:62], 1).tolist()
                               + rng.choice(alphabet, 10).tolist())  # YouTube-like id
            colors = rng.integers(0, 256, size=(num_persons, 3))
            boxes_at = []
            for t in timestamps + [timestamps[-1] + 1]:
                boxes = [_random_box(rng) for _ in range(num_persons)]
                key = f'{video_id},{t:04d}'
                dets = [np.append(np.clip(b + rng.normal(0, 0.01, 4), 0, 1),
                                  rng.uniform(0.9, 1.0)) for b in boxes]
                dets.append(np.append(_random_box(rng), rng.uniform(0.1, 0.6)))
                proposals[key] = np.stack(dets).round(6)
                if t not in timestamps:  # not annotated: listed as excluded
                    excluded.append(key)
                    continue
                boxes_at.append(boxes)
                for person, box in enumerate(boxes):
                    actions = [int(rng.choice(_POSE_IDS))] + sorted(
                        int(a) for a in rng.choice(_INTERACTION_IDS,
                                                   int(rng.integers(0, 3)), replace=False))
                    for action in actions:
                        rows.append(f'{key},{",".join(f"{v:.3f}" for v in box)},'
                                    f'{action},{person}')
            _write_frames(osp.join(files['data_root'], video_id), num_frames, size,
                          boxes_at, colors, frame_of_key, rng)
        with open(files[f'ann_file_{split}'], 'w') as f:
            f.write('\n'.join(rows) + '\n')
        with open(files[f'exclude_file_{split}'], 'w') as f:
            f.write('\n'.join(excluded) + '\n')
        with open(files[f'proposal_file_{split}'], 'wb') as f:
            pickle.dump(proposals, f)
    with open(files['label_file'], 'w') as f:
        for action_id, name in AVA_ACTIONS.items():
            f.write(f'item {{\n  name: "{name}"\n  id: {action_id}\n}}\n')
    return files
