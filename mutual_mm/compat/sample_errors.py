"""Name the sample when a data set's pipeline fails on it.

mmengine's ``BaseDataset.prepare_data`` runs the pipeline on one sample; when a
file is empty or truncated the decoder's error (``cv2.error ... !buf.empty()``,
decord's ``Error reading N bytes``) surfaces at the first batch that holds it,
naming no file. The repair adds a note (PEP 678: printed with the traceback,
also from a data-loader worker) naming the data set, the sample's index and its
file, and how to skip such files; the exception itself (type, message) is
unchanged, so code that catches it still does.
"""
from mmengine.dataset import BaseDataset

PATH_KEYS = ('img_path', 'filename', 'frame_dir', 'video_path', 'ann_file')
SKIP_HINT = ("to skip unreadable files instead: images: dict(type='LoadImageFromFile', "
             "ignore_empty=True); videos: wrap the loading transforms in "
             "dict(type='SkipUnreadable', transforms=[...]); mmengine then draws "
             "another sample (training only)")


def sample_path(info: dict, default: str = 'no file path') -> str:
    """The file a sample's data info (or pipeline results) names."""
    return next((str(info[k]) for k in PATH_KEYS if info.get(k)), default)


def sample_note(dataset, idx) -> str:
    try:
        path = sample_path(dataset.get_data_info(idx))
    except Exception:  # the note must never hide the original error
        path = 'file unknown'
    return (f'while preparing sample {idx} ({path}) of {type(dataset).__name__}: repair '
            f'or remove the file; {SKIP_HINT}')


def repair_sample_errors() -> None:
    stock = BaseDataset.prepare_data
    if getattr(stock, '_names_samples', False):
        return

    def prepare_data(self, idx):
        try:
            return stock(self, idx)
        except Exception as err:
            if not any(n.startswith('while preparing sample') for n in
                       getattr(err, '__notes__', ())):
                err.add_note(sample_note(self, idx))
            raise

    prepare_data._names_samples = True
    prepare_data.__doc__ = stock.__doc__
    BaseDataset.prepare_data = prepare_data
