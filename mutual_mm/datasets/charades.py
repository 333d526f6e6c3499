"""Charades (Sigurdsson et al., 2016) for mmaction2: the v1 annotation CSV, videos
or extracted frames, 157 classes, multi-label targets.

Label semantics (as PySlowFast's Charades loader):

* test/validation (``test_mode=True``): the video-level multi-hot vector of
  every action annotated in the video;
* training: put :class:`CharadesClipLabels` after ``SampleFrames`` and the label
  becomes the clip's own: the actions active on any frame between the first and
  the last sampled frame. Without it, training uses the video-level labels.

Videos without actions are kept (all-zero targets, as in PySlowFast's lists);
``filter_empty=True`` drops them.
"""
import csv
import os
import os.path as osp
from typing import Callable, List, Union

import numpy as np
import torch
from mmaction.datasets import BaseActionDataset
from mmcv.transforms import BaseTransform

from ..registry import DATASETS, TRANSFORMS

CHARADES_NUM_CLASSES = 157
CHARADES_FRAMES_FPS = 24  # Charades_v1_rgb was extracted at 24 fps


def parse_charades_actions(text: str, num_classes: int = CHARADES_NUM_CLASSES,
                           where: str = '') -> np.ndarray:
    """``'c092 11.90 21.20;c147 0.00 12.60'`` -> float array ``[[92, 11.9, 21.2],
    [147, 0.0, 12.6]]`` (class, start s, end s); ``''`` -> shape ``(0, 3)``."""
    rows = []
    for item in filter(None, (part.strip() for part in (text or '').split(';'))):
        fields = item.split()
        try:
            if len(fields) != 3 or fields[0][0] != 'c':
                raise ValueError
            cls, start, end = int(fields[0][1:]), float(fields[1]), float(fields[2])
        except (ValueError, IndexError):
            raise ValueError(f'{where}: action {item!r}: the valid form is '
                             "'cXXX start end' (seconds)") from None
        if not 0 <= cls < num_classes:
            raise ValueError(f'{where}: action {item!r}: class {cls} outside '
                             f'0..{num_classes - 1}')
        rows.append((cls, start, end))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


@DATASETS.register_module()
class CharadesDataset(BaseActionDataset):
    """Charades v1 for action recognition (multi-label, 157 classes).

    ``ann_file`` is the official ``Charades_v1_{train,test}.csv`` (columns
    id,subject,scene,quality,relevance,verified,script,objects,descriptions,
    actions,length; only ``id`` and ``actions`` are read). Media:

    * videos (``data_prefix=dict(video=DIR)``): ``DIR/{id}.mp4`` (e.g.
      Charades_v1_480), read with ``DecordInit``/``DecordDecode``;
    * frames (``data_prefix=dict(img=DIR)``): the Charades_v1_rgb layout
      ``DIR/{id}/{id}-000001.jpg``, read with ``RawFrameDecode``; ``avg_fps`` is
      set to ``frames_fps`` and ``total_frames`` counted from the folder.

    Each sample's ``label`` is the video-level multi-hot vector (float,
    ``num_classes``); ``actions`` holds the ``(class, start, end)`` rows that
    :class:`CharadesClipLabels` turns into a clip's label during training.

    Args:
        ann_file (str): the Charades CSV.
        pipeline (list): data transforms.
        data_prefix (dict): ``dict(video=DIR)`` or ``dict(img=DIR)``.
        num_classes (int): number of classes. Defaults to 157.
        frames_fps (float): frame rate of extracted frames. Defaults to 24.
        filter_empty (bool): drop videos without actions. Defaults to False
            (kept, with all-zero targets, as PySlowFast).
        test_mode (bool): building a test or validation set. Defaults to False.
        **kwargs: the other arguments of mmengine's ``BaseDataset``.

    Raises:
        FileNotFoundError: the CSV or the video/frame directory is missing.
    """

    def __init__(self,
                 ann_file: str,
                 pipeline: List[Union[dict, Callable]],
                 data_prefix: dict = dict(video=''),
                 num_classes: int = CHARADES_NUM_CLASSES,
                 frames_fps: float = CHARADES_FRAMES_FPS,
                 filter_empty: bool = False,
                 test_mode: bool = False,
                 **kwargs) -> None:
        if ('video' in data_prefix) == ('img' in data_prefix):
            raise ValueError(f'CharadesDataset: data_prefix={dict(data_prefix)!r}: '
                             'valid are dict(video=DIR) or dict(img=DIR)')
        self.use_frames = 'img' in data_prefix
        self.frames_fps = frames_fps
        self.filter_empty = filter_empty
        super().__init__(ann_file, pipeline=pipeline, data_prefix=data_prefix,
                         test_mode=test_mode, multi_class=True,
                         num_classes=num_classes,
                         start_index=1 if self.use_frames else 0, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the CSV into one sample per video."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'CharadesDataset: annotation CSV not found: {self.ann_file} '
                '(Charades_v1_train.csv / Charades_v1_test.csv from '
                'https://prior.allenai.org/projects/charades)')
        media = self.data_prefix['img' if self.use_frames else 'video'] or '.'
        if not osp.isdir(media):
            kind = 'frame' if self.use_frames else 'video'
            layout = '{id}/{id}-000001.jpg' if self.use_frames else '{id}.mp4'
            raise FileNotFoundError(f'CharadesDataset: {kind} directory not found: '
                                    f'{media} (expected {layout} inside)')
        with open(self.ann_file, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            missing = {'id', 'actions'} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f'{self.ann_file}: not a Charades CSV, missing '
                                 f'column(s) {sorted(missing)}')
            rows = list(reader)
        data_list = []
        for line, row in enumerate(rows, start=2):
            vid = row['id'].strip()
            actions = parse_charades_actions(row['actions'], self.num_classes,
                                             f'{self.ann_file}:{line}')
            if self.filter_empty and len(actions) == 0:
                continue
            info = dict(video_id=vid, actions=actions,
                        label=sorted({int(c) for c in actions[:, 0]}))
            if self.use_frames:
                info.update(frame_dir=osp.join(media, vid), avg_fps=self.frames_fps,
                            filename_tmpl=f'{vid}-{{:06d}}.jpg')
            else:
                info['filename'] = osp.join(media, f'{vid}.mp4')
            data_list.append(info)
        return data_list

    def get_data_info(self, idx: int) -> dict:
        """One sample; for frames, ``total_frames`` is counted here (lazily)."""
        info = super().get_data_info(idx)
        if self.use_frames and 'total_frames' not in info:
            try:
                info['total_frames'] = sum(
                    1 for name in os.listdir(info['frame_dir']) if name.endswith('.jpg'))
            except FileNotFoundError:
                raise FileNotFoundError(f'CharadesDataset: frame directory of video '
                                        f'{info["video_id"]} not found: '
                                        f'{info["frame_dir"]}') from None
        return info


