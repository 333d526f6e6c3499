"""Classification datasets: an image folder/list (ImageNet layout) and
MNIST-format idx files (MNIST, Fashion-MNIST)."""
import gzip
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from ...registry import DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff',
                  '.webp')


@DATASETS.register_module()
class ImageListDataset(BaseDataset):
    """Images with one class label each, from a folder tree or a list file.

    The ImageNet layout (``data_root='data/imagenet'``)::

        data/imagenet/
          train/n01440764/n01440764_10026.JPEG ...   # one folder per class
          val/n01440764/ILSVRC2012_val_00000293.JPEG ...
          meta/train.txt  meta/val.txt               # optional lists

    * folder mode (``ann_file=''``): every image under ``data_prefix['img_path']``
      (``train`` or ``val``), labelled by its class folder; classes are the
      folder names sorted (or ``classes`` if given, which must name folders);
    * list mode (``ann_file='meta/val.txt'``): lines ``relative/path label``,
      paths relative to ``data_prefix['img_path']`` (mmpretrain's format).

    Each sample gives ``img_path`` and ``gt_label``; the pipeline loads it
    (``LoadImageFromFile``).

    Args:
        classes (Sequence[str], optional): class names (metainfo ``classes``).
        extensions (Sequence[str]): file suffixes taken in folder mode.
        **kwargs: :class:`mmengine.dataset.BaseDataset`'s (``data_root``,
            ``ann_file``, ``data_prefix``, ``pipeline``, ``indices``, ...).
    """

    def __init__(self, *args, classes: Optional[Sequence[str]] = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS, **kwargs):
        self._classes = tuple(classes) if classes is not None else None
        self.extensions = tuple(e.lower() for e in extensions)
        kwargs.setdefault('data_prefix', dict(img_path=''))
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = self.data_prefix.get('img_path', '') or ''
        if self.ann_file:
            samples = []
            with open(self.ann_file) as f:
                for n, line in enumerate(f, 1):
                    parts = line.strip().rsplit(maxsplit=1)
                    if not parts:
                        continue
                    if len(parts) != 2:
                        raise ValueError(f'{self.ann_file}:{n}: expected "path label", '
                                         f'got {line.strip()!r}')
                    samples.append(dict(img_path=osp.join(root, parts[0]),
                                        gt_label=int(parts[1])))
            if self._classes is not None:
                self._metainfo['classes'] = self._classes
            return samples
        if not osp.isdir(root):
            raise FileNotFoundError(f'ImageListDataset: no image folder {root!r} (and no '
                                    'ann_file); expected one sub-folder per class')
        classes = self._classes or tuple(sorted(
            d.name for d in os.scandir(root) if d.is_dir()))
        if not classes:
            raise ValueError(f'ImageListDataset: {root!r} has no class sub-folders')
        samples = []
        for label, name in enumerate(classes):
            folder = osp.join(root, name)
            if not osp.isdir(folder):
                raise FileNotFoundError(f'ImageListDataset: class {name!r} has no folder '
                                        f'{folder!r}')
            for dirpath, _, files in sorted(os.walk(folder, followlinks=True)):
                for fname in sorted(files):
                    if fname.lower().endswith(self.extensions):
                        samples.append(dict(img_path=osp.join(dirpath, fname),
                                            gt_label=label))
        self._metainfo['classes'] = classes
        return samples


def read_idx(path: str) -> np.ndarray:
    """An idx file (the MNIST format; ``.gz`` or plain) as a numpy array."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f'{path}: not an unsigned-byte idx file')
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise ValueError(f'{path}: header says {shape} ({expected} bytes), file has '
                         f'{len(data) - offset}')
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                         'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


@DATASETS.register_module()
class MNISTIdxDataset(BaseDataset):
    """MNIST-format idx files (MNIST, Fashion-MNIST) held in memory.

    Samples give ``img`` (uint8, HxWx3 with the grey level in every channel when
    ``to_rgb``, else HxW), ``img_shape``, ``ori_shape`` and ``gt_label``.

    Args:
        data_root (str): folder of the files, e.g.
            ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``).
        split (str): ``'train'`` (``train-*``) or ``'test'`` (``t10k-*``).
        to_rgb (bool): repeat the grey channel 3 times. Defaults to True.
        classes (Sequence[str]): class names; defaults to Fashion-MNIST's.
        **kwargs: BaseDataset's (``pipeline``, ``indices`` to subsample...).
    """

    def __init__(self, data_root: str, split: str = 'train', to_rgb: bool = True,
                 classes: Sequence[str] = FASHION_MNIST_CLASSES, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"MNISTIdxDataset: split={split!r}; valid: 'train', 'test'")
        self.split = split
        self.to_rgb = to_rgb
        kwargs.setdefault('metainfo', dict(classes=tuple(classes)))
        super().__init__(data_root=data_root, **kwargs)

    def _file(self, kind: str) -> str:
        prefix = 'train' if self.split == 'train' else 't10k'
        for name in (f'{prefix}-{kind}-idx{3 if kind == "images" else 1}-ubyte',
                     f'{prefix}-{kind}.idx{3 if kind == "images" else 1}-ubyte'):
            for suffix in ('.gz', ''):
                path = osp.join(self.data_root, name + suffix)
                if osp.exists(path):
                    return path
        raise FileNotFoundError(
            f'MNISTIdxDataset: no {prefix}-{kind}-idx*-ubyte[.gz] in {self.data_root!r} '
            '(Fashion-MNIST: apt-get install dataset-fashion-mnist)')

    def load_data_list(self) -> List[dict]:
        images = read_idx(self._file('images'))
        labels = read_idx(self._file('labels'))
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f'MNISTIdxDataset: {len(images)} images of shape '
                             f'{images.shape[1:]} vs {len(labels)} labels')
        h, w = images.shape[1:]
        return [dict(img=img, gt_label=int(label), img_shape=(h, w), ori_shape=(h, w))
                for img, label in zip(images, labels)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if self.to_rgb and info['img'].ndim == 2:
            info['img'] = np.repeat(info['img'][:, :, None], 3, axis=2)
        return info
