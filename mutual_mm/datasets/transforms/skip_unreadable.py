"""SkipUnreadable: drop a sample whose files cannot be decoded (mmengine refetches)."""
from typing import List

from mmcv.transforms import BaseTransform, Compose
from mmengine.logging import print_log

from ...compat.sample_errors import sample_path
from ...registry import TRANSFORMS


@TRANSFORMS.register_module()
class SkipUnreadable(BaseTransform):
    """Run ``transforms`` (the loading ones); when they raise on a sample, log
    its file and return None, so mmengine's ``BaseDataset`` draws another
    sample (training only, at most its ``max_refetch`` times, 1000 by default).

    For images mmcv's own ``LoadImageFromFile(ignore_empty=True)`` does this;
    use this where the host has no such option (mmaction2's ``DecordInit`` /
    ``DecordDecode``, ``PyAVInit``...). Every skip is logged with the count so far.

    Args:
        transforms (list[dict]): the transforms to guard, e.g.
            ``[dict(type='DecordInit'), dict(type='SampleFrames', clip_len=8),
            dict(type='DecordDecode')]``.
    """

    def __init__(self, transforms: List[dict]):
        if not transforms:
            raise ValueError('SkipUnreadable: transforms is empty; give the loading '
                             "transforms to guard, e.g. [dict(type='DecordInit'), ...]")
        self.transforms = Compose(transforms)
        self.skipped = 0

    def transform(self, results: dict):
        path = sample_path(results, default='a sample')
        try:
            return self.transforms(results)
        except Exception as err:  # whatever the decoder raises: the file is unusable
            self.skipped += 1
            print_log(f'SkipUnreadable: skipped {path} ({type(err).__name__}: '
                      f'{str(err).strip()[:200]}); {self.skipped} skipped so far in '
                      'this process', logger='current', level=30)
            return None

    def __repr__(self) -> str:
        return f'{type(self).__name__}(transforms={self.transforms})'