@TRANSFORMS.register_module()
class CharadesClipLabels(BaseTransform):
    """Training label of a sampled Charades clip (put it after ``SampleFrames``).

    The label becomes the multi-hot vector of the actions active on at least one
    frame between the first and the last sampled frame, as PySlowFast
    (``aggregate_labels`` over frames ``seq[0]..seq[-1]``). Frame ``k`` (from 0)
    is at ``k / avg_fps`` s; an action ``(c, start, end)`` is active on it when
    ``start <= k / fps <= end``. Where sampling wrapped around a short video
    (``out_of_bound_opt='loop'``) each increasing run of indices is a span.

    Required keys: ``frame_inds``, ``start_index``, ``avg_fps`` (``DecordInit``,
    or :class:`CharadesDataset` for frames), ``actions``, ``label``.
    Modified keys: ``label``. Use it in the training pipeline only: evaluation
    scores the video-level labels.
    """

    def transform(self, results: dict) -> dict:
        for key in ('frame_inds', 'start_index', 'avg_fps', 'actions', 'label'):
            if results.get(key) is None:
                raise KeyError(f'CharadesClipLabels needs {key!r}: place it after '
                               'DecordInit and SampleFrames, on CharadesDataset samples')
        fps = float(results['avg_fps'])
        inds = np.asarray(results['frame_inds']).reshape(-1) - results['start_index']
        breaks = np.flatnonzero(np.diff(inds) < 0) + 1
        runs = np.split(inds, breaks)
        first = np.array([r.min() for r in runs])[None]
        last = np.array([r.max() for r in runs])[None]
        actions = np.asarray(results['actions']).reshape(-1, 3)
        eps = 1e-6  # times have 2 decimals: 0.5 s * 24 fps is frame 12, exactly
        lo = np.ceil(actions[:, 1:2] * fps - eps)   # first frame inside the action
        hi = np.floor(actions[:, 2:3] * fps + eps)  # last frame inside it
        active = (np.maximum(first, lo) <= np.minimum(last, hi)).any(axis=1)
        label = torch.zeros(len(results['label']), dtype=torch.float32)
        label[torch.as_tensor(actions[active, 0], dtype=torch.long)] = 1.
        results['label'] = label
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
